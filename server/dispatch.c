/*
 * What every concurrency model's dispatch loop shares: taking a connection
 * off the listener with one error policy, the connection limit, SIGHUP
 * reload and drain deadlines (their events are built in events.c). The
 * model files hold only their loops.
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
#include "errfmt.h"
#include "fault.h"

void accept_backoff(const sigset_t *wait_mask)
{
    struct timespec pause = { 0, 100 * 1000 * 1000 };
    ppoll(NULL, 0, &pause, wait_mask);
}

bool reload_config(struct echod_options *opt)
{
    char err[FL_ERRLEN];
    struct echod_config fresh;

    reload_requested = 0;
    if (opt->config_path == NULL) {
        log_reload_failed("no --config file to re-read");
        return false;
    }
    if (config_load(opt->config_path, &opt->cli_faults, &fresh, err, sizeof err) < 0) {
        /* A broken file keeps the configuration in force. */
        log_reload_failed(err);
        return false;
    }
    opt->config = fresh;
    config_apply(&opt->config, opt->fault_seed);
    return true;
}

/* Sessions at the limit: accept the connection (so the client is not left
 * waiting in the backlog) and close it at once. */
bool over_limit_count(const struct echod_options *opt, long conn, int connfd,
                      size_t live)
{
    if (opt->config.max_conns <= 0 || (long)live < opt->config.max_conns)
        return false;
    log_conn("refused", conn, "live", (long long)live);
    close(connfd);
    return true;
}

bool over_limit(const struct echod_options *opt, long conn, int connfd)
{
    sigset_t chld, old;
    size_t live;

    if (opt->config.max_conns <= 0)
        return false;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    live = children_count();
    sigprocmask(SIG_SETMASK, &old, NULL);
    return over_limit_count(opt, conn, connfd, live);
}

int accept_connection(int listenfd, long *conn)
{
    return accept_connection_flags(listenfd, conn, 0);
}

int accept_connection_flags(int listenfd, long *conn, int flags)
{
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    int connfd = accept4(listenfd, (struct sockaddr *)&peer, &peerlen,
                         SOCK_CLOEXEC | flags);

    if (connfd < 0) {
        switch (errno) {
        /* The listener is non-blocking: EAGAIN when another wake-up (or
         * another worker) took the connection; ECONNABORTED/EPROTO when the
         * client reset it before we got here (UNP 5.11); EINTR from a
         * signal; and the network errors accept(2) says to treat like
         * EAGAIN. None of them concerns the server. */
        case EAGAIN: case ECONNABORTED: case EPROTO: case EINTR:
        case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
        case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return ACCEPT_NOTHING;
        /* The listener is no longer listening: a prefork master shut it
         * down at SIGTERM, and the SIGTERM that ends this loop is coming. */
        case EINVAL:
            return ACCEPT_NOTHING;
        /* A firewall or security module refused this one connection. */
        case EPERM: case EACCES:
            log_error("accept_error", "accept", errno);
            return ACCEPT_NOTHING;
        /* Out of descriptors or memory: the caller waits a little rather
         * than spin on a listener that stays readable. */
        case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
            log_error("accept_error", "accept", errno);
            return ACCEPT_BACK_OFF;
        default:
            die_errno("accept", "listening socket");
        }
    }
    ++*conn;
    log_accept(*conn, (struct sockaddr *)&peer, peerlen);
    return connfd;
}

int next_connection(int listenfd, struct echod_options *opt, long *conn,
                    const sigset_t *wait_mask)
{
    struct pollfd listener = { .fd = listenfd, .events = POLLIN };

    if (reload_requested && reload_config(opt))
        log_reload(opt);
    if (ppoll(&listener, 1, NULL, wait_mask) < 0) {
        if (errno == EINTR)
            return -1;
        die_errno("ppoll", "listening socket");
    }
    int connfd = accept_connection(listenfd, conn);

    if (connfd == ACCEPT_BACK_OFF)
        accept_backoff(wait_mask);
    return connfd;
}

struct timespec deadline_after(long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

bool time_left(const struct timespec *deadline, struct timespec *left)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    left->tv_sec = deadline->tv_sec - now.tv_sec;
    left->tv_nsec = deadline->tv_nsec - now.tv_nsec;
    if (left->tv_nsec < 0) {
        left->tv_sec--;
        left->tv_nsec += 1000000000L;
    }
    return left->tv_sec >= 0;
}

#if FL_FAULT_HOOKS
bool accept_hook(long conn, int connfd, const char *fail_event,
                 const char *fail_call, bool *leak)
{
    struct fault_ctx ctx = { .conn = conn, .bytes = 0, .fd = connfd };
    struct fault_hit hit = FAULT_HOOK(FP_ACCEPT, &ctx);

    *leak = hit.action == FA_LEAK;
    if (hit.action == FA_NONE || hit.action == FA_LEAK)
        return true;
    if (hit.action == FA_FORK_FAIL) {
        /* The visible effect is the same in every model: an error event
         * and a connection closed unserved. */
        log_error(fail_event, fail_call, EAGAIN);
        close(connfd);
        return false;
    }
    /* rst, close: no session. (shutdown_wr never applies at accept.) */
    return socket_fault(hit, connfd, conn) != SOCK_FAULT_CLOSED;
}

enum sock_fault_effect socket_fault(struct fault_hit hit, int fd, long conn)
{
    enum sock_fault_effect effect;
    char err[FL_ERRLEN];

    if (sock_fault_apply(fd, hit.action, &effect, err, sizeof err) < 0)
        log_fault_error(conn, err);
    return effect;
}
#endif
