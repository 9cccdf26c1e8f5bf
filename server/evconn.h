/*
 * evconn.h: one connection of the event-driven models (poll, epoll) as a
 * non-blocking state machine. The loops in model_poll.c and model_epoll.c
 * only wait and dispatch; what a connection does when it is readable or
 * writable, its buffer, its fault hooks and its events live in evconn.c.
 *
 * A model's loop, in outline (the redis ae split: one interface, one file
 * per backend):
 *
 *   evconn_accept()           until it says EVCONN_ACCEPT_DONE (or _PAUSE:
 *                             leave the listener out of the wait a while);
 *                             register each new one with evconn_interest()
 *   evconn_handle(c, events)  when the backend reports c; if it returns
 *                             true the session is over: unregister c (if
 *                             c->fd >= 0), then evconn_close(c); else
 *                             re-arm with evconn_interest(c) if it changed
 *   evconn_drain(c)           on SIGTERM, for every one; same return
 *   evconn_expired()          after each wake-up, until NULL: a session
 *                             past its timeout, to unregister and close
 *                             (evconn_timeout_left() bounds the wait)
 *   evconn_discard(c)         when the drain deadline passed
 *
 * Everything here runs in one thread; nothing is async-signal-safe.
 */
#ifndef ECHOD_EVCONN_H
#define ECHOD_EVCONN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "echod.h"
#include "fault.h"

/* Bytes read but not yet echoed, per connection: the most one client can
 * make the server hold. A client that never reads fills it; the server then
 * stops reading that client, whose data waits in the kernel's queues until
 * TCP flow control stops the client itself. */
#define EVCONN_BUFSIZE (64 * 1024)

/* At most this many accept()s per wake-up of the listener, so a connection
 * storm cannot starve the open sessions; the listener is level-triggered,
 * so the rest are taken at the next wake-up. */
#define EVCONN_ACCEPT_BATCH 64

/* How long the loop leaves the listener alone after EVCONN_ACCEPT_PAUSE
 * (the blocking models' accept_backoff(), without the sleep). */
#define EVCONN_ACCEPT_PAUSE_MS 100

/* What the backend saw on a connection (evconn_handle's events). */
enum {
    EVCONN_IN = 1u,   /* readable (POLLIN / EPOLLIN) */
    EVCONN_OUT = 2u,  /* writable (POLLOUT / EPOLLOUT) */
    EVCONN_HUP = 4u,  /* error or hang-up (POLLERR, POLLHUP / EPOLLERR,
                         EPOLLHUP), reported even when not asked for */
};

/* evconn->flags */
enum {
    EVCONN_PEER_EOF = 1u << 0,  /* read() returned 0: finish writing, then close */
    EVCONN_DRAINING = 1u << 1,  /* SIGTERM: read only what has already arrived */
    EVCONN_READ_DONE = 1u << 2, /* draining and the queue was empty: read no more */
    EVCONN_ENDED = 1u << 3,     /* session_end logged; the loop must close it */
    EVCONN_LEAK = 1u << 4,      /* never close it (--leak-connfd, leak@accept) */
};

struct evconn {
    int fd;                 /* the socket, or -1 once a fault closed it */
    long id;                /* connection number, as in the accept event */
    unsigned flags;
    unsigned armed;         /* interest the backend holds now: the loop's own */
    size_t head, len;       /* buf[head .. head+len) waits to be echoed */
    size_t round_left;      /* bytes of the current echo round (see evconn.c) */
    long long short_cap;    /* short=N on this round: bytes per write(2), 0 = no cap */
    struct fault_ctx ctx;   /* conn, bytes read so far, fd: for the hooks */
    struct evconn *prev, *next; /* evconn.c's list of open sessions */
    struct session_deadlines dl; /* --idle-timeout, --session-timeout */
    struct evconn *quieter, *busier; /* evconn.c's list by last read */
    size_t slot;            /* the poll model's index of it: the loop's own */
    char buf[EVCONN_BUFSIZE];
};

enum evconn_accept_status {
    EVCONN_ACCEPT_DONE, /* the listener has nothing more now: wait again */
    EVCONN_ACCEPT_NEXT, /* one was taken and already dealt with: try again */
    EVCONN_ACCEPT_NEW,  /* *out is a new session to register */
    EVCONN_ACCEPT_PAUSE, /* out of descriptors or memory, or an unexpected
                            error (logged): stop watching the listener for
                            EVCONN_ACCEPT_PAUSE_MS. Sleeping instead would
                            stall every session: they share this thread. */
};

/* Take one connection off the non-blocking listener (accept_connection()),
 * apply max_conns (counting evconn_live()) and the accept fault point, make
 * the socket non-blocking, log session_start and run child_start. */
enum evconn_accept_status evconn_accept(int listenfd, const struct echod_options *opt,
                                    long *nconn, struct evconn **out);

/* EVCONN_IN and/or EVCONN_OUT: what the connection wants to wait for now. Never
 * 0 for a session that is not over. */
unsigned evconn_interest(const struct evconn *c);

/* Serve what the backend reported (a mask of EVCONN_IN, EVCONN_OUT, EVCONN_HUP).
 * Returns true when the session is over (session_end is logged). */
bool evconn_handle(struct evconn *c, unsigned events);

/* SIGTERM: from now on echo only what has already arrived, then close.
 * Returns true when the session is over at once (it was idle). */
bool evconn_drain(struct evconn *c);

/* End the session because the loop cannot serve it (reason "poll"). */
void evconn_fail(struct evconn *c, int errnum);

/* After the session is over and the loop has forgotten c: the before_close
 * hook, close() (unless leaked or already closed by a fault), free.
 * Returns false when its descriptor is left open (leaked). */
bool evconn_close(struct evconn *c);

/* The drain deadline passed: close without hooks or events, free. */
void evconn_discard(struct evconn *c);

/* Sessions open now (opened by evconn_accept, not yet closed), and the first
 * of them: follow ->next, read before evconn_close() or evconn_discard(). */
size_t evconn_live(void);
struct evconn *evconn_first(void);

/* --idle-timeout, --session-timeout: the time until the next session
 * deadline (0 when one has passed) for the loop's wait; false when no
 * session has one. */
bool evconn_timeout_left(struct timespec *left);
/* A session whose deadline has passed, ended (session_timeout and
 * session_end logged): the loop unregisters and closes it as any ended
 * one. NULL when none is due; call until NULL. */
struct evconn *evconn_expired(void);

/* Raise RLIMIT_NOFILE's soft limit to the hard one and log it ("rlimit"):
 * the event loops hold every connection's descriptor in one process. */
void evconn_raise_nofile(void);


#endif
