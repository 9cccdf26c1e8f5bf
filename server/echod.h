/* echod: what the concurrency models share. */
#ifndef ECHOD_H
#define ECHOD_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fault.h"
#include "sockfault.h"

enum reap_strategy {
    REAP_WAITPID, /* UNP server-v3, CS:APP echoserverp: waitpid(WNOHANG) loop */
    REAP_WAIT,    /* UNP server-v2: one wait() per SIGCHLD, loses signals */
    REAP_NONE,    /* UNP server-v1: no handler, children stay zombies */
};

enum sigpipe_mode {
    SIGPIPE_DEFAULT, /* a write to a reset peer kills the writer (UNP 5.13) */
    SIGPIPE_IGNORE,  /* the write fails with EPIPE */
    SIGPIPE_HANDLER, /* a handler logs each SIGPIPE; the write fails with EPIPE */
};

/* What SIGHUP re-reads from --config: a reload replaces it whole, or not
 * at all when the file is broken. */
struct echod_config {
    long max_conns;           /* 0 = unlimited */
    struct fault_set faults;  /* from the file, after the command line's */
};

struct echod_options;

/* What a robust server adds and the classic ones lack: --idle-timeout,
 * --session-timeout, --keepalive. All off (0) by default, so the classic
 * reproductions keep their failures (a silent client held forever). Set
 * once at start, before the first session; not reloaded by SIGHUP. */
struct session_limits {
    long idle_ms;       /* no byte read from the client for this long */
    long session_ms;    /* a session's whole life, whatever it does */
    int keepalive_idle; /* SO_KEEPALIVE: seconds idle before the first probe, 0 = off */
    int keepalive_intvl; /* seconds between probes, 0 = the kernel's */
    int keepalive_cnt;   /* unanswered probes before reset, 0 = the kernel's */
};
extern struct session_limits session_limits;

/* A session's two deadlines under session_limits (CLOCK_MONOTONIC). */
struct session_deadlines {
    bool idle_on, end_on;
    struct timespec idle, end;
};
/* At accept: both deadlines from now. */
void deadlines_start(struct session_deadlines *d);
/* Bytes came from the client: the idle deadline starts again. */
void deadlines_read(struct session_deadlines *d);
/* The nearest deadline and its name ("idle", "session"); false when none. */
bool deadlines_next(const struct session_deadlines *d, struct timespec *when,
                    const char **which);
/* a before b */
bool timespec_before(const struct timespec *a, const struct timespec *b);

/* A concurrency model: --model name runs serve(), the model's accept/
 * dispatch loop (one file each), which returns the exit status. echod.c
 * holds the table of them. */
struct echod_model {
    const char *name;
    int (*serve)(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);
    const char *help; /* one line for --help */
};

struct echod_options {
    const char *bind;
    int port;
    int backlog;
    const struct echod_model *model;
    enum reap_strategy reap;
    enum sigpipe_mode sigpipe;
    bool leak_connfd;
    bool emfile_reserve;        /* --emfile reserve (default: backoff) */
    const char *events;
    const char *config_path;
    long drain_ms;              /* how long SIGTERM waits for sessions */
    int workers;                /* prefork: size of the pool */
    uint64_t fault_seed;        /* for rules without seed= */
    long cli_max_conns;          /* --max-conns, 0 = unlimited (the default) */
    struct fault_set cli_faults; /* ECHOD_FAULTS, then --fault flags */
    struct echod_config config;  /* in force: command line + file */
};

/* Set by handlers, consumed by the accept loop. */
extern volatile sig_atomic_t terminate_requested;
extern volatile sig_atomic_t reload_requested;

/* signals.c */
void log_signal(int signo);
void log_child_signal(void);
void signals_install(enum sigpipe_mode sigpipe, sigset_t *wait_mask);
void signals_reset_in_child(void);
/* The blocking processes (signals.c): SIGTERM (and SIGINT in the fork
 * parent) shuts this listener for reading, so the accept() it may be about
 * to enter fails at once. The fork parent only; its children keep the
 * registration and are told apart by their pid. Unregister (-1) before
 * closing the listener. */
void signals_shut_on_term(int listenfd);
/* A process session's connection (fork child, prefork worker): SIGTERM
 * shuts it for reading, so the recv() it may be about to enter returns
 * what has arrived, then 0. -1 when there is none: set -1 before closing. */
void signals_session_fd(int connfd);
/* Setup of a process that blocks in accept() (the fork parent, each
 * prefork worker): a flag set with no descriptor to shut also arms a timer
 * whose SIGALRM, SIGNAL_WAKE_MS later, ends that accept() (EINTR), so a
 * signal landing between the loop's check and its accept() is read within
 * that bound (signals.c). Dies on failure. */
enum { SIGNAL_WAKE_MS = 10 };
void signals_wake_on_flag(void);
/* The loop that reads the flags is over (the fork parent's drain): no
 * more wake-ups. */
void signals_wake_off(void);
/* The descriptor a wait that unblocks open_mask watches beside its own:
 * readable while a signal the wait lets in is pending, which a wait that
 * returns ready descriptors leaves undelivered (signals.c). Dies on
 * failure. */
int signals_doorbell(const sigset_t *open_mask);
/* The doorbell rang: run the handlers of what is pending. */
void signals_deliver_pending(const sigset_t *open_mask);

/* reap.c: SIGCHLD strategies; the child table the reapers maintain. */
void reaper_install(enum reap_strategy reap);
const char *reap_strategy_name(enum reap_strategy reap);
void reap_exited_children(void);
/* Live (unreaped) children, for the connection limit and SIGTERM. Main
 * loop only; safe beside the reapers without blocking SIGCHLD (reap.c):
 * add a child right after fork(). */
int children_add(pid_t pid);
size_t children_count(void);
void children_signal_all(int signo);
/* prefork: with tracking on, the reapers also note each child they reap
 * (pid, wait status) in a list the master takes with SIGCHLD blocked, to
 * log and replace dead workers. Off by default (fork, thread). */
struct reaped_child {
    pid_t pid;
    int status;
};
void reaped_track(void);
size_t reaped_take(struct reaped_child *out, size_t max);

/* config.c: load --config into cfg (whole, or not at all). Returns 0, or -1
 * with err "FILE:LINE: what is wrong". base_faults come first in cfg;
 * max_conns is base_max_conns (--max-conns) unless the file sets it. */
int config_load(const char *path, long base_max_conns, const struct fault_set *base_faults,
                struct echod_config *cfg, char *err, size_t errlen);
/* Put a config in force: seed its faults and activate them. */
void config_apply(struct echod_config *cfg, uint64_t fault_seed);

/* session.c: one connection's life in a blocking model. Who serves it
 * names the events that open and close it:
 *   child    child_start {conn} ... child_exit {conn, status}
 *   thread   thread_start {conn, tid} ... thread_exit {conn, tid, status}
 *   worker   session_start {conn, worker}, no event at the end
 * `who` is the worker's slot (a thread's tid is asked when its event is
 * logged; ignored for a child). */
enum served_by { SERVED_BY_CHILD, SERVED_BY_THREAD, SERVED_BY_WORKER };
/* The start event, the child_start hook, the echo session until EOF,
 * error, fault or termination, then session_close() unless a fault already
 * closed connfd, and the end event. Returns the exit status for the
 * process or thread that served it. */
int session_serve(int connfd, long conn, enum served_by by, long who, bool keep_open);
/* The end of a connection in every model: the before_close hook, then
 * close(connfd). The leak rule: the process that accepted a connection
 * keeps it open when told to (--leak-connfd or leak@accept: keep_open;
 * a fork child is not that process, its parent is), and any process keeps
 * it when leak@before_close fires; an rst or close there closes it.
 * Returns false when connfd is still open (kept). */
bool session_close(int connfd, const struct fault_ctx *ctx, bool keep_open);
/* Sessions that are threads (the thread model sets it before its first
 * session): the main thread drains them, shutting for reading every
 * connection a session watches (thread_session_watch(), model_thread.c).
 * false: a process session, which SIGTERM's handler drains
 * (signals_session_fd()). */
extern bool session_threads;
/* A thread session's connection, registered (or no longer) for the drain
 * to shut; session_watch() (session.c) shuts it itself when the drain
 * began before. */
void thread_session_watch(int connfd, bool watching);

/* events.c: one builder for each event more than one file writes. */
void log_accept(long conn, const struct sockaddr *peer, socklen_t len);
/* {call, error: strerror(errnum)} under the name `event` */
void log_error(const char *event, const char *call, int errnum);
/* {conn, and key: value unless key is NULL} under the name `event` */
void log_conn(const char *event, long conn, const char *key, long long value);
/* A deadline of session_limits passed (which: "idle" or "session"):
 * session_timeout {conn, reason: which, limit_ms}, then session_end
 * {conn, bytes, reason: idle_timeout or session_timeout}. */
void log_session_timeout(long conn, long long bytes, const char *which);
/* errnum 0: no error field */
void log_session_end(long conn, long long bytes, const char *reason, int errnum);
void log_stop(long connections);
void log_drain_timeout(size_t live);
void log_reload(const struct echod_options *opt);
void log_reload_failed(const char *error);

/* dispatch.c: what the models' loops share. */
/* accept4() on the non-blocking listener with the shared error policy:
 * returns the connection (close-on-exec) numbered ++*conn and logged, or
 * ACCEPT_NOTHING when there is nothing to serve this time (wait again), or
 * ACCEPT_BACK_OFF when out of descriptors or memory (without a reserve) or
 * after an unexpected error, logged: the caller should accept_backoff()
 * (never while holding a lock others wait on). No accept error ends the
 * server. */
enum { ACCEPT_NOTHING = -1, ACCEPT_BACK_OFF = -2 };
int accept_connection(int listenfd, long *conn);
/* --emfile reserve: hold one descriptor back (dies if it cannot, at
 * start). At EMFILE/ENFILE accept_connection() then frees it, accepts the
 * waiting connection, closes it (accept, then refused {conn, error}) and
 * takes the reserve back: no back-off. A fork child drops it. */
void accept_reserve_open(void);
void accept_reserve_drop(void);
/* The same, with accept4() flags (SOCK_NONBLOCK) besides SOCK_CLOEXEC:
 * set at accept, they cost no fcntl() per connection. */
int accept_connection_flags(int listenfd, long *conn, int flags);
/* The same, counter shared by processes (prefork): the number it took is
 * *number (the counter may have moved on since). */
int accept_numbered(int listenfd, long *counter, int flags, long *number);
/* Setup of the fork parent and the prefork pool: the listener blocking.
 * Dies on failure. */
void Listener_blocking(int listenfd);
/* Wait 100 ms, or less if a terminating signal comes (wait_mask: the mask
 * during the wait, NULL to keep the current one). */
void accept_backoff(const sigset_t *wait_mask);
/* At the max_conns limit (counting live children): log "refused", close
 * connfd, return true. Fork and prefork count processes; other models
 * pass their own live count through over_limit_count(). */
bool over_limit(const struct echod_options *opt, long conn, int connfd);
bool over_limit_count(const struct echod_options *opt, long conn, int connfd,
                      size_t live);
#if FL_FAULT_HOOKS
/* The accept fault point. Returns true when connfd is to be served (with
 * *leak set by a leak fault: the server must not close it), false when a
 * fault disposed of it: fork_fail (logged as fail_event/fail_call, EAGAIN,
 * the connection closed unserved), rst or close. */
bool accept_hook(long conn, int connfd, const char *fail_event,
                 const char *fail_call, bool *leak);
/* Carry out the socket action of a hook's hit (rst, close, shutdown_wr)
 * on fd, connection conn, with lib's sock_fault_apply(); a failed call is
 * logged as fault_error. Returns what became of fd. */
enum sock_fault_effect socket_fault(struct fault_hit hit, int fd, long conn);
/* fault_error {conn, error}: a socket fault's call failed (error is
 * lib/sockfault.c's "call(fd N): strerror") */
void log_fault_error(long conn, const char *error);
#else
/* Compiled out (-Dfault_hooks=disabled): every connection is served and
 * no hit ever comes; nothing of these is left in echod (ci/hook_symbols.py). */
static inline bool accept_hook(long conn, int connfd, const char *fail_event,
                               const char *fail_call, bool *leak)
{
    (void)conn, (void)connfd, (void)fail_event, (void)fail_call;
    *leak = false;
    return true;
}
static inline enum sock_fault_effect socket_fault(struct fault_hit hit, int fd, long conn)
{
    (void)hit, (void)fd, (void)conn;
    return SOCK_FAULT_NONE;
}
#endif
/* The top of a blocking model's accept loop: reload if SIGHUP asked,
 * wait in ppoll() on the listener and the doorbell (the only place the
 * loop's signals are unblocked), take one connection. Returns it, or -1
 * when there is none this time. */
int next_connection(int listenfd, int doorbell, struct echod_options *opt, long *conn,
                    const sigset_t *wait_mask);
/* A CLOCK_MONOTONIC deadline ms from now; the time left until it (false
 * once it has passed). For drains: ppoll() takes the time left. */
struct timespec deadline_after(long ms);
bool time_left(const struct timespec *deadline, struct timespec *left);
/* SIGHUP: re-read --config whole and put it in force (true), or log
 * reload_failed and keep the old one (false). The caller logs the reload
 * with log_reload() once every part of the server follows the new file. */
bool reload_config(struct echod_options *opt);

/* The accept/dispatch loops, one per file. Each returns the exit status. */
int serve_fork(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);
int serve_thread(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);
int serve_prefork(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);
int serve_poll(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);
int serve_epoll(int listenfd, struct echod_options *opt, const sigset_t *wait_mask);

#endif
