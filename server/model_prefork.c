/*
 * The prefork model: a master forks --workers processes that each accept on
 * the shared listener and serve one connection at a time (UNP chapter 30's
 * serv04: the pool shares a lock around accept in shared memory). This file
 * holds the master's loop and the worker's; the session is session.c's.
 *
 * Shared memory (one MAP_SHARED page or so, made before the first fork):
 * a robust process-shared mutex, the connection counter, the configuration
 * the master last loaded with its generation, and one "busy" flag per
 * worker. Each idle worker blocks in accept4() on the blocking listener,
 * as the minimal pool does: the kernel queues them as exclusive waiters
 * and wakes one per connection, so there is no thundering herd to serialize
 * and no lock around accept. The worker that got the connection numbers it
 * with an atomic add on the shared counter (one sequence for the whole
 * pool, so conn=N in a fault means the Nth connection the server took).
 * Only when the master has published a newer configuration, or a
 * max_conns is in force, does it take the lock: to copy the configuration,
 * or to check the busy flags and mark itself busy as one step. A worker
 * killed while holding the lock leaves it to the next taker (EOWNERDEAD),
 * which carries on. Per connection an idle pool without max_conns makes
 * accept4, recv, write, recv and close: the minimal pool's five.
 *
 * The master never accepts. It waits in ppoll() with SIGTERM, SIGINT, SIGHUP
 * and SIGCHLD unblocked only there; the reaper of --reap reaps in its
 * handler as in the fork model and, with tracking on, lists what it reaped
 * (reap.c). The master logs each dead worker (worker_exit) and forks a
 * replacement (respawn). With --reap wait some deaths go unnoticed (signals
 * do not queue): those workers stay zombies and their slots stay empty; with
 * --reap none no worker is ever reaped or replaced. That is the point.
 *
 * SIGHUP: the master re-reads --config and publishes it under the lock with
 * a new generation before it logs "reload". A worker compares generations
 * each time it takes a connection: the session it is serving keeps what it
 * had, every connection accepted after the reload follows the new file.
 *
 * SIGTERM: the master forwards SIGTERM to the workers, then shuts the
 * listener down, which fails every worker's accept() with EINVAL at once,
 * and closes it. A worker never blocks SIGTERM: asleep in accept() it is
 * woken (EINTR, or that EINVAL) and exits; in a session its handler shuts
 * the connection for reading and the session drains (session.c). A SIGTERM
 * sent to an idle worker alone, landing between its flag check and its
 * accept(), is read SIGNAL_WAKE_MS later, when the wake-up timer its
 * handler armed ends the accept() (signals.c). With the waitpid reaper the
 * master waits up to --drain-timeout for the workers before SIGKILLing the
 * rest.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "echod.h"
#include "eventlog.h"
#include "fault.h"

struct pool_shared {
    pthread_mutex_t lock;         /* robust, process-shared */
    long conns;                   /* connections taken so far (under lock) */
    unsigned long generation;     /* of config (under lock) */
    struct echod_config config;   /* the master's, as last loaded */
    unsigned char busy[];         /* per worker: serving a session (atomic) */
};

static struct pool_shared *pool;

enum { RESPAWN_INTERVAL_MS = 100 };

struct worker {
    pid_t pid;     /* 0: the slot is empty */
    bool spawned;  /* once: later forks are respawns */
    /* Not respawned before this: a worker that dies at once after every
     * fork costs the master ten forks a second, not a spinning core. */
    struct timespec not_before;
};

/* Lock the pool. A dead holder (EOWNERDEAD) was only accepting: what it
 * left is consistent enough to go on. */
static void pool_lock(void)
{
    int rc = pthread_mutex_lock(&pool->lock);

    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&pool->lock);
    else if (rc != 0) {
        log_error("lock_error", "pthread_mutex_lock", rc);
        _exit(1);
    }
}

static void pool_unlock(void)
{
    pthread_mutex_unlock(&pool->lock);
}

static size_t busy_workers(int nworkers)
{
    size_t n = 0;

    for (int i = 0; i < nworkers; i++)
        n += __atomic_load_n(&pool->busy[i], __ATOMIC_SEQ_CST);
    return n;
}

static void set_busy(int index, unsigned char value)
{
    __atomic_store_n(&pool->busy[index], value, __ATOMIC_SEQ_CST);
}

static void log_worker(const char *name, int index, pid_t pid)
{
    struct event ev;

    event_begin(&ev, name);
    event_int(&ev, "worker", index);
    if (pid > 0)
        event_int(&ev, "child", pid);
    event_emit(&ev);
}

/* Take one connection: accept it (the kernel wakes one idle worker),
 * number it, adopt the newest config, check max_conns, mark this worker
 * busy. Returns it, or -1 when there is none this time (or it was
 * refused), or LISTENER_SHUT. The lock only when a newer config or a limit
 * needs it. */
enum { LISTENER_SHUT = -3 };
static int take_connection(int listenfd, int index, struct echod_options *opt,
                           unsigned long *generation, long *conn)
{
    bool newer = false;
    int connfd = accept_numbered(listenfd, &pool->conns, 0, conn);

    /* EINVAL: the master shut the listener down (errno is accept4's). */
    if (connfd == ACCEPT_NOTHING && errno == EINVAL)
        return LISTENER_SHUT;
    if (connfd == ACCEPT_BACK_OFF)
        accept_backoff(NULL);
    if (connfd < 0)
        return -1;
    if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == *generation &&
        opt->config.max_conns <= 0) {
        set_busy(index, 1);
        return connfd;
    }
    pool_lock();
    if (pool->generation != *generation) {
        opt->config = pool->config;
        *generation = pool->generation;
        newer = true;
    }
    if (over_limit_count(opt, *conn, connfd, busy_workers(opt->workers)))
        connfd = -1;
    else
        set_busy(index, 1);
    pool_unlock();
    /* Outside the lock: activating the faults resets their counts. */
    if (newer)
        config_apply(&opt->config, opt->fault_seed);
    return connfd;
}

/* The listener was shut down (SIGTERM to the master): wait for the
 * SIGTERM the master sent first, if its handler has not run yet, rather
 * than spin on an accept() that fails at once. Blocked around the check,
 * unblocked atomically in sigsuspend(): once per worker life. */
static void await_termination(void)
{
    sigset_t term, old;

    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &old);
    while (!terminate_requested)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* A worker: take a connection, serve it, again, until SIGTERM. */
static noreturn void run_worker(int listenfd, int index, struct echod_options *opt,
                       unsigned long generation)
{
    signals_reset_in_child();
    signals_wake_on_flag();
    log_worker("worker_start", index, 0);

    while (!terminate_requested) {
        bool leak;
        long conn = 0;
        int connfd;

        connfd = take_connection(listenfd, index, opt, &generation, &conn);
        if (connfd == LISTENER_SHUT) {
            await_termination();
            break;
        }
        if (connfd < 0)
            continue;

        /* The worker lives on after the session, so a leak (at accept,
         * before_close or --leak-connfd) really leaks: the descriptor
         * stays open in the worker. */
        if (accept_hook(conn, connfd, "fork_error", "fork (injected)", &leak))
            session_serve(connfd, conn, SERVED_BY_WORKER, index,
                          opt->leak_connfd || leak);
        set_busy(index, 0);
    }
    /* _exit: stdio buffers were copied from the master and are not ours. */
    _exit(0);
}

/* Fork the worker of a slot (SIGCHLD is blocked in the master). */
static void spawn(struct worker *w, int index, int listenfd, struct echod_options *opt,
                  unsigned long generation)
{
    pid_t pid = fork();

    if (pid == 0)
        run_worker(listenfd, index, opt, generation);
    if (pid < 0) {
        log_error("fork_error", "fork", errno);
        return; /* the slot stays empty; the loop retries */
    }
    if (children_add(pid) < 0)
        log_error("child_table_error", "realloc", ENOMEM);
    w->pid = pid;
    w->not_before = deadline_after(RESPAWN_INTERVAL_MS);
    log_worker(w->spawned ? "respawn" : "spawn", index, pid);
    w->spawned = true;
}

/* Log the workers the reaper took since last time; empty their slots. */
static void note_exits(struct worker *workers, int nworkers)
{
    struct reaped_child dead[64];
    size_t n;

    while ((n = reaped_take(dead, sizeof dead / sizeof dead[0])) > 0) {
        for (size_t k = 0; k < n; k++) {
            struct event ev;
            int index = -1;

            for (int i = 0; i < nworkers; i++)
                if (workers[i].pid == dead[k].pid)
                    index = i;
            if (index < 0)
                continue;
            workers[index].pid = 0;
            set_busy(index, 0);
            event_begin(&ev, "worker_exit");
            event_int(&ev, "worker", index);
            event_int(&ev, "child", dead[k].pid);
            if (WIFEXITED(dead[k].status))
                event_int(&ev, "exit", WEXITSTATUS(dead[k].status));
            else if (WIFSIGNALED(dead[k].status))
                event_int(&ev, "signal", WTERMSIG(dead[k].status));
            event_emit(&ev);
        }
    }
}

/* The generation is stored last and atomically: a worker that reads it
 * without the lock and finds it new takes the lock to copy the config. */
static void publish_config(const struct echod_options *opt, unsigned long *generation)
{
    pool_lock();
    pool->config = opt->config;
    *generation = pool->generation + 1;
    __atomic_store_n(&pool->generation, *generation, __ATOMIC_RELEASE);
    pool_unlock();
}

static void pool_create(int nworkers)
{
    pthread_mutexattr_t attr;

    pool = mmap(NULL, sizeof *pool + (size_t)nworkers, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED)
        die_errno("mmap", "worker pool");
    if (pthread_mutexattr_init(&attr) != 0 ||
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) != 0 ||
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) != 0 ||
        pthread_mutex_init(&pool->lock, &attr) != 0)
        die("pthread_mutex_init: cannot set up the pool's accept lock");
    pthread_mutexattr_destroy(&attr);
}

/* Wait, logging exits, until no worker is left or the deadline passed.
 * Returns true when none is left. */
static bool wait_workers(struct worker *workers, int nworkers, struct timespec deadline,
                         const sigset_t *wait_mask)
{
    for (;;) {
        struct timespec left;

        note_exits(workers, nworkers);
        if (children_count() == 0)
            return true;
        if (!time_left(&deadline, &left))
            return false;
        /* SIGCHLD, unblocked only here, ends the wait early. */
        ppoll(NULL, 0, &left, wait_mask);
    }
}

/* SIGTERM: the listener is already closed. */
static void drain(struct worker *workers, const struct echod_options *opt,
                  const sigset_t *wait_mask)
{
    children_signal_all(SIGTERM);
    if (opt->reap != REAP_WAITPID)
        return; /* the faulty reapers cannot tell when their workers are done */
    if (wait_workers(workers, opt->workers, deadline_after(opt->drain_ms), wait_mask))
        return;
    log_drain_timeout(children_count());
    children_signal_all(SIGKILL);
    /* SIGKILL is prompt; a second is only a bound. */
    wait_workers(workers, opt->workers, deadline_after(1000), wait_mask);
}

int serve_prefork(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    struct worker *workers = calloc((size_t)opt->workers, sizeof *workers);
    unsigned long generation;
    sigset_t chld;

    if (workers == NULL)
        die_errno("calloc", "worker table");
    pool_create(opt->workers);
    publish_config(opt, &generation);
    Listener_blocking(listenfd);
    reaped_track();
    /* SIGCHLD joins the signals that only ppoll() unblocks: a worker that
     * dies between note_exits() and the wait still wakes it. */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    Sigprocmask(SIG_BLOCK, &chld, NULL);

    for (;;) {
        struct timespec retry = { 0, 100 * 1000 * 1000 };
        bool empty = false;

        note_exits(workers, opt->workers);
        if (terminate_requested)
            break;
        /* Publish before announcing: a connection accepted after the
         * reload event follows the new file. A failed reload publishes
         * nothing, so the workers keep their fault counts. */
        if (reload_requested && reload_config(opt)) {
            publish_config(opt, &generation);
            log_reload(opt);
        }
        for (int i = 0; i < opt->workers; i++) {
            struct timespec wait;
            if (workers[i].pid == 0 && !time_left(&workers[i].not_before, &wait))
                spawn(&workers[i], i, listenfd, opt, generation);
            empty |= workers[i].pid == 0;
        }
        /* Signals only; an empty slot (a failed fork, or a respawn held
         * back by not_before) is looked at again in 100 ms. */
        if (ppoll(NULL, 0, empty ? &retry : NULL, wait_mask) < 0 && errno != EINTR)
            die_errno("ppoll", "signals");
    }

    /* Every worker holds a copy of the listener, and a busy one keeps it
     * until its session ends. shutdown(SHUT_RD) on a listening socket ends
     * the listen itself, for all who share it: new connects are refused at
     * once, and the workers' accept() fails with EINVAL (dispatch.c). */
    children_signal_all(SIGTERM);
    if (shutdown(listenfd, SHUT_RD) < 0)
        log_error("drain_error", "shutdown(listener)", errno);
    close(listenfd);
    log_stop(__atomic_load_n(&pool->conns, __ATOMIC_SEQ_CST));
    drain(workers, opt, wait_mask);
    free(workers);
    return 0;
}
