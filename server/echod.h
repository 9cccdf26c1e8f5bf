/* echod: what the concurrency models share. */
#ifndef ECHOD_H
#define ECHOD_H

#include <signal.h>
#include <stdbool.h>

enum reap_strategy {
    REAP_WAITPID, /* UNP server-v3, CS:APP echoserverp: waitpid(WNOHANG) loop */
    REAP_WAIT,    /* UNP server-v2: one wait() per SIGCHLD, loses signals */
    REAP_NONE,    /* UNP server-v1: no handler, children stay zombies */
};

struct echod_options {
    const char *bind;
    int port;
    int backlog;
    const char *model;
    enum reap_strategy reap;
    bool leak_connfd;
    const char *events;
};

/* Set by handlers, consumed by the accept loop. */
extern volatile sig_atomic_t terminate_requested;

/* Install SIGCHLD handling for a strategy (reap.c). */
void reaper_install(enum reap_strategy reap);
const char *reap_strategy_name(enum reap_strategy reap);
/* Reap every child that has already exited, whatever the strategy; used
 * at shutdown by strategies that reap at all. */
void reap_exited_children(void);

/* Log a received signal from a handler (async-signal-safe). */
void log_signal(int signo);

/* Serve one connection until EOF or error (session.c); returns the exit
 * status for the process or thread that served it. */
int echo_session(int connfd, long conn);

/* The accept/dispatch loops, one per file. Each returns the exit status. */
int serve_fork(int listenfd, const struct echod_options *opt,
               const sigset_t *wait_mask);

#endif
