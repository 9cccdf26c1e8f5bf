/*
 * The fault engine: the grammar's parser and formatter, the seeded
 * decisions, and fault_check() behind every FAULT_HOOK(). Built into libfl
 * only when the meson option fault_hooks is enabled. docs/FAULTS.md is the
 * user's reference; the rule table below (actions, their arguments and the
 * points they apply at) is the one place those rules live.
 *
 * The parser works on the caller's string in place: no allocation, no
 * exit, and the set is touched only once the whole spec is good.
 */
#include "fault.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eventlog.h"

/* --- the rule table ---------------------------------------------------- */

enum arg_kind {
    ARG_NONE,  /* takes no value */
    ARG_EXIT,  /* exit=N, 0..255 */
    ARG_TIME,  /* delay=T, T with a unit, stored in microseconds */
    ARG_BYTES, /* short=N, N >= 1 */
};

#define PT(p) FAULT_POINT_BIT(p)

static const struct action_info {
    const char *name;
    enum arg_kind arg;
    unsigned points; /* where it applies, as FAULT_POINT_BIT()s */
} actions[FA_COUNT] = {
    [FA_NONE] = { "none", ARG_NONE, 0 },
    /* Process-level: the engine carries them out, anywhere. */
    [FA_KILL] = { "kill", ARG_NONE, FAULT_POINTS_ALL },
    [FA_ABORT] = { "abort", ARG_NONE, FAULT_POINTS_ALL },
    [FA_EXIT] = { "exit", ARG_EXIT, FAULT_POINTS_ALL },
    [FA_DELAY] = { "delay", ARG_TIME, FAULT_POINTS_ALL },
    [FA_STALL] = { "stall", ARG_NONE, FAULT_POINTS_ALL },
    /* The caller's: each needs a connection, or a particular call. */
    [FA_RST] = { "rst", ARG_NONE, FAULT_POINTS_ALL },
    [FA_CLOSE] = { "close", ARG_NONE, FAULT_POINTS_ALL },
    /* At accept the parent hands the connection on: its write side is
     * the child's business. */
    [FA_SHUTDOWN_WR] = { "shutdown_wr", ARG_NONE, FAULT_POINTS_ALL & ~PT(FP_ACCEPT) },
    [FA_SHORT] = { "short", ARG_BYTES, PT(FP_BEFORE_WRITE) },
    [FA_DROP] = { "drop", ARG_NONE, PT(FP_AFTER_READ) },
    [FA_FORK_FAIL] = { "fork_fail", ARG_NONE, PT(FP_ACCEPT) },
    [FA_LEAK] = { "leak", ARG_NONE, PT(FP_ACCEPT) | PT(FP_BEFORE_CLOSE) },
};

/* The order of the lists in error messages and docs/FAULTS.md. */
static const enum fault_action action_order[] = {
    FA_KILL, FA_ABORT, FA_EXIT, FA_DELAY, FA_RST, FA_CLOSE, FA_SHUTDOWN_WR,
    FA_STALL, FA_SHORT, FA_DROP, FA_FORK_FAIL, FA_LEAK,
};

static const char *const point_names[FP_COUNT] = {
    [FP_ACCEPT] = "accept",
    [FP_CHILD_START] = "child_start",
    [FP_BEFORE_READ] = "before_read",
    [FP_AFTER_READ] = "after_read",
    [FP_BEFORE_WRITE] = "before_write",
    [FP_AFTER_WRITE] = "after_write",
    [FP_BEFORE_CLOSE] = "before_close",
    [FP_CONNECT] = "connect",
};

#define ACTION_LIST "kill, abort, exit=N, delay=T, rst, close, shutdown_wr, " \
                    "stall, short=N, drop, fork_fail, leak"
#define POINT_LIST "accept, child_start, before_read, after_read, " \
                   "before_write, after_write, before_close, connect"
#define FILTER_LIST "conn=N, nth=N, after_bytes=N, count=N, prob=P, seed=S"

enum filter {
    F_CONN,
    F_NTH,
    F_AFTER_BYTES,
    F_COUNT,
    F_PROB,
    F_SEED,
    F_COUNT_OF_FILTERS
};

static const char *const filter_names[F_COUNT_OF_FILTERS] = {
    "conn", "nth", "after_bytes", "count", "prob", "seed",
};

#define MAX_DELAY_US (86400LL * 1000000) /* one day */
#define PROB_MAX_DECIMALS 15             /* every such decimal survives a double */

const char *fault_action_name(enum fault_action action)
{
    if ((unsigned)action >= FA_COUNT)
        return "?";
    return actions[action].name;
}

const char *fault_point_name(enum fault_point point)
{
    if ((unsigned)point >= FP_COUNT)
        return "?";
    return point_names[point];
}

/* --- the parser -------------------------------------------------------- */

struct parser {
    const char *spec;
    size_t pos; /* 0-based offset of the next unread byte */
    char *err;
    size_t errlen;
};

/* A word: a run of bytes up to a separator, a blank or the end. */
struct word {
    size_t pos, len;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_separator(char c)
{
    return c == ';' || c == '@' || c == ',' || c == '=';
}

static void skip_blanks(struct parser *p)
{
    while (is_blank(p->spec[p->pos]))
        p->pos++;
}

static struct word next_word(struct parser *p)
{
    struct word w = { p->pos, 0 };

    while (p->spec[p->pos] != '\0' && !is_blank(p->spec[p->pos]) &&
           !is_separator(p->spec[p->pos]))
        p->pos++;
    w.len = p->pos - w.pos;
    return w;
}

static int word_is(const struct parser *p, struct word w, const char *name)
{
    return strlen(name) == w.len && memcmp(p->spec + w.pos, name, w.len) == 0;
}

/*
 * The text at pos for an error message: the word there, or the separator,
 * or "end of input"; quoted, at most 32 bytes of it, unprintable bytes as
 * '?'.
 */
#define QUOTE_MAX 32
static void quote(const struct parser *p, size_t pos, char *out, size_t outlen)
{
    struct parser tmp = *p;
    struct word w;
    size_t n = 0;

    tmp.pos = pos;
    w = next_word(&tmp);
    if (w.len == 0 && p->spec[pos] != '\0')
        w.len = 1; /* a separator or a blank */
    if (w.len == 0) {
        snprintf(out, outlen, "the end");
        return;
    }
    out[n++] = '\'';
    for (size_t i = 0; i < w.len && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)p->spec[pos + i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (w.len > QUOTE_MAX) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '\'';
    out[n] = '\0';
}
#define QUOTED_SIZE (QUOTE_MAX + 8)

__attribute__((format(printf, 3, 4)))
static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->errlen == 0)
        return -1;
    n = snprintf(p->err, p->errlen, "position %zu: ", pos + 1);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Decimal digits only, no sign, no blanks; -1 when not that, -2 when the
 * value exceeds max. */
static int word_to_u64(const struct parser *p, struct word w, uint64_t max,
                       uint64_t *out)
{
    uint64_t v = 0;
    int overflow = 0;

    if (w.len == 0)
        return -1;
    for (size_t i = 0; i < w.len; i++) {
        char c = p->spec[w.pos + i];
        if (c < '0' || c > '9')
            return -1;
        if (v > (max - (uint64_t)(c - '0')) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(c - '0');
    }
    if (overflow)
        return -2;
    *out = v;
    return 0;
}

/* A whole number within [min, max] for a filter or an action argument;
 * `ranged` says the message names both bounds (exit's 0..255). */
static int parse_whole(struct parser *p, struct word w, const char *what,
                       uint64_t min, uint64_t max, int ranged, uint64_t *out)
{
    char q[QUOTED_SIZE];
    int rc = word_to_u64(p, w, max, out);

    if (rc == 0 && *out >= min)
        return 0;
    quote(p, w.pos, q, sizeof q);
    if (ranged)
        return fail(p, w.pos, "%s wants a whole number from %llu to %llu, not %s",
                    what, (unsigned long long)min, (unsigned long long)max, q);
    if (rc == -2)
        return fail(p, w.pos, "%s is too large: %s (at most %llu)", what, q,
                    (unsigned long long)max);
    return fail(p, w.pos, "%s wants a whole number >= %llu, not %s", what,
                (unsigned long long)min, q);
}

/* delay=T: digits and a unit, us, ms or s. */
static int parse_time(struct parser *p, struct word w, long long *us)
{
    static const struct { const char *unit; long long scale; } units[] = {
        { "us", 1 }, { "ms", 1000 }, { "s", 1000000 },
    };
    char q[QUOTED_SIZE];
    size_t digits = 0;
    uint64_t v;

    while (digits < w.len && p->spec[w.pos + digits] >= '0' &&
           p->spec[w.pos + digits] <= '9')
        digits++;
    quote(p, w.pos, q, sizeof q);
    if (digits == 0)
        return fail(p, w.pos, "delay wants a time such as 500us, 200ms or 2s, not %s", q);
    if (digits == w.len)
        return fail(p, w.pos, "delay needs a unit: us, ms or s");
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        struct word num = { w.pos, digits };
        struct word unit = { w.pos + digits, w.len - digits };
        uint64_t max = (uint64_t)(MAX_DELAY_US / units[i].scale);
        if (!word_is(p, unit, units[i].unit))
            continue;
        if (word_to_u64(p, num, max, &v) < 0)
            return fail(p, w.pos, "delay is too long: %s (at most 86400s)", q);
        *us = (long long)v * units[i].scale;
        return 0;
    }
    return fail(p, w.pos, "delay wants a time such as 500us, 200ms or 2s, not %s", q);
}

/*
 * prob=P: digits, then optionally '.' and 1 to 15 digits; 0 <= P <= 1.
 * Computed as N / 10^d: both are exact doubles and the division rounds
 * correctly, so this is what strtod() gives, without its locale, exponents,
 * hex, inf and nan.
 */
static int parse_prob(struct parser *p, struct word w, double *out)
{
    char q[QUOTED_SIZE];
    const char *s = p->spec + w.pos;
    size_t i = 0, decimals = 0;
    uint64_t whole = 0, frac = 0, scale = 1;

    quote(p, w.pos, q, sizeof q);
    while (i < w.len && s[i] == '0')
        i++;
    if (i < w.len && s[i] == '1') {
        whole = 1;
        i++;
    }
    if (i == 0) /* neither a 0 nor a 1 first */
        return fail(p, w.pos, "prob wants a decimal from 0 to 1, not %s", q);
    if (i < w.len && s[i] == '.') {
        i++;
        while (i < w.len && s[i] >= '0' && s[i] <= '9') {
            if (++decimals > PROB_MAX_DECIMALS)
                return fail(p, w.pos, "prob takes at most %d decimals, not %s",
                            PROB_MAX_DECIMALS, q);
            frac = frac * 10 + (uint64_t)(s[i] - '0');
            scale *= 10;
            i++;
        }
        if (decimals == 0)
            return fail(p, w.pos, "prob wants a decimal from 0 to 1, not %s", q);
    }
    if (i != w.len || (whole == 1 && frac != 0))
        return fail(p, w.pos, "prob wants a decimal from 0 to 1, not %s", q);
    *out = (double)(whole * scale + frac) / (double)scale;
    return 0;
}

static int parse_action_arg(struct parser *p, struct fault_rule *r, struct word w)
{
    uint64_t v;

    switch (actions[r->action].arg) {
    case ARG_EXIT:
        if (parse_whole(p, w, "exit", 0, 255, 1, &v) < 0)
            return -1;
        r->arg = (long long)v;
        return 0;
    case ARG_BYTES:
        if (parse_whole(p, w, "short", 1, LLONG_MAX, 0, &v) < 0)
            return -1;
        r->arg = (long long)v;
        return 0;
    case ARG_TIME:
        return parse_time(p, w, &r->arg);
    case ARG_NONE:
        break;
    }
    return -1;
}

static const char *arg_example(enum fault_action action)
{
    switch (actions[action].arg) {
    case ARG_EXIT:
        return "exit=N, N from 0 to 255";
    case ARG_TIME:
        return "delay=T, as in delay=200ms";
    case ARG_BYTES:
        return "short=N, N >= 1";
    case ARG_NONE:
        break;
    }
    return "";
}

/* ACTION [ '=' ARG ], up to the '@'. */
static int parse_action(struct parser *p, struct fault_rule *r)
{
    char q[QUOTED_SIZE];
    struct word w = next_word(p);
    size_t eq;

    quote(p, w.pos, q, sizeof q);
    if (w.len == 0)
        return fail(p, w.pos, "expected an action, not %s (actions: " ACTION_LIST ")", q);
    r->action = FA_NONE;
    for (size_t i = 0; i < sizeof action_order / sizeof action_order[0]; i++)
        if (word_is(p, w, actions[action_order[i]].name))
            r->action = action_order[i];
    if (r->action == FA_NONE)
        return fail(p, w.pos, "unknown action %s (actions: " ACTION_LIST ")", q);
    skip_blanks(p);
    if (p->spec[p->pos] != '=') {
        if (actions[r->action].arg != ARG_NONE)
            return fail(p, w.pos, "%s needs a value: %s", actions[r->action].name,
                        arg_example(r->action));
        return 0;
    }
    eq = p->pos++;
    if (actions[r->action].arg == ARG_NONE)
        return fail(p, eq, "%s takes no value", actions[r->action].name);
    skip_blanks(p);
    w = next_word(p);
    if (w.len == 0)
        return fail(p, w.pos, "%s needs a value after '=': %s",
                    actions[r->action].name, arg_example(r->action));
    return parse_action_arg(p, r, w);
}

/* The points an action applies at, for a message: "a, b or c". */
static void list_points(unsigned mask, char *out, size_t outlen)
{
    size_t n = 0;
    int left = __builtin_popcount(mask);

    out[0] = '\0';
    for (int pt = 0; pt < FP_COUNT && n < outlen; pt++) {
        if (!(mask & FAULT_POINT_BIT(pt)))
            continue;
        left--;
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", point_names[pt],
                              left == 0 ? "" : left == 1 ? " or " : ", ");
    }
}

static int parse_point(struct parser *p, struct fault_rule *r, unsigned allowed,
                       const char *prog)
{
    char q[QUOTED_SIZE], where[160];
    struct word w = next_word(p);
    unsigned applies = actions[r->action].points;
    int found = -1;

    quote(p, w.pos, q, sizeof q);
    if (w.len == 0)
        return fail(p, w.pos, "expected a point after '@', not %s (points: " POINT_LIST ")",
                    q);
    for (int pt = 0; pt < FP_COUNT; pt++)
        if (word_is(p, w, point_names[pt]))
            found = pt;
    if (found < 0)
        return fail(p, w.pos, "unknown point %s (points: " POINT_LIST ")", q);
    r->point = (enum fault_point)found;
    if (!(applies & FAULT_POINT_BIT(found))) {
        list_points(applies, where, sizeof where);
        return fail(p, w.pos, "%s does not apply at %s (only at %s)",
                    actions[r->action].name, point_names[found], where);
    }
    if (!(allowed & FAULT_POINT_BIT(found))) {
        list_points(allowed, where, sizeof where);
        return fail(p, w.pos, "%s never reaches %s (its points: %s)",
                    prog ? prog : "this program", point_names[found], where);
    }
    return 0;
}

static int parse_filter(struct parser *p, struct fault_rule *r, unsigned *given)
{
    char q[QUOTED_SIZE];
    struct word w = next_word(p), v;
    int f = -1;
    uint64_t n;

    quote(p, w.pos, q, sizeof q);
    if (w.len == 0)
        return fail(p, w.pos, "expected a filter after ',', not %s (filters: " FILTER_LIST ")",
                    q);
    for (int i = 0; i < F_COUNT_OF_FILTERS; i++)
        if (word_is(p, w, filter_names[i]))
            f = i;
    if (f < 0)
        return fail(p, w.pos, "unknown filter %s (filters: " FILTER_LIST ")", q);
    if (*given & (1u << f))
        return fail(p, w.pos, "%s given twice in one fault", filter_names[f]);
    *given |= 1u << f;
    skip_blanks(p);
    if (p->spec[p->pos] != '=')
        return fail(p, w.pos, "%s needs a value: %s=%s", filter_names[f],
                    filter_names[f], f == F_PROB ? "P" : f == F_SEED ? "S" : "N");
    p->pos++;
    skip_blanks(p);
    v = next_word(p);
    switch (f) {
    case F_CONN:
        if (parse_whole(p, v, "conn", 1, LONG_MAX, 0, &n) < 0)
            return -1;
        r->conn = (long)n;
        return 0;
    case F_NTH:
        if (parse_whole(p, v, "nth", 1, LONG_MAX, 0, &n) < 0)
            return -1;
        r->nth = (long)n;
        return 0;
    case F_AFTER_BYTES:
        if (parse_whole(p, v, "after_bytes", 0, LLONG_MAX, 0, &n) < 0)
            return -1;
        r->after_bytes = (long long)n;
        return 0;
    case F_COUNT:
        if (parse_whole(p, v, "count", 1, LONG_MAX, 0, &n) < 0)
            return -1;
        r->count = (long)n;
        return 0;
    case F_PROB:
        return parse_prob(p, v, &r->prob);
    case F_SEED:
        if (word_to_u64(p, v, UINT64_MAX, &n) < 0) {
            quote(p, v.pos, q, sizeof q);
            return fail(p, v.pos,
                        "seed wants a whole number from 0 to 18446744073709551615, not %s",
                        q);
        }
        r->seed = n;
        r->seed_given = 1;
        return 0;
    }
    return -1;
}

static void rule_defaults(struct fault_rule *r)
{
    memset(r, 0, sizeof *r);
    r->action = FA_NONE;
    r->after_bytes = -1;
    r->prob = 1.0;
}

/* A rule's stream: splitmix64 seeded with seed + its index in the set. */
static void rule_reset(struct fault_rule *r, int index)
{
    r->hits = 0;
    r->fired = 0;
    r->rng = r->seed + (uint64_t)index;
}

/* FAULT := ACTION [ '=' ARG ] '@' POINT { ',' FILTER } */
static int parse_fault(struct parser *p, struct fault_rule *r, unsigned allowed,
                       const char *prog)
{
    char q[QUOTED_SIZE];
    unsigned given = 0;

    rule_defaults(r);
    if (parse_action(p, r) < 0)
        return -1;
    skip_blanks(p);
    if (p->spec[p->pos] != '@')
        return fail(p, p->pos, "expected '@' after the action");
    p->pos++;
    skip_blanks(p);
    if (parse_point(p, r, allowed, prog) < 0)
        return -1;
    for (;;) {
        skip_blanks(p);
        if (p->spec[p->pos] == '\0' || p->spec[p->pos] == ';')
            return 0;
        if (p->spec[p->pos] != ',') {
            quote(p, p->pos, q, sizeof q);
            return fail(p, p->pos, "expected ',' or ';' after %s, not %s",
                        given ? "a filter" : "the point", q);
        }
        p->pos++;
        skip_blanks(p);
        if (parse_filter(p, r, &given) < 0)
            return -1;
    }
}

int fault_parse_points(struct fault_set *set, const char *spec, unsigned points,
                       const char *prog, char *err, size_t errlen)
{
    struct parser p = { spec, 0, err, errlen };
    struct fault_rule rules[FAULT_MAX_RULES];
    int n = 0;

    if (errlen > 0)
        err[0] = '\0';
    skip_blanks(&p);
    if (spec[p.pos] == '\0')
        return fail(&p, p.pos, "no fault given (write ACTION@POINT, as in kill@after_read)");
    for (;;) { /* one fault a round; ends at the end of spec */
        skip_blanks(&p);
        if (set->n + n >= FAULT_MAX_RULES)
            return fail(&p, p.pos, "too many faults (at most %d)", FAULT_MAX_RULES);
        if (n > 0 && (spec[p.pos] == '\0' || spec[p.pos] == ';'))
            return fail(&p, p.pos, "expected a fault after ';'");
        if (parse_fault(&p, &rules[n], points, prog) < 0)
            return -1;
        rule_reset(&rules[n], set->n + n);
        n++;
        if (spec[p.pos] == '\0')
            break;
        p.pos++; /* the ';' */
    }
    memcpy(&set->rules[set->n], rules, (size_t)n * sizeof rules[0]);
    set->n += n;
    return 0;
}

int fault_parse(struct fault_set *set, const char *spec, char *err, size_t errlen)
{
    return fault_parse_points(set, spec, FAULT_POINTS_ALL, NULL, err, errlen);
}

void fault_set_init(struct fault_set *set)
{
    memset(set, 0, sizeof *set);
}

/* --- the formatter ----------------------------------------------------- */

struct out {
    char *buf;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void out_add(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->len + 1 >= o->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

/* The shortest N / 10^d (d <= 15) that is exactly prob; a prob made by no
 * parse (1/3, say) gets 15 decimals. */
static void format_prob(struct out *o, double prob)
{
    uint64_t scale = 1;
    int d;

    if (!(prob > 0))
        prob = 0;
    if (prob > 1)
        prob = 1;
    for (d = 0; d <= PROB_MAX_DECIMALS; d++, scale *= 10) {
        uint64_t n = (uint64_t)(prob * (double)scale + 0.5);
        if ((double)n / (double)scale == prob || d == PROB_MAX_DECIMALS) {
            if (d == 0)
                out_add(o, "%llu", (unsigned long long)n);
            else
                out_add(o, "%llu.%0*llu", (unsigned long long)(n / scale), d,
                        (unsigned long long)(n % scale));
            return;
        }
    }
}

static void format_time(struct out *o, long long us)
{
    if (us % 1000000 == 0)
        out_add(o, "%llds", us / 1000000);
    else if (us % 1000 == 0)
        out_add(o, "%lldms", us / 1000);
    else
        out_add(o, "%lldus", us);
}

void fault_format(const struct fault_rule *r, char *buf, size_t buflen)
{
    struct out o = { buf, 0, buflen };

    if (buflen == 0)
        return;
    buf[0] = '\0';
    out_add(&o, "%s", fault_action_name(r->action));
    if ((unsigned)r->action < FA_COUNT) {
        switch (actions[r->action].arg) {
        case ARG_EXIT:
        case ARG_BYTES:
            out_add(&o, "=%lld", r->arg);
            break;
        case ARG_TIME:
            out_add(&o, "=");
            format_time(&o, r->arg);
            break;
        case ARG_NONE:
            break;
        }
    }
    out_add(&o, "@%s", fault_point_name(r->point));
    if (r->conn > 0)
        out_add(&o, ",conn=%ld", r->conn);
    if (r->nth > 0)
        out_add(&o, ",nth=%ld", r->nth);
    if (r->after_bytes >= 0)
        out_add(&o, ",after_bytes=%lld", r->after_bytes);
    if (r->count > 0)
        out_add(&o, ",count=%ld", r->count);
    if (r->prob < 1.0) {
        out_add(&o, ",prob=");
        format_prob(&o, r->prob);
    }
    if (r->seed_given)
        out_add(&o, ",seed=%llu", (unsigned long long)r->seed);
}

/* --- seeds --------------------------------------------------------------- */

#define GOLDEN 0x9e3779b97f4a7c15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t fault_seed(struct fault_set *set, uint64_t seed)
{
    for (int i = 0; i < set->n; i++) {
        if (!set->rules[i].seed_given)
            set->rules[i].seed = seed;
        rule_reset(&set->rules[i], i);
    }
    return seed;
}

int fault_uses_prob(const struct fault_set *set)
{
    for (int i = 0; i < set->n; i++)
        if (set->rules[i].prob < 1.0)
            return 1;
    return 0;
}

uint64_t fault_seed_default(struct fault_set *set, uint64_t fallback, int *announce)
{
    *announce = 0;
    for (int i = 0; i < set->n; i++)
        if (set->rules[i].seed_given)
            return fault_seed(set, set->rules[i].seed);
    *announce = fault_uses_prob(set);
    return fault_seed(set, fallback);
}

/*
 * One draw in [0, 1): the rule's splitmix64 stream, its next value mixed
 * with the connection number, so forked children that inherit the same
 * stream still decide independently for different connections.
 */
static double draw(struct fault_rule *r, long conn)
{
    uint64_t z;

    r->rng += GOLDEN;
    z = mix64(r->rng);
    z = mix64(z + (uint64_t)conn * 0xd1b54a32d192ed03ULL);
    return (double)(z >> 11) * 0x1.0p-53;
}

/* --- the active set and the hook ---------------------------------------- */

static struct fault_set active;
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
unsigned fault_armed_points;

void fault_activate(const struct fault_set *set)
{
    unsigned points = 0;

    for (int i = 0; i < set->n; i++)
        points |= FAULT_POINT_BIT(set->rules[i].point);
    pthread_mutex_lock(&active_lock);
    active = *set;
    /* Stored under the lock: a hook that sees the bits then takes it in
     * fault_check() and reads the rules they came from. */
    __atomic_store_n(&fault_armed_points, points, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&active_lock);
}

const struct fault_set *fault_active(void)
{
    return &active;
}

/* Sleep the whole time, whatever signals interrupt it. */
static void delay_us(long long us)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(us / 1000000);
    until.tv_nsec += (long)(us % 1000000) * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
}

/* Block for good: handled signals run their handlers and we block again;
 * blocked ones stay pending; one whose action is to terminate ends us. */
__attribute__((noreturn))
static void stall(void)
{
    sigset_t mask;

    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    for (;;)
        sigsuspend(&mask);
}

static void emit_fault_event(const struct fault_rule *r, int index, long hit, long conn)
{
    struct event ev;

    event_begin(&ev, "fault");
    event_str(&ev, "action", fault_action_name(r->action));
    event_str(&ev, "point", fault_point_name(r->point));
    event_int(&ev, "conn", conn);
    if (actions[r->action].arg != ARG_NONE)
        event_int(&ev, "arg", r->arg);
    event_int(&ev, "rule", index);
    event_int(&ev, "hit", hit);
    event_emit(&ev);
}

/* The filters, in the documented order; 1 when the rule fires now. Called
 * with the lock held. */
static int decide(struct fault_rule *r, long conn, long long bytes)
{
    if (r->conn > 0 && r->conn != conn)
        return 0;
    if (r->after_bytes >= 0 && bytes < r->after_bytes)
        return 0;
    r->hits++;
    if (r->nth > 0 && r->hits != r->nth)
        return 0;
    if (r->count > 0 && r->fired >= r->count)
        return 0;
    if (r->prob < 1.0 && !(draw(r, conn) < r->prob))
        return 0;
    r->fired++;
    return 1;
}

struct fault_hit fault_check(enum fault_point point, const struct fault_ctx *ctx)
{
    const long conn = ctx ? ctx->conn : 0;
    const long long bytes = ctx ? ctx->bytes : 0;

    for (int i = 0; i < FAULT_MAX_RULES; i++) {
        struct fault_rule fired;
        int fires = 0;

        pthread_mutex_lock(&active_lock);
        if (i >= active.n) {
            pthread_mutex_unlock(&active_lock);
            break;
        }
        if (active.rules[i].point == point && decide(&active.rules[i], conn, bytes)) {
            fires = 1;
            fired = active.rules[i];
        }
        pthread_mutex_unlock(&active_lock);
        if (!fires)
            continue;

        emit_fault_event(&fired, i, fired.hits, conn);
        switch (fired.action) {
        case FA_KILL:
            raise(SIGKILL);
            _exit(128 + SIGKILL); /* not reached */
        case FA_ABORT:
            abort();
        case FA_EXIT:
            _exit((int)fired.arg);
        case FA_DELAY:
            delay_us(fired.arg);
            continue;
        case FA_STALL:
            stall();
        case FA_NONE:
        case FA_COUNT:
            continue;
        default:
            return (struct fault_hit){ fired.action, fired.arg };
        }
    }
    return (struct fault_hit){ FA_NONE, 0 };
}
