/*
 * echod's signal handlers other than SIGCHLD (reap.c). Each logs and sets
 * a flag; the loops do the work.
 *
 * Two ways to keep a request from slipping between the flag check and the
 * wait that follows it:
 *
 * - The event loops, the thread model and the prefork master keep SIGTERM,
 *   SIGINT and SIGHUP blocked except inside their wait (ppoll(),
 *   epoll_pwait()), which unblocks them atomically. Under load that is not
 *   enough: when such a wait finds descriptors ready, Linux returns them
 *   and restores the blocked mask without delivering a signal pending
 *   then (only an EINTR return delivers it). A loop whose wait always has
 *   something ready (a saturating stream, a flood of connects) would keep
 *   the signal pending forever. So every wait that can return ready also
 *   watches a doorbell (signals_doorbell()): a signalfd over those
 *   signals, readable while one of them is pending. Nothing is ever read
 *   from it (the handlers take every signal); when the wait reports it,
 *   signals_deliver_pending() unblocks briefly and the handler runs. No
 *   system call per wake-up: the previous sigpending() after every ready
 *   wait was two of the poll model's ten per connection.
 * - The blocking processes (the fork parent and its children, the prefork
 *   workers) leave SIGTERM unblocked and wait in plain accept() and recv(),
 *   the minimal server's two system calls, with no wait and no mask change
 *   around them. The handler itself closes the race: besides the flag, it
 *   shuts down for reading the one descriptor its process blocks on
 *   (signals_shut_on_term()): the fork parent's listener, whose accept()
 *   then fails with EINVAL at once and for good, or a session's
 *   connection, whose recv() then returns what had arrived and then 0
 *   without waiting (a drain: session.c). A signal that comes before the
 *   check is seen by the check; one that comes after finds the descriptor
 *   and shuts it, whether the process is already asleep in the call or
 *   about to enter it. shutdown() is async-signal-safe. A flag with no
 *   descriptor to shut (SIGHUP in the fork parent, SIGTERM in an idle
 *   prefork worker, which must not shut the listener the pool shares)
 *   arms a one-shot timer instead (signals_wake_on_flag()): SIGNAL_WAKE_MS
 *   later its SIGALRM, whose handler has no SA_RESTART, ends the accept()
 *   the process may have entered just after its check (EINTR), and the
 *   loop reads the flag; while the flag stays unread the handler arms the
 *   timer again, so a process descheduled between check and call for
 *   longer than that is still woken. Asleep in accept() already, the
 *   process was woken by the signal itself; the timer's EINTR then costs
 *   one more turn of the loop. The delay is bounded, never a lost signal,
 *   and costs nothing per connection. timer_settime() is async-signal-safe;
 *   timers are not inherited by fork().
 *
 * Handlers stay the one place a signal is taken, so the reapers of reap.c
 * (UNP 5.10's wait() per delivery) keep their meaning; a signalfd would
 * have replaced them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"
#include "eventlog.h"

volatile sig_atomic_t terminate_requested;
volatile sig_atomic_t reload_requested;

/* What SIGTERM shuts for reading in this process (-1: nothing), and for a
 * listener the process that owns it: a fork child runs its parent's
 * handler until it has dropped the listener, and must not shut the
 * listener every other process accepts on. getpid() is asked only when a
 * signal comes, never per connection. */
static volatile sig_atomic_t term_listener = -1;
static volatile sig_atomic_t term_session = -1;
static volatile pid_t term_listener_owner; /* volatile: stored before term_listener */

void signals_shut_on_term(int listenfd)
{
    term_listener_owner = getpid();
    term_listener = listenfd;
}

void signals_session_fd(int connfd)
{
    term_session = connfd;
}

/* The one-shot wake-up of a process that waits in accept(); wake_ready:
 * this process has one. */
static timer_t wake_timer;
static volatile sig_atomic_t wake_ready;

static void wake_soon(void);

/* The wake-up's SIGALRM: its work is the EINTR it causes. Armed again
 * while the flag it was armed for is still unread: a process descheduled
 * between its check and its accept() for longer than SIGNAL_WAKE_MS would
 * otherwise take the alarm before the call and sleep in it after. */
static void wake_again(int signo)
{
    int saved = errno;

    (void)signo;
    if (reload_requested || (terminate_requested && term_session < 0 && term_listener < 0))
        wake_soon();
    errno = saved;
}

void signals_wake_off(void)
{
    struct itimerspec off = { { 0, 0 }, { 0, 0 } };

    if (wake_ready) {
        wake_ready = 0;
        timer_settime(wake_timer, 0, &off, NULL);
    }
}

void signals_wake_on_flag(void)
{
    struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };

    Sigaction(SIGALRM, wake_again, 0);
    if (timer_create(CLOCK_MONOTONIC, &sev, &wake_timer) < 0)
        die_errno("timer_create", "signal wake-up");
    wake_ready = 1;
}

/* A fork child keeps its parent's handlers and mask (changing them would
 * cost it system calls on every connection); they tell it apart by its
 * pid, which differs from the listener's owner from the moment fork()
 * returns in it. */
static bool in_fork_child(void)
{
    return term_listener >= 0 && getpid() != term_listener_owner;
}

/* Arm the wake-up: in_fork_child() first, the timer is the parent's. */
static void wake_soon(void)
{
    struct itimerspec soon = { .it_value = { 0, SIGNAL_WAKE_MS * 1000000L } };

    if (wake_ready && !in_fork_child())
        timer_settime(wake_timer, 0, &soon, NULL);
}

/* The session's connection if there is one (a fork child's, a worker's),
 * else the fork parent's listener, else the wake-up (an idle worker). */
static void shut_on_term(void)
{
    int session = term_session, listener = term_listener;

    if (session >= 0)
        shutdown(session, SHUT_RD);
    else if (listener >= 0 && !in_fork_child())
        shutdown(listener, SHUT_RD);
    else
        wake_soon();
}

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

static void emit_signal(struct event *ev, int signo)
{
    event_int(ev, "signo", signo);
    event_str(ev, "name", signal_name(signo));
    event_emit(ev);
}

/* SIGTERM, SIGINT, SIGHUP, SIGPIPE: one can reach a fork child as its
 * fork() returns, before its cached pid is forgotten (eventlog.c). */
void log_signal(int signo)
{
    struct event ev;

    event_begin_in_handler(&ev, "signal");
    emit_signal(&ev, signo);
}

/* Only a process that has forked takes a SIGCHLD, never a child just born:
 * its cached pid is right, and no system call is made per connection. */
void log_child_signal(void)
{
    struct event ev;

    event_begin(&ev, "signal");
    emit_signal(&ev, SIGCHLD);
}

/* The flag before the shutdown: a call the shutdown ends finds it set. */
static void request_termination(int signo)
{
    int saved = errno;

    /* A fork child ignores SIGINT: Ctrl-C reaches the whole process group,
     * and the parent turns it into a SIGTERM for every child. */
    if (signo == SIGINT && in_fork_child()) {
        errno = saved;
        return;
    }
    log_signal(signo);
    terminate_requested = 1;
    shut_on_term();
    errno = saved;
}

/* A fork child reloads nothing: it ignores SIGHUP. */
static void request_reload(int signo)
{
    int saved = errno;

    if (!in_fork_child()) {
        log_signal(signo);
        reload_requested = 1;
        wake_soon();
    }
    errno = saved;
}

/* UC3M exercise 6: see when SIGPIPE fires. Returning lets the write fail
 * with EPIPE, which the session reports. */
static void note_sigpipe(int signo)
{
    log_signal(signo);
}

int signals_doorbell(const sigset_t *open_mask)
{
    /* The signals echod blocks outside its waits: no other can be left
     * pending by a ready wait. */
    static const int held[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
    sigset_t rings;
    int fd;

    /* Only what the wait lets in: a signal this thread keeps blocked even
     * there is not the wait's to deliver. */
    sigemptyset(&rings);
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++)
        if (sigismember(open_mask, held[i]) == 0)
            sigaddset(&rings, held[i]);
    fd = signalfd(-1, &rings, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        die_errno("signalfd", "pending-signal doorbell");
    return fd;
}

void signals_deliver_pending(const sigset_t *open_mask)
{
    sigset_t blocked;

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

/* A prefork worker reaps nobody and reloads nothing. SIGTERM asks it to
 * stop taking connections and to drain the one it serves (session.c): it
 * stays unblocked, its handler shutting the session's connection. SIGINT
 * is ignored: Ctrl-C reaches the whole process group, and the master turns
 * it into that same SIGTERM for every worker. SIGPIPE's disposition is
 * kept. (A fork child changes nothing: signals_fork_child().) Once per
 * worker, not per connection. */
void signals_reset_in_child(void)
{
    sigset_t none;

    Sigaction(SIGCHLD, SIG_DFL, 0);
    Sigaction(SIGHUP, SIG_IGN, 0);
    Sigaction(SIGINT, SIG_IGN, 0);
    term_listener = -1;
    terminate_requested = 0;
    sigemptyset(&none);
    Sigprocmask(SIG_SETMASK, &none, NULL);
}
