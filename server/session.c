/*
 * One echo session (UNP's str_echo): whatever read() returns goes back with
 * writen(), so binary data and NULs are echoed byte for byte.
 *
 * Error policy: EINTR is retried. ECONNRESET on read and EPIPE/ECONNRESET
 * on write mean the peer is gone: the session ends and says so in the
 * event log. With SIGPIPE at its default disposition the write that would
 * return EPIPE kills the process instead (UNP 5.13), which the suite
 * observes.
 *
 * Termination: SIGTERM is blocked except while the session waits for data
 * in ppoll(). When it arrives, the session echoes what has already arrived
 * (a line in flight is finished), then closes: a drain, not a cut. Sessions
 * that are threads keep every signal blocked (they belong to the main
 * thread) and wait on session_stop_fd beside the connection instead: once
 * it is readable they drain the same way.
 *
 * Fault hooks sit at before_read, after_read, before_write, after_write;
 * the process-level faults (kill, delay, ...) happen inside the hook, the
 * socket-level ones are carried out by session_apply_fault().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "echod.h"
#include "fault.h"
#include "io.h"

#define SESSION_BUFSIZE 16384

bool session_apply_fault(struct fault_hit hit, int fd, bool *fd_closed)
{
    struct linger abortive = { .l_onoff = 1, .l_linger = 0 };

    switch (hit.action) {
    case FA_RST:
        /* SO_LINGER with a zero timeout turns close() into an abort: the
         * kernel sends RST and discards unsent data, no FIN. */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
        close(fd);
        *fd_closed = true;
        return true;
    case FA_CLOSE:
        close(fd);
        *fd_closed = true;
        return true;
    case FA_SHUTDOWN_WR:
        shutdown(fd, SHUT_WR);
        return false;
    default:
        return false;
    }
}

/* Write n bytes, at most `limit` per write(2) when a short= fault asks. */
static ssize_t write_echo(int fd, const char *buf, size_t n, long long limit)
{
    size_t done = 0;

    if (limit <= 0)
        return writen(fd, buf, n);
    while (done < n) {
        size_t piece = n - done < (size_t)limit ? n - done : (size_t)limit;
        if (writen(fd, buf + done, piece) < 0)
            return -1;
        done += piece;
    }
    return (ssize_t)n;
}

int session_stop_fd = -1;

/* Wait until fd is readable or SIGTERM came (session_stop_fd became
 * readable, for threads). Returns 1 readable, 0 asked to terminate, -1
 * error. */
static int wait_readable(int fd)
{
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                           { .fd = session_stop_fd, .events = POLLIN } };
    sigset_t open_mask;

    if (session_stop_fd >= 0) {
        /* A thread: the mask stays as it is, the flag is not ours. */
        for (;;) {
            if (ppoll(p, 2, NULL, NULL) >= 0)
                return (p[1].revents & POLLIN) ? 0 : 1;
            if (errno != EINTR)
                return -1;
        }
    }
    sigemptyset(&open_mask);
    for (;;) {
        if (terminate_requested)
            return 0;
        if (ppoll(p, 1, NULL, &open_mask) >= 0)
            return 1;
        if (errno != EINTR)
            return -1;
    }
}

enum step { STEP_GO_ON, STEP_END };

static enum step hook(enum fault_point point, struct fault_ctx *ctx,
                      struct fault_hit *hit, bool *closed)
{
    *hit = FAULT_HOOK(point, ctx);
    if (session_apply_fault(*hit, ctx->fd, closed))
        return STEP_END;
    return STEP_GO_ON;
}

int echo_session(int connfd, long conn, bool *connfd_closed)
{
    char buf[SESSION_BUFSIZE];
    struct fault_ctx ctx = { .conn = conn, .bytes = 0, .fd = connfd };
    struct fault_hit hit;
    bool closed = false;
    int draining = 0;

    *connfd_closed = false;

    for (;;) {
        ssize_t n;

        if (hook(FP_BEFORE_READ, &ctx, &hit, &closed) == STEP_END)
            break;
        if (!draining) {
            int w = wait_readable(connfd);
            if (w < 0) {
                log_session_end(conn, ctx.bytes, "poll", errno);
                return 1;
            }
            draining = (w == 0);
        }
        /* Draining: take only what has already arrived, then close. */
        n = recv(connfd, buf, sizeof buf, draining ? MSG_DONTWAIT : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && draining && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            log_session_end(conn, ctx.bytes, "terminated", 0);
            return 0;
        }
        if (n == 0) {
            log_session_end(conn, ctx.bytes, "eof", 0);
            return 0;
        }
        if (n < 0) {
            log_session_end(conn, ctx.bytes, "read", errno);
            return 1;
        }
        ctx.bytes += n;
        if (hook(FP_AFTER_READ, &ctx, &hit, &closed) == STEP_END)
            break;
        if (hit.action == FA_DROP)
            continue;
        if (hook(FP_BEFORE_WRITE, &ctx, &hit, &closed) == STEP_END)
            break;
        if (write_echo(connfd, buf, (size_t)n,
                       hit.action == FA_SHORT ? hit.arg : 0) < 0) {
            log_session_end(conn, ctx.bytes, "write", errno);
            return 1;
        }
        if (hook(FP_AFTER_WRITE, &ctx, &hit, &closed) == STEP_END)
            break;
    }
    /* A fault ended the session. */
    *connfd_closed = closed;
    log_session_end(conn, ctx.bytes, hit.action == FA_RST ? "fault_rst" : "fault_close", 0);
    return 0;
}
