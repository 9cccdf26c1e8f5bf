/*
 * The fault engine: one grammar for echod --fault, echoc --fault and the
 * environment (ECHOD_FAULTS, ECHOC_FAULTS). docs/FAULTS.md is the user's
 * reference; this header is the programmer's.
 *
 *   SPEC    := FAULT { ';' FAULT }
 *   FAULT   := ACTION [ '=' ARG ] '@' POINT { ',' FILTER }
 *   FILTER  := conn=N | nth=N | after_bytes=N | count=N | prob=P | seed=S
 *
 *   kill@after_read,conn=2         abrupt kill of the 2nd connection's server
 *   delay=200ms@before_read        every read waits 200 ms first
 *   rst@before_close               SO_LINGER 0 then close: RST, no FIN
 *   short=1@before_write,prob=0.3,seed=7
 *
 * The parser never exits and never allocates: a malformed spec comes back
 * as -1 with "position N: what was wrong" in the caller's buffer.
 *
 * Hooks: code calls FAULT_HOOK(point, &ctx) at each point. With the meson
 * option fault_hooks disabled, FL_FAULT_HOOKS is 0 and the macro expands
 * to a constant "no fault": the compiler removes the hook and the engine is
 * not linked into the programs at all.
 */
#ifndef FL_FAULT_H
#define FL_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fl_build_config.h"

enum fault_point {
    FP_ACCEPT,       /* server parent, after accept(), before dispatch */
    FP_CHILD_START,  /* server, first thing in the serving process/thread */
    FP_BEFORE_READ,
    FP_AFTER_READ,
    FP_BEFORE_WRITE,
    FP_AFTER_WRITE,
    FP_BEFORE_CLOSE,
    FP_CONNECT,      /* client, after connect() succeeded */
    FP_COUNT
};

enum fault_action {
    FA_NONE,
    FA_KILL,        /* raise(SIGKILL): abrupt death, no cleanup */
    FA_ABORT,       /* abort(): SIGABRT */
    FA_EXIT,        /* _exit(arg) */
    FA_DELAY,       /* sleep arg microseconds, then carry on */
    FA_RST,         /* caller: SO_LINGER {1,0} + close -> RST; session ends */
    FA_CLOSE,       /* caller: close() now -> FIN; session ends */
    FA_SHUTDOWN_WR, /* caller: shutdown(SHUT_WR) -> FIN, keep reading */
    FA_STALL,       /* block forever in the hook (until a signal kills us) */
    FA_SHORT,       /* caller: this write transfers at most arg bytes */
    FA_DROP,        /* caller: discard the data just read, echo nothing */
    FA_FORK_FAIL,   /* caller: behave as if fork() failed with EAGAIN */
    FA_LEAK,        /* caller: do not close this descriptor */
    FA_COUNT
};

#define FAULT_MAX_RULES 16

struct fault_rule {
    enum fault_action action;
    enum fault_point point;
    long long arg;            /* exit code, delay in us, short byte count */
    long conn;                /* 0 = any connection */
    long nth;                 /* 0 = every time; else only the nth hit */
    long long after_bytes;    /* -1 = no byte filter */
    long count;               /* 0 = unlimited; else fire at most count times */
    double prob;              /* 1.0 = always */
    uint64_t seed;
    int seed_given;
    /* run-time state, per process (a forked child inherits a copy) */
    long hits;
    long fired;
    uint64_t rng;
};

struct fault_set {
    int n;
    struct fault_rule rules[FAULT_MAX_RULES];
};

/* What a hook sees of the connection it runs for. */
struct fault_ctx {
    long conn;             /* connection number, 1-based; 0 = none yet */
    long long bytes;       /* bytes this connection has read so far */
    int fd;                /* its socket, or -1 */
};

/* The part of a firing fault the caller must carry out. */
struct fault_hit {
    enum fault_action action; /* FA_NONE when nothing (left) to do */
    long long arg;
};

/* Sets of points, as bit masks (1u << point), for fault_parse_points(). */
#define FAULT_POINT_BIT(point) (1u << (point))
#define FAULT_POINTS_ALL ((1u << FP_COUNT) - 1)
/* echod reaches every point but connect; echoc only the connection's own. */
#define FAULT_POINTS_SERVER (FAULT_POINTS_ALL & ~FAULT_POINT_BIT(FP_CONNECT))
#define FAULT_POINTS_CLIENT                                                   \
    (FAULT_POINT_BIT(FP_CONNECT) | FAULT_POINT_BIT(FP_BEFORE_READ) |           \
     FAULT_POINT_BIT(FP_AFTER_READ) | FAULT_POINT_BIT(FP_BEFORE_WRITE) |       \
     FAULT_POINT_BIT(FP_AFTER_WRITE) | FAULT_POINT_BIT(FP_BEFORE_CLOSE))

void fault_set_init(struct fault_set *set);

/* Parse spec and append its faults to set. Returns 0, or -1 with err set to
 * "position N: ..." (N counts from 1 in spec) and set unchanged. */
int fault_parse(struct fault_set *set, const char *spec, char *err, size_t errlen);

/* fault_parse() for one program: a point outside `points` (a mask of
 * FAULT_POINT_BIT) is refused with "position N: PROG never reaches POINT
 * (its points: ...)". fault_parse() is this with FAULT_POINTS_ALL. */
int fault_parse_points(struct fault_set *set, const char *spec, unsigned points,
                       const char *prog, char *err, size_t errlen);

/* Give every rule without seed= the seed `seed` (each rule its own stream)
 * and reset run-time state. Returns the seed, to be logged so a random run
 * can be replayed. */
uint64_t fault_seed(struct fault_set *set, uint64_t seed);

/* Text of an action or point, as in the grammar. */
const char *fault_action_name(enum fault_action action);
const char *fault_point_name(enum fault_point point);

/* One rule back in the grammar, for logs and --help output: canonical
 * (filters in the grammar's order, defaults left out, the largest exact
 * time unit), so it parses back to the same rule. Truncated to outlen;
 * FAULT_FORMAT_MAX always holds a whole rule. */
#define FAULT_FORMAT_MAX 256
void fault_format(const struct fault_rule *rule, char *out, size_t outlen);

/* 1 when some rule can draw (prob < 1): a seed is then worth announcing. */
int fault_uses_prob(const struct fault_set *set);

/*
 * Seed a set the way echod and echoc do: with the first seed= a rule gives
 * (so adding seed=S to any one rule replays a run), else with `fallback`
 * (the caller's time ^ pid). Returns the seed used. *announce is set to 1
 * when the seed was chosen here and some rule uses prob: the caller then
 * prints "fault seed S (replay with seed=S)" once.
 */
uint64_t fault_seed_default(struct fault_set *set, uint64_t fallback, int *announce);

/* The process's active set (hooks read it). Replaced wholesale on reload. */
void fault_activate(const struct fault_set *set);
const struct fault_set *fault_active(void);

/*
 * Evaluate the active set at a point. The rules at this point are taken in
 * order; for each: the conn and after_bytes filters, then the hit is
 * counted, then nth, count and prob. Every rule that fires is logged as a
 * "fault" event (action, point, conn, arg when it has one, rule index,
 * hit). Process-level actions (kill, abort, exit, delay, stall) are carried
 * out here; a delay then goes on to the next rule. Evaluation stops at the
 * first firing rule whose action needs the caller: it is returned for the
 * caller to carry out, and later rules are not even counted. ctx may be
 * NULL (conn 0, no bytes, no fd). Async-signal-safety is not needed: hooks
 * run in normal code. The run-time state is guarded by a mutex, so threads
 * may share the set (their counts are then process-wide).
 */
struct fault_hit fault_check(enum fault_point point, const struct fault_ctx *ctx);

/*
 * The points some rule of the active set sits at, as FAULT_POINT_BIT()s:
 * 0 while nothing is armed. fault_activate() writes it. An idle hook reads
 * only this: one compare with it and one branch predicted not taken (on
 * x86-64; a load, a test and the branch elsewhere), and no call, lock,
 * clock, getpid or event. Loops that run hooks on every line
 * test FAULT_ARMED() once a round and run a copy of the round without
 * hooks when it is false (session.c, evconn.c, echoc's str_cli.c), so an
 * idle round costs that one branch in all (bench/hook_cost.py).
 */
extern unsigned fault_armed_points;

#define FAULT_NO_HIT ((struct fault_hit){ FA_NONE, 0 })
#if FL_FAULT_HOOKS
#define FAULT_ARMED_POINTS() __atomic_load_n(&fault_armed_points, __ATOMIC_RELAXED)
#if defined(__x86_64__) && defined(__GNUC__)
/* One compare of the global with 0 in memory and one jump: C's load, test
 * and jump are three instructions, 1.1 % of the poll model's 270 a line
 * (bench/hook_cost.py counts them). A 32-bit aligned load is atomic on
 * x86, as the relaxed load is. */
static inline __attribute__((always_inline)) bool fault_armed(void)
{
    __asm__ goto("cmpl $0, %0\n\tjne %l[armed]"
                 : : "m"(fault_armed_points) : "cc" : armed);
    return false;
armed:
    return true;
}
#define FAULT_ARMED() __builtin_expect(fault_armed(), 0)
#else
#define FAULT_ARMED() __builtin_expect(FAULT_ARMED_POINTS() != 0, 0)
#endif
#define FAULT_HOOK(point, ctx)                                                 \
    (__builtin_expect((FAULT_ARMED_POINTS() & FAULT_POINT_BIT(point)) != 0, 0) \
         ? fault_check((point), (ctx))                                         \
         : FAULT_NO_HIT)
#else
#define FAULT_ARMED() 0
#define FAULT_HOOK(point, ctx) ((void)(ctx), FAULT_NO_HIT)
#endif

#endif
