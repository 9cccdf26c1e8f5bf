/*
 * The thread model: one detached thread per connection (CS:APP's
 * echoservert). This file holds only the accept/dispatch loop; the session
 * is session.c's, shared with every model.
 *
 * The main thread keeps the fork model's discipline: it waits in ppoll()
 * with SIGTERM, SIGINT and SIGHUP unblocked only there, reloads on SIGHUP
 * and applies max_conns to the number of live sessions. Session threads
 * are created with every one of those signals (and SIGCHLD) blocked, so
 * the handlers always run in the main thread; SIGPIPE stays unblocked, so
 * --sigpipe acts on the thread that wrote, and with its default
 * disposition it kills the whole process.
 *
 * Each thread owns its connection: it gets a small heap block {connfd,
 * conn}, frees it, and is the only one to close the descriptor. Nothing
 * else is shared per connection. Process-level faults (kill, abort, exit)
 * end the whole server in this model: a thread cannot die alone.
 *
 * SIGTERM: the listener closes, then the main thread shuts every session's
 * connection for reading, as SIGTERM's handler does a process session's
 * (session.c): sessions, asleep in recv() like the minimal server's, echo
 * what has already arrived and close. The main thread waits for the live
 * count to reach zero, at most --drain-timeout, and exits 0; stragglers
 * (a stall fault, a peer that does not read) die with the process.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"

/* Room for session.c's 16 KiB buffer, the hooks and the event formatting. */
#define SESSION_STACK (256 * 1024)

struct session_arg {
    int connfd;
    long conn;
    bool leak; /* --leak-connfd, or leak@accept: never close connfd */
};

/* Live sessions: counted up by the main thread before pthread_create, down
 * by each thread as its last act; the main thread waits on `ended` when it
 * drains. The connections the sessions watch, for the drain to shut: an
 * unordered array, a few entries per live session at most. All under
 * live_lock. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended;
static size_t live;
static int *watched;
static size_t watched_n, watched_cap;

/* Under live_lock: room for one more watched connection. */
static bool grow_watched(void)
{
    size_t cap = watched_cap ? watched_cap * 2 : 64;
    int *more = realloc(watched, cap * sizeof *watched);

    if (more == NULL)
        return false;
    watched = more;
    watched_cap = cap;
    return true;
}

void thread_session_watch(int connfd, bool watching)
{
    pthread_mutex_lock(&live_lock);
    if (!watching) {
        for (size_t i = 0; i < watched_n; i++) {
            if (watched[i] == connfd) {
                watched[i] = watched[--watched_n];
                break;
            }
        }
    } else if (watched_n == watched_cap &&
               !grow_watched()) {
        /* Not watched: this session drains only by its own end or with
         * the process, at the drain's deadline. */
        log_error("drain_error", "realloc(watched connections)", ENOMEM);
    } else {
        watched[watched_n++] = connfd;
    }
    pthread_mutex_unlock(&live_lock);
}

static size_t live_count(void)
{
    size_t n;

    pthread_mutex_lock(&live_lock);
    n = live;
    pthread_mutex_unlock(&live_lock);
    return n;
}

static void live_add(long delta)
{
    pthread_mutex_lock(&live_lock);
    live = (size_t)((long)live + delta);
    if (live == 0)
        pthread_cond_broadcast(&ended);
    pthread_mutex_unlock(&live_lock);
}

/* The session thread: the connection's life (session.c), then one fewer
 * live. A leak is for good here: no exit follows to close it. */
static void *session_thread(void *p)
{
    struct session_arg arg = *(struct session_arg *)p;

    free(p);
    session_serve(arg.connfd, arg.conn, SERVED_BY_THREAD, 0, arg.leak);
    live_add(-1);
    return NULL;
}

/* Hand connfd to a new thread, which then owns it. Returns 0, or an error
 * number with connfd still the caller's. The thread inherits this
 * thread's mask, which outside its waits is the session mask. */
static int start_session(int connfd, long conn, bool leak, const pthread_attr_t *attr)
{
    struct session_arg *arg = malloc(sizeof *arg);
    pthread_t tid;
    int rc;

    if (arg == NULL)
        return ENOMEM;
    *arg = (struct session_arg){ .connfd = connfd, .conn = conn, .leak = leak };
    live_add(1);
    rc = pthread_create(&tid, attr, session_thread, arg);
    if (rc != 0) {
        live_add(-1);
        free(arg);
    }
    return rc;
}
/* SIGTERM: the listener is already closed. Shut every session's
 * connection for reading, wait until none is left or drain_ms passed. */
static void drain(const struct echod_options *opt)
{
    struct timespec deadline = deadline_after(opt->drain_ms);
    size_t left;
    int rc = 0;

    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < watched_n; i++)
        shutdown(watched[i], SHUT_RD);
    while (live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&ended, &live_lock, &deadline);
    left = live;
    pthread_mutex_unlock(&live_lock);
    if (left > 0)
        log_drain_timeout(left);
}

int serve_thread(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    pthread_condattr_t cattr;
    pthread_attr_t attr;
    sigset_t session_mask;
    long conn = 0;
    int doorbell;

    session_threads = true;

    if (pthread_condattr_init(&cattr) != 0 ||
        pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&ended, &cattr) != 0)
        die("pthread_cond_init: cannot set up the drain condition");
    pthread_condattr_destroy(&cattr);
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
        pthread_attr_setstacksize(&attr, SESSION_STACK) != 0)
        die("pthread_attr: cannot set up session threads");

    /* What the main thread blocks outside ppoll(), and SIGCHLD as well:
     * kept blocked here outside the waits (ppoll and the pending-signal
     * delivery set their own mask and restore this one), so every session
     * thread inherits it with no mask change around pthread_create. */
    sigemptyset(&session_mask);
    sigaddset(&session_mask, SIGTERM);
    sigaddset(&session_mask, SIGINT);
    sigaddset(&session_mask, SIGHUP);
    sigaddset(&session_mask, SIGCHLD);
    Sigprocmask(SIG_BLOCK, &session_mask, NULL);
    doorbell = signals_doorbell(wait_mask);

    while (!terminate_requested) {
        bool leak;
        int connfd, rc;

        connfd = next_connection(listenfd, doorbell, opt, &conn, wait_mask);
        if (connfd < 0)
            continue;
        if (over_limit_count(opt, conn, connfd, live_count()))
            continue;

        if (!accept_hook(conn, connfd, "thread_error", "pthread_create (injected)",
                         &leak))
            continue;

        /* From here on the thread owns connfd; this thread never touches
         * it again. --leak-connfd makes the thread forget to close it. */
        rc = start_session(connfd, conn, opt->leak_connfd || leak, &attr);
        if (rc != 0) {
            log_error("thread_error", "pthread_create", rc);
            close(connfd);
        }
    }

    close(listenfd);
    close(doorbell);
    log_stop(conn);
    drain(opt);
    pthread_attr_destroy(&attr);
    /* Returning exits the process: threads still in a session end with it. */
    return 0;
}
