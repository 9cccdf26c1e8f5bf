/*
 * The fork model: one child process per connection (UNP's tcpserv01,
 * CS:APP's echoserverp, the FreeBSD handbook's concurrent daemon). This
 * file holds only the accept/dispatch loop; SIGCHLD strategies are in
 * reap.c, the session in session.c.
 *
 * The parent blocks in accept() on a blocking listener, and the child in
 * recv(), as the minimal fork server does: per connection the parent makes
 * accept4, clone and close (and the reaper its wait4s), the child recv,
 * write and close, and nothing else. No signal is blocked around them:
 *
 * - SIGTERM/SIGINT: the handler sets the flag and shuts the listener for
 *   reading (signals.c), so accept() fails with EINVAL at once, whether
 *   the signal came before it or during it: no window to lose it in.
 * - SIGHUP: its flag is read at the top of the loop; one that comes while
 *   accept() sleeps ends it (EINTR: the handlers have no SA_RESTART). One
 *   that lands between the check and the call is read SIGNAL_WAKE_MS
 *   later, when the wake-up timer its handler armed ends the accept().
 * - SIGCHLD: the reaper runs wherever it lands; the child table is safe
 *   beside it without a mask (reap.c), including a child that exits and is
 *   reaped before the parent has added it.
 * - The child keeps its parent's handlers and mask (resetting them cost
 *   five system calls per connection): the handlers tell a child by its
 *   pid, ignore SIGINT and SIGHUP there, and shut the child's connection,
 *   not the listener, at SIGTERM. A SIGTERM the parent took just before the
 *   fork is inherited in the flag: the child drains at once, as it would
 *   when the parent forwards its SIGTERM a moment later.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"

/* The child: drop what belongs to the parent, serve, exit. A leak at
 * accept or --leak-connfd is the parent's copy: the child closes its own. */
static noreturn void run_child(int listenfd, int connfd, long conn)
{
    close(listenfd);
    accept_reserve_drop();
    /* _exit: stdio buffers were copied from the parent and are not ours. */
    _exit(session_serve(connfd, conn, SERVED_BY_CHILD, 0, false));
}

static pid_t fork_child(int listenfd, int connfd, long conn)
{
    pid_t pid = fork();

    if (pid == 0)
        run_child(listenfd, connfd, conn);
    /* Right after fork(): a child already reaped is settled by the add. */
    if (pid > 0 && children_add(pid) < 0)
        log_error("child_table_error", "realloc", ENOMEM);
    return pid;
}

/* Wait until the child table is empty or the deadline passes. SIGCHLD
 * stays blocked except inside ppoll(), which unblocks it atomically (it is
 * not in wait_mask): a child reaped between reading the count and going to
 * sleep would otherwise leave us asleep until the deadline. Call with
 * SIGCHLD blocked. */
static bool wait_children(struct timespec deadline, const sigset_t *wait_mask)
{
    struct timespec left;

    while (children_count() > 0) {
        if (!time_left(&deadline, &left))
            return false;
        ppoll(NULL, 0, &left, wait_mask);
    }
    return true;
}

/* SIGTERM: the listener is already closed. Ask the sessions to finish what
 * they have read, give them drain_ms, then end the stragglers and wait
 * (a bounded second) until the reaper has seen them go. */
static void drain(const struct echod_options *opt, const sigset_t *wait_mask)
{
    sigset_t chld, old;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    children_signal_all(SIGTERM);
    /* The faulty reapers cannot tell when their children are done. */
    if (opt->reap == REAP_WAITPID &&
        !wait_children(deadline_after(opt->drain_ms), wait_mask)) {
        log_drain_timeout(children_count());
        children_signal_all(SIGKILL);
        wait_children(deadline_after(1000), wait_mask);
    }
    /* Reap what this strategy would reap, with the handler held off so the
     * two never edit the child table at once; the faulty ones leave theirs. */
    if (opt->reap == REAP_WAITPID)
        reap_exited_children();
    sigprocmask(SIG_SETMASK, &old, NULL);
}

int serve_fork(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    long conn = 0;

    Listener_blocking(listenfd);
    signals_wake_on_flag();
    signals_shut_on_term(listenfd);
    /* From here SIGTERM, SIGINT and SIGHUP are never blocked (above). */
    Sigprocmask(SIG_SETMASK, wait_mask, NULL);

    while (!terminate_requested) {
        bool leak;
        int connfd;
        pid_t pid;

        if (reload_requested && reload_config(opt))
            log_reload(opt);
        connfd = accept_connection(listenfd, &conn);
        if (connfd == ACCEPT_BACK_OFF)
            accept_backoff(NULL);
        if (connfd < 0)
            continue;
        if (over_limit(opt, conn, connfd))
            continue;

        if (!accept_hook(conn, connfd, "fork_error", "fork (injected)", &leak))
            continue;

        pid = fork_child(listenfd, connfd, conn);
        if (pid < 0) {
            log_error("fork_error", "fork", errno);
            close(connfd);
            continue;
        }
        log_conn("fork", conn, "child", pid);

        /* The FreeBSD handbook's rule: the parent must close the accepted
         * socket, or the connection never closes and descriptors pile up.
         * --leak-connfd (or a leak fault at accept) breaks it on purpose. */
        if (!opt->leak_connfd && !leak)
            close(connfd);
    }

    /* Unregistered first: a later SIGTERM must not shut a reused number,
     * and a SIGHUP in the drain has no loop left to wake. */
    signals_shut_on_term(-1);
    signals_wake_off();
    close(listenfd);
    log_stop(conn);
    drain(opt, wait_mask);
    return 0;
}
