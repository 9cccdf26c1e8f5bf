/*
 * What every concurrency model's dispatch loop shares: taking a connection
 * off the listener with one error policy, the connection limit, SIGHUP
 * reload and drain deadlines (their events are built in events.c). The
 * model files hold only their loops.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"
#include "errfmt.h"
#include "eventlog.h"
#include "fault.h"

/* The fork parent and the prefork workers block in accept(): the listener
 * made blocking (the master never accepts, so nothing else needs it
 * non-blocking). No receive timeout: accepted sockets would inherit it.
 * Setup: dies. */
void Listener_blocking(int listenfd)
{
    int flags = fcntl(listenfd, F_GETFL);

    if (flags < 0 || fcntl(listenfd, F_SETFL, flags & ~O_NONBLOCK) < 0)
        die_errno("fcntl ~O_NONBLOCK", "listening socket");
}

/* wait_mask NULL: the mask stays (the blocking models keep SIGTERM open). */
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
    if (config_load(opt->config_path, opt->cli_max_conns, &opt->cli_faults, &fresh, err, sizeof err) < 0) {
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

/* children_count() is safe beside the reaper (reap.c): no mask needed. */
bool over_limit(const struct echod_options *opt, long conn, int connfd)
{
    if (opt->config.max_conns <= 0)
        return false;
    return over_limit_count(opt, conn, connfd, children_count());
}

/* --emfile reserve: a descriptor held back for the moment the process
 * runs out, -1 without it (or in a fork child, which accepts nothing). */
static int reserve_fd = -1;

void accept_reserve_open(void)
{
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (reserve_fd < 0)
        die_errno("open", "/dev/null (the --emfile reserve)");
}

/* Writes only when there is one: a fork child's store to this page would
 * be a copy-on-write fault per connection. */
void accept_reserve_drop(void)
{
    if (reserve_fd >= 0) {
        close(reserve_fd);
        reserve_fd = -1;
    }
}

/* Out of descriptors, with one in reserve: free it, take the connection
 * that waits, close it at once, take the reserve back. The client sees
 * its connection closed now rather than hanging in the backlog, the
 * listener stops being ready, and nobody sleeps: the other sessions go on
 * at full speed (the libev/nginx idiom). Returns true when that is done
 * (one shed, or none was waiting after all), false without a reserve. */
static bool shed_with_reserve(int listenfd, long *conn, int errnum)
{
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    struct event ev;
    int fd, accept_errno;

    struct pollfd waiting = { .fd = listenfd, .events = POLLIN };

    if (reserve_fd < 0)
        return false;
    /* A blocking listener (fork, prefork) must not hold us here when
     * another worker took the connection: look first. */
    if (poll(&waiting, 1, 0) == 0)
        return true;
    accept_reserve_drop();
    fd = accept4(listenfd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC);
    accept_errno = errno;
    if (fd >= 0) {
        long number = __atomic_add_fetch(conn, 1, __ATOMIC_RELAXED);

        log_accept(number, (struct sockaddr *)&peer, peerlen);
        event_begin(&ev, "refused");
        event_int(&ev, "conn", number);
        event_str(&ev, "error", strerror(errnum));
        event_emit(&ev);
        close(fd);
    }
    /* Fails only if something else took the descriptor meanwhile: the
     * next EMFILE then backs off as without a reserve. */
    reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 || accept_errno == EAGAIN || accept_errno == EWOULDBLOCK ||
           accept_errno == ECONNABORTED;
}

/* --keepalive on an accepted socket. A failure is logged and the session
 * served anyway: keepalive only finds dead peers sooner. */
static void keepalive_apply(int connfd)
{
    static const struct {
        int level, name;
        const char *call;
    } opts[] = {
        { SOL_SOCKET, SO_KEEPALIVE, "setsockopt(SO_KEEPALIVE)" },
        { IPPROTO_TCP, TCP_KEEPIDLE, "setsockopt(TCP_KEEPIDLE)" },
        { IPPROTO_TCP, TCP_KEEPINTVL, "setsockopt(TCP_KEEPINTVL)" },
        { IPPROTO_TCP, TCP_KEEPCNT, "setsockopt(TCP_KEEPCNT)" },
    };
    const int values[] = { 1, session_limits.keepalive_idle,
                           session_limits.keepalive_intvl,
                           session_limits.keepalive_cnt };

    if (session_limits.keepalive_idle <= 0)
        return;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (values[i] <= 0)
            continue; /* the kernel's default (net.ipv4.tcp_keepalive_*) */
        if (setsockopt(connfd, opts[i].level, opts[i].name, &values[i],
                       sizeof values[i]) < 0)
            log_error("keepalive_error", opts[i].call, errno);
    }
}

int accept_connection(int listenfd, long *conn)
{
    long number;

    return accept_numbered(listenfd, conn, 0, &number);
}

int accept_connection_flags(int listenfd, long *conn, int flags)
{
    long number;

    return accept_numbered(listenfd, conn, flags, &number);
}

int accept_numbered(int listenfd, long *counter, int flags, long *number)
{
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof peer;
    int connfd = accept4(listenfd, (struct sockaddr *)&peer, &peerlen,
                         SOCK_CLOEXEC | flags);

    if (connfd < 0) {
        switch (errno) {
        /* The listener is non-blocking (but in fork and prefork): EAGAIN
         * when another wake-up (or worker) took the connection;
         * ECONNABORTED/EPROTO
         * when the client reset it before we got here (UNP 5.11); EINTR
         * from a signal; and the network errors accept(2) says to treat
         * like EAGAIN. None of them concerns the server. */
        case EAGAIN: case ECONNABORTED: case EPROTO: case EINTR:
        case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN: case ENONET:
        case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return ACCEPT_NOTHING;
        /* The listener is no longer listening: SIGTERM shut it down (the
         * prefork master, the fork parent's handler), and the flag that
         * ends this loop is set or coming. */
        case EINVAL:
            return ACCEPT_NOTHING;
        /* A firewall or security module refused this one connection. */
        case EPERM: case EACCES:
            log_error("accept_error", "accept", errno);
            return ACCEPT_NOTHING;
        /* Out of descriptors or memory: shed the connection with the
         * reserve (--emfile reserve), or else the caller waits a little
         * rather than spin on a listener that stays readable (poll and
         * epoll by leaving the listener out of their wait: a sleep would
         * stall every session). */
        case EMFILE: case ENFILE:
            if (shed_with_reserve(listenfd, counter, errno))
                return ACCEPT_NOTHING;
            log_error("accept_error", "accept", errno);
            return ACCEPT_BACK_OFF;
        case ENOBUFS: case ENOMEM:
            log_error("accept_error", "accept", errno);
            return ACCEPT_BACK_OFF;
        /* Anything else (EBADF, ENOTSOCK, EFAULT: a bug, or a kernel that
         * grew a new error): the server that dies of it takes every
         * session with it. Log it and back off; the sessions go on. */
        default:
            log_error("accept_error", "accept", errno);
            return ACCEPT_BACK_OFF;
        }
    }
    /* Atomic: the prefork workers number their connections in one shared
     * counter, each taking its own without a lock. */
    *number = __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
    log_accept(*number, (struct sockaddr *)&peer, peerlen);
    keepalive_apply(connfd);
    return connfd;
}

int next_connection(int listenfd, int doorbell, struct echod_options *opt, long *conn,
                    const sigset_t *wait_mask)
{
    struct pollfd wait_on[2] = { { .fd = listenfd, .events = POLLIN },
                                 { .fd = doorbell, .events = POLLIN } };

    if (reload_requested && reload_config(opt))
        log_reload(opt);
    if (ppoll(wait_on, 2, NULL, wait_mask) < 0) {
        if (errno == EINTR)
            return -1;
        die_errno("ppoll", "listening socket");
    }
    /* A flood of connects keeps the listener ready: take SIGTERM/SIGHUP
     * now, or never. */
    if (wait_on[1].revents & POLLIN)
        signals_deliver_pending(wait_mask);
    /* A SIGTERM just taken: no connection after it, ready or not. */
    if (wait_on[0].revents == 0 || terminate_requested)
        return -1;
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

struct session_limits session_limits;

bool timespec_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

void deadlines_start(struct session_deadlines *d)
{
    d->idle_on = session_limits.idle_ms > 0;
    d->end_on = session_limits.session_ms > 0;
    if (d->idle_on)
        d->idle = deadline_after(session_limits.idle_ms);
    if (d->end_on)
        d->end = deadline_after(session_limits.session_ms);
}

void deadlines_read(struct session_deadlines *d)
{
    if (d->idle_on)
        d->idle = deadline_after(session_limits.idle_ms);
}

bool deadlines_next(const struct session_deadlines *d, struct timespec *when,
                    const char **which)
{
    if (d->idle_on && (!d->end_on || !timespec_before(&d->end, &d->idle))) {
        *when = d->idle;
        *which = "idle";
        return true;
    }
    if (d->end_on) {
        *when = d->end;
        *which = "session";
        return true;
    }
    return false;
}
