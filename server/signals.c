/*
 * echod's signal handlers other than SIGCHLD (reap.c). Each only logs and
 * sets a flag; the loops do the work. SIGTERM, SIGINT and SIGHUP stay
 * blocked except inside the accept loop's ppoll(), which unblocks them
 * atomically, so a request cannot slip between the flag check and the wait.
 *
 * That alone is not enough under load: when ppoll() or epoll_pwait()
 * returns ready descriptors, Linux restores the blocked mask without
 * delivering a signal that became pending during the wait (only an EINTR
 * return delivers it). A loop whose wait always has something ready (a
 * saturating stream, a flood of connects, a shut-down listener) would keep
 * the signal pending forever. So every wait that can return ready is
 * followed by signals_deliver_pending(): one sigpending() per wake-up, and
 * only when one of the wait's signals is pending, a brief unblock that
 * runs its handler. Handlers stay the one place a signal is taken, so the
 * reapers of reap.c (UNP 5.10's wait() per delivery) keep their meaning;
 * a signalfd would have replaced them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "die.h"
#include "echod.h"
#include "eventlog.h"

volatile sig_atomic_t terminate_requested;
volatile sig_atomic_t reload_requested;

static const char *signal_name(int signo)
{
    switch (signo) {
    case SIGCHLD: return "SIGCHLD";
    case SIGTERM: return "SIGTERM";
    case SIGINT:  return "SIGINT";
    case SIGHUP:  return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    default:      return "other";
    }
}

void log_signal(int signo)
{
    struct event ev;
    event_begin(&ev, "signal");
    event_int(&ev, "signo", signo);
    event_str(&ev, "name", signal_name(signo));
    event_emit(&ev);
}

static void request_termination(int signo)
{
    log_signal(signo);
    terminate_requested = 1;
}

static void request_reload(int signo)
{
    log_signal(signo);
    reload_requested = 1;
}

/* UC3M exercise 6: see when SIGPIPE fires. Returning lets the write fail
 * with EPIPE, which the session reports. */
static void note_sigpipe(int signo)
{
    log_signal(signo);
}

void signals_deliver_pending(const sigset_t *open_mask)
{
    /* The signals echod blocks outside its waits: no other can be left
     * pending by a ready wait. Four looks, not NSIG: this runs per line. */
    static const int held[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
    sigset_t pending, blocked;
    bool waiting = false;

    if (sigpending(&pending) < 0)
        return;
    /* Only what the wait would have let in: a signal this thread keeps
     * blocked even there (SIGTERM in a thread session) is not ours. */
    for (size_t i = 0; i < sizeof held / sizeof held[0] && !waiting; i++)
        waiting = sigismember(&pending, held[i]) == 1 &&
                  sigismember(open_mask, held[i]) == 0;
    if (!waiting)
        return;
    /* The handlers run on the way out of the first call. */
    pthread_sigmask(SIG_SETMASK, open_mask, &blocked);
    pthread_sigmask(SIG_SETMASK, &blocked, NULL);
}

void signals_install(enum sigpipe_mode sigpipe, sigset_t *wait_mask)
{
    sigset_t blocked;

    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);
    Sigprocmask(SIG_BLOCK, &blocked, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGHUP);
    Sigaction(SIGTERM, request_termination, 0);
    Sigaction(SIGINT, request_termination, 0);
    Sigaction(SIGHUP, request_reload, 0);
    switch (sigpipe) {
    case SIGPIPE_DEFAULT:
        Sigaction(SIGPIPE, SIG_DFL, 0);
        break;
    case SIGPIPE_IGNORE:
        Sigaction(SIGPIPE, SIG_IGN, 0);
        break;
    case SIGPIPE_HANDLER:
        Sigaction(SIGPIPE, note_sigpipe, SA_RESTART);
        break;
    }
}

/* A serving child reaps nobody and reloads nothing. SIGTERM asks it to
 * finish what it has read and close (session.c): it stays blocked except
 * while the session waits for data in ppoll(), like the parent's. SIGINT
 * is ignored: Ctrl-C reaches the whole process group, and the parent turns
 * it into that same SIGTERM drain for every child. SIGPIPE's disposition
 * is kept. */
void signals_reset_in_child(void)
{
    sigset_t only_term;

    Sigaction(SIGCHLD, SIG_DFL, 0);
    Sigaction(SIGHUP, SIG_IGN, 0);
    Sigaction(SIGINT, SIG_IGN, 0);
    terminate_requested = 0;
    sigemptyset(&only_term);
    sigaddset(&only_term, SIGTERM);
    Sigprocmask(SIG_SETMASK, &only_term, NULL);
}
