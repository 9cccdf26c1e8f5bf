/*
 * One connection of the event-driven models (poll, epoll): UNP's str_echo
 * turned inside out. The blocking session (session.c) reads, then writes
 * what it read; here the loop says "readable" or "writable" and the
 * connection does one step, never blocking, so one process serves them all.
 *
 * Buffer and backpressure: each connection holds at most EVCONN_BUFSIZE bytes
 * read but not yet echoed. It asks to read only while that buffer has room
 * (and the peer has not sent EOF), and to write only while it is not empty.
 * A client that sends and never reads fills its buffer; the server stops
 * reading it, its data stays in the kernel's socket queues, TCP flow
 * control stops the client, and memory stays bounded while the other
 * connections go on.
 *
 * Echo rounds: a round starts when there is something to write and no
 * round is in progress; it covers the bytes buffered at that moment. Its
 * before_write hook fires when it starts (a short=N there caps every
 * write(2) of the round at N bytes), its after_write hook when its last
 * byte is written, which may take several wake-ups. Reads: one read per
 * wake-up, into the free space only, between before_read and after_read
 * (a drop there discards what was just read: it never enters the buffer).
 *
 * Error policy: EINTR and EAGAIN leave the step for the next wake-up.
 * ECONNRESET on read, EPIPE/ECONNRESET on write end this session only, with
 * session_end reason read/write and the errno text. Writes use write(2),
 * not MSG_NOSIGNAL, so --sigpipe keeps its meaning: at its default a write
 * to a reset peer raises SIGPIPE, and in these models that kills the whole
 * server with every session in it (UNP 5.13 at its worst); the suite runs
 * them with --sigpipe ignore.
 *
 * Faults: the engine's counts are per process, so in these models they are
 * shared by every connection (nth=3 is the 3rd hit among all of them; use
 * conn=N to single one out), and a SIGHUP reload applies at once to every
 * connection's next hook. Process-level actions act on the one process:
 * delay stalls every connection, stall freezes the server, kill/abort/exit
 * end it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evconn.h"
#include "echod.h"
#include "eventlog.h"
#include "fault.h"

/* The open sessions, newest first, so that SIGTERM can reach them all;
 * the last is the oldest, whose --session-timeout comes first. */
static struct evconn *open_conns, *oldest_conn;
static size_t live_conns;
/* With --idle-timeout: the open sessions by their last read, quietest
 * first, so the next idle deadline is always the head's (a read moves a
 * session to the tail). Both lists keep finding the next deadline O(1)
 * with any number of sessions. */
static struct evconn *quietest, *busiest;

size_t evconn_live(void)
{
    return live_conns;
}

struct evconn *evconn_first(void)
{
    return open_conns;
}

static void quiet_append(struct evconn *c)
{
    c->quieter = busiest;
    c->busier = NULL;
    if (busiest)
        busiest->busier = c;
    else
        quietest = c;
    busiest = c;
}

static void quiet_unlink(struct evconn *c)
{
    if (c->quieter)
        c->quieter->busier = c->busier;
    else
        quietest = c->busier;
    if (c->busier)
        c->busier->quieter = c->quieter;
    else
        busiest = c->quieter;
}

static void link_conn(struct evconn *c)
{
    c->prev = NULL;
    c->next = open_conns;
    if (open_conns)
        open_conns->prev = c;
    else
        oldest_conn = c;
    open_conns = c;
    live_conns++;
    if (c->dl.idle_on)
        quiet_append(c);
}

static void unlink_conn(struct evconn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        open_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        oldest_conn = c->prev;
    live_conns--;
    if (c->dl.idle_on)
        quiet_unlink(c);
}

static void end_session(struct evconn *c, const char *reason, int errnum)
{
    log_session_end(c->id, c->ctx.bytes, reason, errnum);
    c->flags |= EVCONN_ENDED;
}

void evconn_fail(struct evconn *c, int errnum)
{
    end_session(c, "poll", errnum);
}

/*
 * The steps below take `hooked`, a constant where evconn_handle() inlines
 * them: its copy for when no fault is armed has no hook code at all, so an
 * idle wake-up costs its one FAULT_ARMED() branch.
 */
#define STEP static inline __attribute__((always_inline))

/* Run a hook (when hooked) and carry out a socket-level fault it hands
 * back. Returns the hit; when an rst or close ended the session, c is
 * marked ended and its fd is -1. */
STEP struct fault_hit hook(struct evconn *c, enum fault_point point, const bool hooked)
{
    struct fault_hit hit = hooked ? FAULT_HOOK(point, &c->ctx) : FAULT_NO_HIT;

    if (hit.action != FA_NONE &&
        socket_fault(hit, c->fd, c->id) == SOCK_FAULT_CLOSED) {
        c->fd = c->ctx.fd = -1;
        end_session(c, hit.action == FA_RST ? "fault_rst" : "fault_close", 0);
    }
    return hit;
}

static bool ended(const struct evconn *c)
{
    return (c->flags & EVCONN_ENDED) != 0;
}

unsigned evconn_interest(const struct evconn *c)
{
    unsigned want = 0;

    if (!(c->flags & (EVCONN_PEER_EOF | EVCONN_READ_DONE | EVCONN_ENDED)) &&
        c->len < EVCONN_BUFSIZE)
        want |= EVCONN_IN;
    if (c->len > 0 && !ended(c))
        want |= EVCONN_OUT;
    return want;
}

/* One read into the free space. */
STEP void do_read(struct evconn *c, const bool hooked)
{
    struct fault_hit hit;
    ssize_t n;

    hook(c, FP_BEFORE_READ, hooked);
    if (ended(c))
        return;
    if (c->head > 0) {
        /* Move what waits to the front so all the room is usable: at most
         * EVCONN_BUFSIZE bytes, and usually none (writes empty the buffer). */
        memmove(c->buf, c->buf + c->head, c->len);
        c->head = 0;
    }
    n = recv(c->fd, c->buf + c->len, EVCONN_BUFSIZE - c->len, 0);
    if (n < 0) {
        if (errno == EINTR)
            return; /* level-triggered: the next wake-up reads again */
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Draining: nothing more has arrived, so nothing more is read. */
            if (c->flags & EVCONN_DRAINING)
                c->flags |= EVCONN_READ_DONE;
            return;
        }
        end_session(c, "read", errno); /* ECONNRESET: the peer reset us */
        return;
    }
    if (n == 0) {
        c->flags |= EVCONN_PEER_EOF;
        return;
    }
    c->ctx.bytes += n;
    if (c->dl.idle_on) {
        deadlines_read(&c->dl);
        quiet_unlink(c);
        quiet_append(c);
    }
    hit = hook(c, FP_AFTER_READ, hooked);
    if (ended(c) || hit.action == FA_DROP)
        return; /* dropped: the bytes never enter the buffer */
    c->len += (size_t)n;
}

enum write_result { WRITE_ROUND_DONE, WRITE_BLOCKED };

/* Write the current round (starting one if none is in progress) until it
 * is done or the socket is full. At most EVCONN_BUFSIZE bytes per call. */
STEP enum write_result do_write(struct evconn *c, const bool hooked)
{
    if (c->round_left == 0) {
        struct fault_hit hit = hook(c, FP_BEFORE_WRITE, hooked);
        if (ended(c))
            return WRITE_ROUND_DONE;
        c->round_left = c->len;
        c->short_cap = hit.action == FA_SHORT ? hit.arg : 0;
    }
    while (c->round_left > 0) {
        size_t piece = c->round_left;
        ssize_t w;

        if (c->short_cap > 0 && piece > (unsigned long long)c->short_cap)
            piece = (size_t)c->short_cap;
        /* write(2), not send(MSG_NOSIGNAL): --sigpipe decides (see top). */
        w = write(c->fd, c->buf + c->head, piece);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return WRITE_BLOCKED;
            end_session(c, "write", errno); /* EPIPE, ECONNRESET */
            return WRITE_ROUND_DONE;
        }
        c->head += (size_t)w;
        c->len -= (size_t)w;
        c->round_left -= (size_t)w;
    }
    if (c->len == 0)
        c->head = 0;
    c->short_cap = 0;
    hook(c, FP_AFTER_WRITE, hooked);
    return WRITE_ROUND_DONE;
}

/* After a step: end the session when it has nothing left to do. A draining
 * connection that has echoed everything looks once more for data that
 * already arrived (a non-blocking read) before it ends; a read a drop fault
 * discarded leaves nothing to echo, so it looks again (bounded: each look
 * consumes data, meets EAGAIN, or ends the session). */
STEP bool settle(struct evconn *c, const bool hooked)
{
    for (int looks = 0; looks < 64; looks++) {
        if (ended(c) || !(c->flags & EVCONN_DRAINING) || c->len != 0 ||
            (c->flags & (EVCONN_READ_DONE | EVCONN_PEER_EOF)))
            break;
        do_read(c, hooked);
    }
    if (!ended(c) && c->len == 0 && (c->flags & EVCONN_PEER_EOF))
        end_session(c, "eof", 0);
    if (!ended(c) && c->len == 0 && (c->flags & EVCONN_READ_DONE))
        end_session(c, "terminated", 0);
    return ended(c);
}

STEP bool handle(struct evconn *c, unsigned events, const bool hooked)
{
    bool blocked = false;

    if (ended(c))
        return true;
    if (events & EVCONN_HUP) {
        /* An error or hang-up is reported even when we asked for nothing:
         * take it as readiness for whatever we wait for, so the read or the
         * write that follows returns the error (or EOF) and the session
         * ends instead of spinning. */
        events |= evconn_interest(c);
    }
    if ((events & EVCONN_OUT) && c->len > 0) {
        blocked = do_write(c, hooked) == WRITE_BLOCKED;
        if (ended(c))
            return true;
    }
    if ((events & EVCONN_IN) && (evconn_interest(c) & EVCONN_IN)) {
        do_read(c, hooked);
        if (ended(c))
            return true;
        /* Echo at once what just came in: the socket is most likely
         * writable, and a wake-up is saved. */
        if (c->len > 0 && !blocked)
            do_write(c, hooked);
    }
    return settle(c, hooked);
}

/* The copy with hooks, out of line, so the idle copy inlined below keeps
 * the registers and the frame of a build without hooks. */
static __attribute__((noinline)) bool handle_hooked(struct evconn *c, unsigned events)
{
    return handle(c, events, true);
}

bool evconn_handle(struct evconn *c, unsigned events)
{
    if (FAULT_ARMED())
        return handle_hooked(c, events);
    return handle(c, events, false);
}

bool evconn_drain(struct evconn *c)
{
    c->flags |= EVCONN_DRAINING;
    return evconn_handle(c, 0);
}

bool evconn_close(struct evconn *c)
{
    bool closed = true;

    /* A leak stays open for the server's life (in the fork model the
     * child would exit right after; here nobody does). */
    if (c->fd >= 0)
        closed = session_close(c->fd, &c->ctx, (c->flags & EVCONN_LEAK) != 0);
    c->fd = -1;
    unlink_conn(c);
    free(c);
    return closed;
}

void evconn_discard(struct evconn *c)
{
    if (c->fd >= 0 && !(c->flags & EVCONN_LEAK))
        close(c->fd);
    unlink_conn(c);
    free(c);
}

enum evconn_accept_status evconn_accept(int listenfd, const struct echod_options *opt,
                                    long *nconn, struct evconn **out)
{
    bool leak;
    struct evconn *c;
    int connfd;

    connfd = accept_connection_flags(listenfd, nconn, SOCK_NONBLOCK);
    if (connfd == ACCEPT_BACK_OFF)
        return EVCONN_ACCEPT_PAUSE;
    if (connfd < 0) {
        /* Aborted before we took it, or a signal: others may be waiting.
         * EAGAIN: wait again. */
        if (errno == ECONNABORTED || errno == EPROTO || errno == EINTR)
            return EVCONN_ACCEPT_NEXT;
        return EVCONN_ACCEPT_DONE;
    }
    if (over_limit_count(opt, *nconn, connfd, live_conns))
        return EVCONN_ACCEPT_NEXT;

    if (!accept_hook(*nconn, connfd, "fork_error", "fork (injected)", &leak))
        return EVCONN_ACCEPT_NEXT;

    c = malloc(sizeof *c);
    if (c == NULL) {
        log_error("accept_error", "malloc", ENOMEM);
        close(connfd);
        return EVCONN_ACCEPT_NEXT;
    }
    /* buf is left untouched: its pages cost memory only once data comes. */
    c->fd = connfd;
    c->id = *nconn;
    c->flags = (opt->leak_connfd || leak) ? EVCONN_LEAK : 0;
    c->armed = 0;
    c->head = c->len = c->round_left = 0;
    c->short_cap = 0;
    c->ctx = (struct fault_ctx){ .conn = *nconn, .bytes = 0, .fd = connfd };
    deadlines_start(&c->dl);
    link_conn(c);

    log_conn("session_start", c->id, NULL, 0);
    hook(c, FP_CHILD_START, true);
    if (ended(c)) {
        evconn_close(c);
        return EVCONN_ACCEPT_NEXT;
    }
    *out = c;
    return EVCONN_ACCEPT_NEW;
}

/* The next deadline among the open sessions: the quietest one's idle
 * deadline or the oldest one's session deadline. */
static struct evconn *next_deadline(struct timespec *when, const char **which)
{
    struct evconn *c = NULL;

    if (quietest) {
        c = quietest;
        *when = c->dl.idle;
        *which = "idle";
    }
    if (oldest_conn && oldest_conn->dl.end_on &&
        (c == NULL || timespec_before(&oldest_conn->dl.end, when))) {
        c = oldest_conn;
        *when = c->dl.end;
        *which = "session";
    }
    return c;
}

bool evconn_timeout_left(struct timespec *left)
{
    struct timespec when;
    const char *which;

    if (next_deadline(&when, &which) == NULL)
        return false;
    if (!time_left(&when, left))
        *left = (struct timespec){ 0, 0 };
    return true;
}

struct evconn *evconn_expired(void)
{
    struct timespec when, now;
    const char *which;
    struct evconn *c = next_deadline(&when, &which);

    if (c == NULL)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (timespec_before(&now, &when))
        return NULL;
    if (!ended(c)) {
        log_session_timeout(c->id, c->ctx.bytes, which);
        c->flags |= EVCONN_ENDED;
    }
    return c;
}

void evconn_raise_nofile(void)
{
    struct rlimit rl;
    struct event ev;
    rlim_t was;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_error("rlimit_error", "getrlimit(RLIMIT_NOFILE)", errno);
        return;
    }
    was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (was != rl.rlim_max && setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_error("rlimit_error", "setrlimit(RLIMIT_NOFILE)", errno);
        return;
    }
    event_begin(&ev, "rlimit");
    event_str(&ev, "resource", "nofile");
    event_int(&ev, "soft", rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
    event_int(&ev, "was", was == RLIM_INFINITY ? -1 : (long long)was);
    event_emit(&ev);
}
