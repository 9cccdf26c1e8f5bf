/*
 * One connection's life in the blocking models (fork, thread, prefork),
 * written once: its start event, the child_start hook, the echo session,
 * the before_close hook and the close, its end event. The model files only
 * decide who runs it (a child, a thread, a worker) and whether that process
 * must keep the descriptor open (the leak rule, in session_close()).
 *
 * The echo session is UNP's str_echo: whatever read() returns goes back
 * with writen(), so binary data and NULs are echoed byte for byte.
 *
 * Error policy: EINTR is retried. ECONNRESET on read and EPIPE/ECONNRESET
 * on write mean the peer is gone: the session ends and says so in the
 * event log. With SIGPIPE at its default disposition the write that would
 * return EPIPE kills the process instead (UNP 5.13), which the suite
 * observes.
 *
 * Termination: in a process (fork child, prefork worker) SIGTERM is never
 * blocked and the session waits in recv() itself, as the minimal server
 * does; the handler shuts the connection for reading (signals.c), so the
 * recv() under way or about to start returns what has already arrived and
 * then 0: the session echoes it (a line in flight is finished), then
 * closes: a drain, not a cut. A client that never pauses cannot hold it
 * off: the handler runs at once, whatever the session is doing, and its
 * writes go on to the end (writen() retries EINTR). Sessions that are
 * threads keep every signal blocked (they belong to the main thread) and
 * also wait in recv(); the main thread, draining, shuts each one's
 * connection for reading the same way (model_thread.c).
 *
 * Fault hooks sit at child_start, before_read, after_read, before_write,
 * after_write and before_close, all with one fault_ctx, so every hook of
 * the connection sees the bytes it has read so far. The process-level
 * faults (kill, delay, ...) happen inside the hook; the socket-level ones
 * (rst, close, shutdown_wr) are carried out by socket_fault() (dispatch.c,
 * over lib/sockfault.c).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "echod.h"
#include "eventlog.h"
#include "fault.h"
#include "io.h"

#define SESSION_BUFSIZE 16384

bool session_threads;

/* What a wait of the session ended with. */
enum { WAIT_READY, WAIT_ERROR, WAIT_TIMEOUT, WRITE_TIMEOUT = -2 };

/* The time left until the session's nearest deadline, for ppoll(): NULL
 * when it has none (wait for ever, as the classic servers do); *which
 * names it. A deadline already passed leaves 0: ppoll() only looks. */
static struct timespec *until_deadline(const struct session_deadlines *dl,
                                       struct timespec *left, const char **which)
{
    struct timespec when;

    if (!deadlines_next(dl, &when, which))
        return NULL;
    if (!time_left(&when, left))
        *left = (struct timespec){ 0, 0 };
    return left;
}

/* Write n bytes before the session's nearest deadline, or WRITE_TIMEOUT
 * (*which names the deadline) when a peer that does not read holds the
 * write past it. Like writen(), it retries what SIGTERM interrupts: a drain
 * finishes its writes. send() without MSG_NOSIGNAL: --sigpipe keeps its meaning.
 * Out of line in every build: the idle session's loop is then the same
 * code with hooks compiled in or out (bench/hook_cost.py). */
static __attribute__((noinline)) ssize_t
write_by_deadline(int fd, const char *buf, size_t n, const struct session_deadlines *dl,
                  const char **which)
{
    size_t done = 0;

    while (done < n) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        struct timespec left;
        ssize_t w = send(fd, buf + done, n - done, MSG_DONTWAIT);
        int ready;

        if (w >= 0) {
            done += (size_t)w;
            continue;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        ready = ppoll(&p, 1, until_deadline(dl, &left, which), NULL);
        if (ready == 0)
            return WRITE_TIMEOUT;
        if (ready < 0 && errno != EINTR)
            return -1;
    }
    return (ssize_t)n;
}

/* Write n bytes, at most `limit` per write(2) when a short= fault asks.
 * -1 with errno on an error, WRITE_TIMEOUT past a deadline. Without
 * deadlines, UNP's writen(): the classic session blocks for ever on a
 * peer that does not read. */
static inline __attribute__((always_inline)) ssize_t
write_echo(int fd, const char *buf, size_t n, long long limit,
           const struct session_deadlines *dl, const char **which)
{
    size_t done = 0;

    if (limit <= 0)
        limit = (long long)n;
    while (done < n) {
        size_t piece = n - done < (size_t)limit ? n - done : (size_t)limit;
        ssize_t w = (dl->idle_on || dl->end_on)
                        ? write_by_deadline(fd, buf + done, piece, dl, which)
                        : writen(fd, buf + done, piece);
        if (w < 0)
            return w;
        done += piece;
    }
    return (ssize_t)n;
}

/* Wait until fd is readable or the session's nearest deadline passed
 * (*which names it). Inlined into both copies of echo_round(), as it is
 * into the one of a build without hooks.
 *
 * A session has no wait of its own without deadlines: recv() blocks, as
 * in the minimal server, and a drain, shutting the connection for reading
 * (SIGTERM's handler in a process, the main thread for a thread), ends
 * that block; it also makes a deadline's ppoll() return it ready. */
static inline __attribute__((always_inline)) int
wait_readable(int fd, const struct session_deadlines *dl, const char **which)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    struct timespec left;
    int ready;

    if (!dl->idle_on && !dl->end_on)
        return WAIT_READY;
    for (;;) {
        ready = ppoll(&p, 1, until_deadline(dl, &left, which), NULL);
        if (ready > 0)
            return WAIT_READY;
        if (ready == 0)
            return WAIT_TIMEOUT;
        if (errno != EINTR)
            return WAIT_ERROR;
    }
}

/* Run the hook at point; true when a socket fault there (rst, close)
 * closed the connection and so ended the session. */
static bool hook_closed(enum fault_point point, struct fault_ctx *ctx,
                        struct fault_hit *hit)
{
    *hit = FAULT_HOOK(point, ctx);
    return hit->action != FA_NONE &&
           socket_fault(*hit, ctx->fd, ctx->conn) == SOCK_FAULT_CLOSED;
}

enum round {
    ROUND_AGAIN,        /* the session goes on */
    ROUND_ENDED,        /* EOF, error or termination: *status is set */
    ROUND_FAULT_CLOSED, /* an rst or close fault closed the connection */
};

/*
 * One read and its echo. Inlined twice, with hooked a constant: the copy
 * that runs while no fault is armed has no hook code at all, so an idle
 * session costs echo_session()'s one FAULT_ARMED() branch.
 */
static inline __attribute__((always_inline)) enum round
echo_round(struct fault_ctx *ctx, const int connfd, char *buf,
           struct session_deadlines *dl, struct fault_hit *hit, int *status,
           const bool hooked)
{
    const char *which = NULL;
    ssize_t n, w;
    int waited;

    if (hooked && hook_closed(FP_BEFORE_READ, ctx, hit))
        return ROUND_FAULT_CLOSED;
    waited = wait_readable(connfd, dl, &which);
    if (waited == WAIT_ERROR) {
        log_session_end(ctx->conn, ctx->bytes, "poll", errno);
        *status = 1;
        return ROUND_ENDED;
    }
    if (waited == WAIT_TIMEOUT) {
        log_session_timeout(ctx->conn, ctx->bytes, which);
        *status = 0;
        return ROUND_ENDED;
    }
    n = recv(connfd, buf, SESSION_BUFSIZE, 0);
    if (n < 0 && errno == EINTR)
        return ROUND_AGAIN;
    if (n == 0) {
        /* A drain ends here too: the connection was shut for reading,
         * and what had arrived is echoed. */
        log_session_end(ctx->conn, ctx->bytes, terminate_requested ? "terminated" : "eof",
                        0);
        *status = 0;
        return ROUND_ENDED;
    }
    if (n < 0) {
        log_session_end(ctx->conn, ctx->bytes, "read", errno);
        *status = 1;
        return ROUND_ENDED;
    }
    ctx->bytes += n;
    deadlines_read(dl);
    if (hooked && hook_closed(FP_AFTER_READ, ctx, hit))
        return ROUND_FAULT_CLOSED;
    if (hooked && hit->action == FA_DROP)
        return ROUND_AGAIN;
    if (hooked && hook_closed(FP_BEFORE_WRITE, ctx, hit))
        return ROUND_FAULT_CLOSED;
    w = write_echo(connfd, buf, (size_t)n, hooked && hit->action == FA_SHORT ? hit->arg : 0,
                   dl, &which);
    if (w == WRITE_TIMEOUT) {
        log_session_timeout(ctx->conn, ctx->bytes, which);
        *status = 0;
        return ROUND_ENDED;
    }
    if (w < 0) {
        log_session_end(ctx->conn, ctx->bytes, "write", errno);
        *status = 1;
        return ROUND_ENDED;
    }
    if (hooked && hook_closed(FP_AFTER_WRITE, ctx, hit))
        return ROUND_FAULT_CLOSED;
    return ROUND_AGAIN;
}

/*
 * Rounds until one ends the session: with hooks or without, each copy out
 * of line, so that the idle one keeps the registers and the frame of a
 * build without hooks.
 */
static inline __attribute__((always_inline)) enum round
rounds(struct fault_ctx *ctx, char *buf, struct session_deadlines *dl,
       struct fault_hit *hit, int *status, const bool hooked)
{
    const int connfd = ctx->fd; /* read once: the loop keeps it in a register */
    enum round r;

    do
        r = echo_round(ctx, connfd, buf, dl, hit, status, hooked);
    while (r == ROUND_AGAIN);
    return r;
}

static __attribute__((noinline)) enum round
rounds_hooked(struct fault_ctx *ctx, char *buf,
              struct session_deadlines *dl, struct fault_hit *hit, int *status)
{
    return rounds(ctx, buf, dl, hit, status, true);
}

static __attribute__((noinline)) enum round
rounds_idle(struct fault_ctx *ctx, char *buf,
              struct session_deadlines *dl, struct fault_hit *hit, int *status)
{
    return rounds(ctx, buf, dl, hit, status, false);
}

/* From here a drain shuts the connection for reading; one that began
 * before is applied now: its flag is set before it looks at the watched
 * connections (the handler's, or the thread drain's under the lock this
 * registration takes), so a drain that missed this one is seen here. Both
 * may shut it: a second shutdown() changes nothing. Unwatched as the
 * rounds end, before the session closes it; an rst or close fault inside
 * them closes it still watched, and a drain in that window could shut a
 * number reused meanwhile: harmless while everything is drained, and no
 * connection is accepted once the drain has begun. */
static void session_watch(int fd, bool watching)
{
    if (session_threads)
        thread_session_watch(fd, watching);
    else
        signals_session_fd(watching ? fd : -1);
    if (watching && terminate_requested)
        shutdown(fd, SHUT_RD);
}

/*
 * The echo session on ctx's connection until EOF, error, fault or
 * termination. Returns the exit status for whoever serves it; *closed
 * says whether a fault closed the connection. Whether it runs hooks is
 * decided once, at its start: a session that began with no fault armed
 * runs none for its whole life, whatever a reload arms meanwhile (a child
 * or a worker could not see that reload anyway; a thread's session is
 * made alike, and one with hooks follows the process's current set).
 */
static int echo_session(struct fault_ctx *ctx, bool *closed)
{
    char buf[SESSION_BUFSIZE];
    struct fault_hit hit = FAULT_NO_HIT;
    struct session_deadlines dl;
    int status = 0;
    enum round r;

    *closed = false;
    deadlines_start(&dl);
    session_watch(ctx->fd, true);
    if (FAULT_ARMED())
        r = rounds_hooked(ctx, buf, &dl, &hit, &status);
    else
        r = rounds_idle(ctx, buf, &dl, &hit, &status);
    session_watch(ctx->fd, false);
    if (r == ROUND_ENDED)
        return status;
    /* An rst or close fault ended the session. */
    *closed = true;
    log_session_end(ctx->conn, ctx->bytes,
                    hit.action == FA_RST ? "fault_rst" : "fault_close", 0);
    return 0;
}

bool session_close(int connfd, const struct fault_ctx *ctx, bool keep_open)
{
    struct fault_hit hit = FAULT_HOOK(FP_BEFORE_CLOSE, ctx);

    if (hit.action == FA_LEAK)
        return false;
    if (hit.action != FA_NONE && socket_fault(hit, connfd, ctx->conn) == SOCK_FAULT_CLOSED)
        return true;
    if (keep_open)
        return false;
    close(connfd);
    return true;
}

/* The events that open and close a connection's life, by who serves it.
 * Fields: conn, then who_key (tid, worker) when there is one, then status
 * at the end. */
static const struct {
    const char *start, *end, *who_key;
} lives[] = {
    [SERVED_BY_CHILD] = { "child_start", "child_exit", NULL },
    [SERVED_BY_THREAD] = { "thread_start", "thread_exit", "tid" },
    [SERVED_BY_WORKER] = { "session_start", NULL, "worker" },
};

static void log_life(const char *name, long conn, enum served_by by, long who,
                     const int *status)
{
    struct event ev;

    event_begin(&ev, name);
    event_int(&ev, "conn", conn);
    /* A thread's tid costs a system call: asked only for a log. */
    if (by == SERVED_BY_THREAD && !ev.off)
        who = (long)gettid();
    if (lives[by].who_key)
        event_int(&ev, lives[by].who_key, who);
    if (status)
        event_int(&ev, "status", *status);
    event_emit(&ev);
}

int session_serve(int connfd, long conn, enum served_by by, long who, bool keep_open)
{
    struct fault_ctx ctx = { .conn = conn, .bytes = 0, .fd = connfd };
    struct fault_hit hit;
    bool closed;
    int status = 0;

    log_life(lives[by].start, conn, by, who, NULL);
    closed = hook_closed(FP_CHILD_START, &ctx, &hit);
    if (!closed)
        status = echo_session(&ctx, &closed);
    if (!closed)
        session_close(connfd, &ctx, keep_open);
    if (lives[by].end)
        log_life(lives[by].end, conn, by, who, &status);
    return status;
}
