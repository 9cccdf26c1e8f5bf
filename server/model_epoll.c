/*
 * The epoll model: one process, one thread, every connection registered
 * with one epoll instance. This file holds only the loop; what a
 * connection does is in evconn.c, the same state machine as the poll model.
 *
 * Level-triggered: a connection is registered for EPOLLIN while its buffer
 * has room and EPOLLOUT while it holds bytes to echo (evconn_interest()),
 * and re-armed with EPOLL_CTL_MOD only when that changes. The soft
 * RLIMIT_NOFILE is raised to the hard limit at start ("rlimit" event).
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are unblocked only inside
 * epoll_pwait(); one left pending by a wait that returned ready descriptors
 * rings the doorbell registered beside them (signals.c). SIGHUP re-reads
 * --config (faults are process-wide: every connection's next hook sees the new
 * ones). SIGTERM closes the listener ("stop"), lets each connection echo
 * what has already arrived, closes it and exits 0; sessions still open
 * after --drain-timeout are closed unfinished ("drain_timeout"). A fault's
 * delay or stall, or SIGPIPE at its default, strikes every connection.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "evconn.h"
#include "die.h"
#include "echod.h"

/* Events taken per epoll_pwait(). */
#define EPOLL_BATCH 256

static uint32_t epoll_events(unsigned want)
{
    return ((want & EVCONN_IN) ? EPOLLIN : 0u) | ((want & EVCONN_OUT) ? EPOLLOUT : 0u);
}

/* Register c (op EPOLL_CTL_ADD) or re-arm it (EPOLL_CTL_MOD) for what it
 * wants now; a MOD that would change nothing is skipped. */
static int arm(int epfd, struct evconn *c, int op)
{
    unsigned want = evconn_interest(c);
    struct epoll_event ev = { .events = epoll_events(want), .data.ptr = c };

    if (op == EPOLL_CTL_MOD && want == c->armed)
        return 0;
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0)
        return -1;
    c->armed = want;
    return 0;
}

/* The session is over: close, which unregisters the descriptor, as the
 * minimal server does. One left open (a leak) would go on being reported
 * with a freed pointer: it alone is unregistered, before anything waits
 * again. */
static void finish(int epfd, struct evconn *c)
{
    int fd = c->fd;

    if (!evconn_close(c) && fd >= 0)
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* After evconn_handle() or evconn_drain() said `over`: close, or re-arm. */
static void settle(int epfd, struct evconn *c, bool over)
{
    if (!over && arm(epfd, c, EPOLL_CTL_MOD) < 0) {
        evconn_fail(c, errno);
        over = true;
    }
    if (over)
        finish(epfd, c);
}

static void serve_one(int epfd, struct evconn *c, uint32_t re)
{
    unsigned events = 0;

    if (re & EPOLLIN)
        events |= EVCONN_IN;
    if (re & EPOLLOUT)
        events |= EVCONN_OUT;
    if (re & (EPOLLERR | EPOLLHUP))
        events |= EVCONN_HUP;
    settle(epfd, c, evconn_handle(c, events));
}

/* Take what waits on the listener. Returns false when accept asked for a
 * pause (EVCONN_ACCEPT_PAUSE). */
static bool accept_ready(int epfd, int listenfd, const struct echod_options *opt,
                         long *nconn)
{
    /* No new connection once SIGTERM is taken (a fault may slow each one). */
    for (int i = 0; i < EVCONN_ACCEPT_BATCH && !terminate_requested; i++) {
        struct evconn *c = NULL;
        enum evconn_accept_status st = evconn_accept(listenfd, opt, nconn, &c);

        if (st == EVCONN_ACCEPT_PAUSE)
            return false;
        if (st == EVCONN_ACCEPT_DONE)
            return true;
        if (st == EVCONN_ACCEPT_NEW && arm(epfd, c, EPOLL_CTL_ADD) < 0) {
            evconn_fail(c, errno);
            evconn_close(c);
        }
    }
    return true;
}

/* SIGTERM: no new connections; each open one finishes what has arrived. */
static void stop(int epfd, int listenfd, long nconn)
{
    struct evconn *c, *next;

    epoll_ctl(epfd, EPOLL_CTL_DEL, listenfd, NULL);
    close(listenfd);
    log_stop(nconn);
    for (c = evconn_first(); c; c = next) {
        next = c->next;
        settle(epfd, c, evconn_drain(c));
    }
}

/* Milliseconds for epoll_pwait(), rounded up so the deadline is reached. */
static int timeout_ms(const struct timespec *left)
{
    long long ms = (long long)left->tv_sec * 1000 + (left->tv_nsec + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int serve_epoll(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    struct epoll_event listener = { .events = EPOLLIN, .data.ptr = NULL };
    struct epoll_event doorbell = { .events = EPOLLIN };
    struct epoll_event ready[EPOLL_BATCH];
    struct timespec deadline = { 0, 0 }, left, resume = { 0, 0 }, pause_left;
    bool stopping = false, paused = false;
    long nconn = 0;
    int epfd, doorbell_fd;

    evconn_raise_nofile();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die_errno("epoll_create1", NULL);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &listener) < 0)
        die_errno("epoll_ctl", "listening socket");
    doorbell.data.ptr = &doorbell;
    doorbell_fd = signals_doorbell(wait_mask);
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, doorbell_fd, &doorbell) < 0)
        die_errno("epoll_ctl", "pending-signal doorbell");

    for (;;) {
        bool accept_now = false, ring = false;
        struct timespec expiry;
        struct evconn *late;
        int timeout = -1, n;

        if (terminate_requested && !stopping) {
            stopping = true;
            stop(epfd, listenfd, nconn);
            deadline = deadline_after(opt->drain_ms);
        }
        if (stopping) {
            if (evconn_live() == 0)
                break;
            if (!time_left(&deadline, &left)) {
                struct evconn *c, *next;

                log_drain_timeout(evconn_live());
                for (c = evconn_first(); c; c = next) {
                    next = c->next;
                    evconn_discard(c);
                }
                break;
            }
            timeout = timeout_ms(&left);
        }
        if (evconn_timeout_left(&expiry) &&
            (timeout < 0 || timeout_ms(&expiry) < timeout))
            timeout = timeout_ms(&expiry);
        /* After an accept pause the listener rejoins the wait; until
         * then the wait ends in time for it. */
        if (paused && !stopping && !time_left(&resume, &pause_left)) {
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &listener) < 0)
                die_errno("epoll_ctl", "listening socket");
            paused = false;
        }
        if (paused && !stopping && (timeout < 0 || timeout_ms(&pause_left) < timeout))
            timeout = timeout_ms(&pause_left);
        if (reload_requested)
            if (reload_config(opt))
                log_reload(opt);
        n = epoll_pwait(epfd, ready, EPOLL_BATCH, timeout, wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_pwait", "connections");
        }
        for (int i = 0; i < n; i++) {
            /* Each descriptor appears once per batch, and nothing is
             * accepted until the batch is done: ptr is never stale. */
            if (ready[i].data.ptr == NULL)
                accept_now = true;
            else if (ready[i].data.ptr == &doorbell)
                ring = true;
            else
                serve_one(epfd, ready[i].data.ptr, ready[i].events);
        }
        /* --idle-timeout, --session-timeout: after the batch, whose
         * pointers must not outlive what they point to. */
        while ((late = evconn_expired()) != NULL)
            finish(epfd, late);
        /* Saturating streams keep some descriptor ready at every wait,
         * and a ready epoll_pwait() leaves SIGTERM/SIGHUP pending
         * (signals.c). After the batch: it was taken. */
        if (ring)
            signals_deliver_pending(wait_mask);
        if (accept_now && !stopping && !accept_ready(epfd, listenfd, opt, &nconn)) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, listenfd, NULL);
            resume = deadline_after(EVCONN_ACCEPT_PAUSE_MS);
            paused = true;
        }
    }
    close(doorbell_fd);
    close(epfd);
    return 0;
}
