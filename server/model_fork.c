/*
 * The fork model: one child process per connection (UNP's tcpserv01,
 * CS:APP's echoserverp, the FreeBSD handbook's concurrent daemon). This
 * file holds only the accept/dispatch loop; SIGCHLD strategies are in
 * reap.c, the session in session.c.
 *
 * The parent waits in ppoll() with SIGTERM and SIGHUP unblocked only there,
 * so a termination request can never slip in between the flag check and
 * the wait. SIGCHLD is never blocked: reaping must interrupt the wait, as
 * it interrupts accept() in UNP, and EINTR simply loops.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"
#include "eventlog.h"
#include "net.h"

static void log_accept(long conn, const struct sockaddr *peer, socklen_t len)
{
    char text[ADDR_TEXT_MAX];
    struct event ev;

    addr_format(peer, len, text, sizeof text);
    event_begin(&ev, "accept");
    event_int(&ev, "conn", conn);
    event_str(&ev, "peer", text);
    event_emit(&ev);
}

static void log_error(const char *name, const char *call, int errnum)
{
    struct event ev;
    event_begin(&ev, name);
    event_str(&ev, "call", call);
    event_str(&ev, "error", strerror(errnum));
    event_emit(&ev);
}

/* The child: drop what belongs to the parent, serve, exit. */
static void run_child(int listenfd, int connfd, long conn)
{
    struct event ev;
    sigset_t none;
    int status;

    close(listenfd);
    /* Handlers and the blocked mask are inherited; a child reaps nobody and
     * dies of SIGTERM like any simple process. */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    event_begin(&ev, "child_start");
    event_int(&ev, "conn", conn);
    event_emit(&ev);

    status = echo_session(connfd, conn);
    close(connfd);

    event_begin(&ev, "child_exit");
    event_int(&ev, "conn", conn);
    event_int(&ev, "status", status);
    event_emit(&ev);
    /* _exit: stdio buffers were copied from the parent and are not ours. */
    _exit(status);
}

/* Out of descriptors or memory: wait a little instead of spinning on a
 * listener that stays readable. Terminating signals still cut it short. */
static void accept_backoff(const sigset_t *wait_mask)
{
    struct timespec pause = { 0, 100 * 1000 * 1000 };
    ppoll(NULL, 0, &pause, wait_mask);
}

int serve_fork(int listenfd, const struct echod_options *opt,
               const sigset_t *wait_mask)
{
    struct pollfd listener = { .fd = listenfd, .events = POLLIN };
    long conn = 0;

    while (!terminate_requested) {
        struct sockaddr_storage peer;
        socklen_t peerlen = sizeof peer;
        int connfd;
        pid_t pid;

        if (ppoll(&listener, 1, NULL, wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("ppoll", "listening socket");
        }
        connfd = accept(listenfd, (struct sockaddr *)&peer, &peerlen);
        if (connfd < 0) {
            /* The listener is non-blocking: EAGAIN when another wake-up took
             * the connection; ECONNABORTED/EPROTO when the client reset it
             * before we got here (UNP 5.11); EINTR from SIGCHLD. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED || errno == EPROTO)
                continue;
            log_error("accept_error", "accept", errno);
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                accept_backoff(wait_mask);
                continue;
            }
            die_errno("accept", "listening socket");
        }
        conn++;
        log_accept(conn, (struct sockaddr *)&peer, peerlen);

        pid = fork();
        if (pid == 0)
            run_child(listenfd, connfd, conn);
        if (pid < 0) {
            log_error("fork_error", "fork", errno);
            close(connfd);
            continue;
        }
        struct event ev;
        event_begin(&ev, "fork");
        event_int(&ev, "conn", conn);
        event_int(&ev, "child", pid);
        event_emit(&ev);

        /* The FreeBSD handbook's rule: the parent must close the accepted
         * socket, or the connection never closes and descriptors pile up.
         * --leak-connfd breaks it on purpose. */
        if (!opt->leak_connfd)
            close(connfd);
    }

    close(listenfd);
    struct event ev;
    event_begin(&ev, "stop");
    event_int(&ev, "connections", conn);
    event_emit(&ev);
    /* Reap what this strategy would reap; the faulty ones leave theirs. */
    if (opt->reap == REAP_WAITPID)
        reap_exited_children();
    return 0;
}
