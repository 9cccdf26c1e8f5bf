/*
 * The poll model: one process, one thread, every connection in one
 * ppoll() (UNP 6.10's tcpservpoll01, without its fixed-size array). This
 * file holds only the loop; what a connection does is in evconn.c.
 *
 * No FD_SETSIZE: the pollfd array grows with realloc(), and the soft
 * RLIMIT_NOFILE is raised to the hard limit at start (an "rlimit" event).
 * Level-triggered: a connection is asked for POLLIN while its buffer has
 * room and POLLOUT while it holds bytes to echo (evconn_interest()).
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are unblocked only inside ppoll(), as
 * in the fork model, so a request cannot fall between the flag check and
 * the wait; one left pending by a ppoll() that returned ready descriptors
 * (busy sessions make every wait do so) rings the doorbell beside them
 * (signals.c). SIGHUP re-reads --config; faults are process-wide here, so
 * the new ones apply at every connection's next hook. SIGTERM closes the
 * listener ("stop"), lets each connection echo what has already arrived,
 * closes it, and exits 0; sessions still open after --drain-timeout are
 * closed unfinished ("drain_timeout"). A fault's delay or stall, or a
 * SIGPIPE at its default disposition, strikes every connection at once:
 * they all live in this process.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "evconn.h"
#include "die.h"
#include "echod.h"

/* fds[LISTENER] is the listener (fd -1 once closed: poll() skips it),
 * fds[DOORBELL] the pending-signal doorbell (signals.c); fds[i] for
 * i >= FIRST_CONN is conns[i]'s socket. */
enum { LISTENER, DOORBELL, FIRST_CONN };

struct poll_set {
    struct pollfd *fds;
    struct evconn **conns;
    size_t n, cap;
};

static int set_grow(struct poll_set *set)
{
    size_t cap = set->cap ? set->cap * 2 : 64;
    struct pollfd *fds = realloc(set->fds, cap * sizeof *fds);
    struct evconn **conns;

    if (fds == NULL)
        return -1;
    set->fds = fds;
    conns = realloc(set->conns, cap * sizeof *conns);
    if (conns == NULL)
        return -1;
    set->conns = conns;
    set->cap = cap;
    return 0;
}

static short poll_events(unsigned want)
{
    return (short)(((want & EVCONN_IN) ? POLLIN : 0) |
                   ((want & EVCONN_OUT) ? POLLOUT : 0));
}

static int set_add(struct poll_set *set, struct evconn *c)
{
    if (set->n == set->cap && set_grow(set) < 0)
        return -1;
    set->fds[set->n] = (struct pollfd){ .fd = c->fd,
                                        .events = poll_events(evconn_interest(c)) };
    set->conns[set->n] = c;
    c->slot = set->n;
    set->n++;
    return 0;
}

/* Forget entry i (the last one takes its place), then close its session. */
static void set_close(struct poll_set *set, size_t i)
{
    struct evconn *c = set->conns[i];

    set->n--;
    set->fds[i] = set->fds[set->n];
    set->conns[i] = set->conns[set->n];
    set->conns[i]->slot = i;
    evconn_close(c);
}

/* After evconn_handle() or evconn_drain() said `over`: close, or re-arm. */
static void settle(struct poll_set *set, size_t i, bool over)
{
    if (over)
        set_close(set, i);
    else
        set->fds[i].events = poll_events(evconn_interest(set->conns[i]));
}

static void serve_ready(struct poll_set *set)
{
    /* Downwards: set_close() moves the last entry, already served, into
     * the hole. */
    for (size_t i = set->n; i-- > FIRST_CONN;) {
        short re = set->fds[i].revents;
        unsigned events = 0;

        if (re == 0)
            continue;
        if (re & POLLNVAL) {
            /* Not a descriptor we hold: a bug, not the peer. */
            evconn_fail(set->conns[i], EBADF);
            set_close(set, i);
            continue;
        }
        if (re & POLLIN)
            events |= EVCONN_IN;
        if (re & POLLOUT)
            events |= EVCONN_OUT;
        if (re & (POLLERR | POLLHUP))
            events |= EVCONN_HUP;
        settle(set, i, evconn_handle(set->conns[i], events));
    }
}

/* Take what waits on the listener. Returns false when accept asked for a
 * pause (EVCONN_ACCEPT_PAUSE). */
static bool accept_ready(struct poll_set *set, int listenfd,
                         const struct echod_options *opt, long *nconn)
{
    /* No new connection once SIGTERM is taken (a fault may slow each one). */
    for (int i = 0; i < EVCONN_ACCEPT_BATCH && !terminate_requested; i++) {
        struct evconn *c = NULL;
        enum evconn_accept_status st = evconn_accept(listenfd, opt, nconn, &c);

        if (st == EVCONN_ACCEPT_PAUSE)
            return false;
        if (st == EVCONN_ACCEPT_DONE)
            return true;
        if (st == EVCONN_ACCEPT_NEW && set_add(set, c) < 0) {
            evconn_fail(c, ENOMEM);
            evconn_close(c);
        }
    }
    return true;
}

/* --idle-timeout, --session-timeout: close the sessions past theirs. */
static void expire(struct poll_set *set)
{
    struct evconn *c;

    while ((c = evconn_expired()) != NULL)
        set_close(set, c->slot);
}

/* SIGTERM: no new connections; each open one finishes what has arrived. */
static void stop(struct poll_set *set, int listenfd, long nconn)
{
    close(listenfd);
    set->fds[LISTENER].fd = -1;
    log_stop(nconn);
    for (size_t i = set->n; i-- > FIRST_CONN;)
        settle(set, i, evconn_drain(set->conns[i]));
}

int serve_poll(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    struct poll_set set = { NULL, NULL, 0, 0 };
    struct timespec deadline = { 0, 0 }, left, resume = { 0, 0 }, pause_left;
    bool stopping = false, paused = false;
    long nconn = 0;

    evconn_raise_nofile();
    if (set_grow(&set) < 0)
        die_errno("realloc", "pollfd array");
    set.fds[LISTENER] = (struct pollfd){ .fd = listenfd, .events = POLLIN };
    set.fds[DOORBELL] = (struct pollfd){ .fd = signals_doorbell(wait_mask), .events = POLLIN };
    set.conns[LISTENER] = set.conns[DOORBELL] = NULL;
    set.n = FIRST_CONN;

    for (;;) {
        struct timespec *timeout = NULL, expiry;

        if (terminate_requested && !stopping) {
            stopping = true;
            stop(&set, listenfd, nconn);
            deadline = deadline_after(opt->drain_ms);
        }
        if (stopping) {
            if (set.n == FIRST_CONN)
                break;
            if (!time_left(&deadline, &left)) {
                log_drain_timeout(set.n - FIRST_CONN);
                for (size_t i = FIRST_CONN; i < set.n; i++)
                    evconn_discard(set.conns[i]);
                break;
            }
            timeout = &left;
        }
        if (evconn_timeout_left(&expiry) &&
            (timeout == NULL || timespec_before(&expiry, timeout)))
            timeout = &expiry;
        /* After an accept pause the listener rejoins the wait; until
         * then the wait ends in time for it. */
        if (paused && !stopping && !time_left(&resume, &pause_left)) {
            set.fds[LISTENER].fd = listenfd;
            paused = false;
        }
        if (paused && !stopping &&
            (timeout == NULL || timespec_before(&pause_left, timeout)))
            timeout = &pause_left;
        if (reload_requested)
            if (reload_config(opt))
                log_reload(opt);
        if (ppoll(set.fds, set.n, timeout, wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("ppoll", "connections");
        }
        /* Saturating streams keep some descriptor ready at every wait,
         * and a ready ppoll() leaves SIGTERM/SIGHUP pending (signals.c). */
        if (set.fds[DOORBELL].revents & POLLIN)
            signals_deliver_pending(wait_mask);
        serve_ready(&set);
        expire(&set);
        if ((set.fds[LISTENER].revents & POLLIN) &&
            !accept_ready(&set, listenfd, opt, &nconn)) {
            set.fds[LISTENER].fd = -1; /* poll() skips it */
            resume = deadline_after(EVCONN_ACCEPT_PAUSE_MS);
            paused = true;
        }
    }
    close(set.fds[DOORBELL].fd);
    free(set.fds);
    free(set.conns);
    return 0;
}
