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
 * The live children, for the connection limit and for SIGTERM. The main
 * loop adds with SIGCHLD blocked (it may grow the array); the handlers only
 * remove, in place, so they never meet a half-grown array.
 */
static pid_t *kids;
static size_t nkids, kids_cap;

int children_add(pid_t pid)
{
    if (nkids == kids_cap) {
        size_t cap = kids_cap ? kids_cap * 2 : 64;
        pid_t *grown = realloc(kids, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        kids = grown;
        kids_cap = cap;
    }
    kids[nkids++] = pid;
    return 0;
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

size_t children_count(void)
{
    return nkids;
}

void children_signal_all(int signo)
{
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

    children_remove(pid);
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

    log_signal(signo);
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

    log_signal(signo);
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
