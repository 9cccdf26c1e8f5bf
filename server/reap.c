/*
 * The three SIGCHLD strategies of UNP chapter 5, side by side and named for
 * what they do wrong or right. The faulty two are deliberate: they are the
 * phenomena the suite reproduces.
 *
 * The handlers reap inside the handler, as UNP and CS:APP do, so that one
 * handler invocation is exactly one delivered signal: that is what makes
 * the lost-signal defect of reap_one_per_signal faithful. Everything they
 * call is async-signal-safe (wait, waitpid, write via event_emit) and they
 * preserve errno.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "die.h"
#include "echod.h"
#include "eventlog.h"

/*
 * The live children, for the connection limit and for SIGTERM, without a
 * signal mask change per fork (they were two of the fork model's system
 * calls per connection). Only the main loop touches the table. The
 * handlers, which may run at any instruction of it, only append the pids
 * they reap to a ring (`gone`); the main loop takes them off the table
 * when it next reads it (settle(), in children_count() and
 * children_signal_all()). Order makes it exact:
 *
 * - A child that exits before its parent has added it (SIGCHLD between
 *   fork() and children_add()) is in the ring and not yet in the table:
 *   children_add() adds it and only then settles, which takes it off again.
 *   (Settling first would miss it and leave a dead pid in the table: the
 *   race the old mask closed.)
 * - The handler writes the slot past the ring's head, then moves the head;
 *   the main loop reads slots below the head it loaded and then moves the
 *   tail. A handler that interrupts settle() writes a slot settle() does
 *   not read, and is seen next time.
 * - The table and the ring exist before the first fork() (reaper_install):
 *   a ring of no room would drop the first child's pid, were it reaped
 *   before its children_add(), and leave it in the table for good (a drain
 *   then waits out its deadline for a child long gone).
 * - The ring holds up to twice the table's capacity, and a pid enters it
 *   only once it is in the table or about to be: it cannot overflow. Were
 *   it ever full (a child not in the table), that pid would stay in the
 *   table, as a lost signal leaves a zombie: a stale count at worst, never
 *   a corrupted table.
 * - Growing the ring and the table (a doubling, so rarely) is the one
 *   place SIGCHLD is blocked: a handler must not write a ring being moved.
 *   The pids not yet settled move with it, in order: one may be the child
 *   whose children_add() is growing the table, reaped since its fork().
 */
static pid_t *kids;
static size_t nkids, kids_cap;
static pid_t *gone;
static size_t gone_cap, gone_tail, gone_head; /* head: handlers; tail: main */

static void gone_push(pid_t pid)
{
    size_t head = __atomic_load_n(&gone_head, __ATOMIC_RELAXED);

    if (head - __atomic_load_n(&gone_tail, __ATOMIC_ACQUIRE) >= gone_cap)
        return;
    gone[head % gone_cap] = pid;
    __atomic_store_n(&gone_head, head + 1, __ATOMIC_RELEASE);
}

static void children_remove(pid_t pid)
{
    for (size_t i = 0; i < nkids; i++) {
        if (kids[i] == pid) {
            kids[i] = kids[--nkids];
            return;
        }
    }
}

static void settle(void)
{
    size_t head = __atomic_load_n(&gone_head, __ATOMIC_ACQUIRE);
    size_t tail = gone_tail;

    for (; tail != head; tail++)
        children_remove(gone[tail % gone_cap]);
    __atomic_store_n(&gone_tail, tail, __ATOMIC_RELEASE);
}

/* Double both, with SIGCHLD blocked; the unsettled pids move along. */
static int children_grow(void)
{
    size_t cap = kids_cap ? kids_cap * 2 : 64, moved = 0;
    sigset_t chld, old;
    pid_t *grown, *ring;
    int rc = -1;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    grown = realloc(kids, cap * sizeof *grown);
    if (grown != NULL) {
        kids = grown;
        ring = malloc(2 * cap * sizeof *ring);
        if (ring != NULL) {
            for (size_t t = gone_tail; t != gone_head; t++)
                ring[moved++] = gone[t % gone_cap];
            free(gone);
            gone = ring;
            gone_cap = 2 * cap;
            gone_tail = 0;
            gone_head = moved;
            kids_cap = cap;
            rc = 0;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int children_add(pid_t pid)
{
    if (nkids == kids_cap && children_grow() < 0)
        return -1;
    kids[nkids++] = pid;
    settle();
    return 0;
}

size_t children_count(void)
{
    if (gone_cap)
        settle();
    return nkids;
}

void children_signal_all(int signo)
{
    if (gone_cap)
        settle();
    for (size_t i = 0; i < nkids; i++)
        kill(kids[i], signo);
}

/*
 * prefork: the children reaped since the master last looked. Only the
 * handlers append (plain stores, async-signal-safe) and only the master
 * takes, with SIGCHLD blocked, so the two never run at once. The master
 * takes after every wake-up and keeps at most one worker per slot, so a
 * list as long as the largest pool (--workers 1024) cannot overflow; were
 * it ever full, the newest would go unnoticed, as a lost signal does.
 */
#define REAPED_MAX 1024
static struct reaped_child reaped_list[REAPED_MAX];
static size_t nreaped;
static volatile sig_atomic_t tracking;

void reaped_track(void)
{
    tracking = 1;
}

size_t reaped_take(struct reaped_child *out, size_t max)
{
    size_t n = nreaped < max ? nreaped : max;

    memcpy(out, reaped_list, n * sizeof *out);
    memmove(reaped_list, reaped_list + n, (nreaped - n) * sizeof *out);
    nreaped -= n;
    return n;
}

static void note_reaped(pid_t pid, int status)
{
    struct event ev;

    gone_push(pid);
    if (tracking && nreaped < REAPED_MAX)
        reaped_list[nreaped++] = (struct reaped_child){ .pid = pid, .status = status };
    event_begin(&ev, "reaped");
    event_int(&ev, "child", pid);
    if (WIFEXITED(status))
        event_int(&ev, "exit", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        event_int(&ev, "signal", WTERMSIG(status));
    event_emit(&ev);
}

/* UNP server-v2: one wait() per SIGCHLD. Signals do not queue, so children
 * that exit together raise one pending SIGCHLD and all but one stay zombies
 * until some later SIGCHLD happens to reap them. */
static void reap_one_per_signal(int signo)
{
    int saved = errno, status;
    pid_t pid;

    (void)signo;
    log_child_signal();
    pid = wait(&status);
    if (pid > 0)
        note_reaped(pid, status);
    errno = saved;
}

/* UNP server-v3 / CS:APP: loop until no exited child is left, so one
 * SIGCHLD standing for many exits still reaps them all. */
static void reap_all_exited(int signo)
{
    int saved = errno;

    (void)signo;
    log_child_signal();
    reap_exited_children();
    errno = saved;
}

void reap_exited_children(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        note_reaped(pid, status);
}

void reaper_install(enum reap_strategy reap)
{
    if (kids_cap == 0 && children_grow() < 0)
        die("malloc: cannot make the child table");
    /* SA_NOCLDSTOP: a child stopped from outside (SIGSTOP) must not make
     * the one-wait handler block in wait() for a child that has not exited.
     * No SA_RESTART: the accept loop handles EINTR itself. */
    switch (reap) {
    case REAP_WAITPID:
        Sigaction(SIGCHLD, reap_all_exited, SA_NOCLDSTOP);
        break;
    case REAP_WAIT:
        Sigaction(SIGCHLD, reap_one_per_signal, SA_NOCLDSTOP);
        break;
    case REAP_NONE:
        /* UNP server-v1: no handler. SIG_DFL (not SIG_IGN, which would make
         * the kernel auto-reap) leaves every exited child a zombie. */
        Sigaction(SIGCHLD, SIG_DFL, 0);
        break;
    }
}

const char *reap_strategy_name(enum reap_strategy reap)
{
    switch (reap) {
    case REAP_WAITPID: return "waitpid";
    case REAP_WAIT:    return "wait";
    case REAP_NONE:    return "none";
    }
    return "?";
}
