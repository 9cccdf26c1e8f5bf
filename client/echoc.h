/* echoc: what the option parser and the str_cli loops share. */
#ifndef ECHOC_H
#define ECHOC_H

#include <stdbool.h>
#include <stddef.h>

#include "fault.h"
#include "fl_build_config.h"

/*
 * Exit statuses. Each failure the suite provokes has its own, so a test
 * asserts on the status instead of parsing stderr; --help lists them.
 */
enum echoc_exit {
    ECHOC_OK = 0,          /* every echo came back (and matched, with --verify) */
    ECHOC_ERROR = 1,       /* any other runtime error: message names the call */
    ECHOC_USAGE = 2,       /* bad command line (die_usage) */
    ECHOC_CONNECT = 3,     /* a connection could not be made (refused, ...) */
    ECHOC_PREMATURE = 4,   /* the server's EOF came before all echoes */
    ECHOC_RESET = 5,       /* ECONNRESET on the socket */
    ECHOC_BROKEN_PIPE = 6, /* EPIPE on the socket, SIGPIPE being ignored */
    ECHOC_MISMATCH = 7,    /* --verify found an echoed byte that differs */
    ECHOC_FAULT = 8,       /* a fault hook cut the session (rst, close,
                              shutdown_wr or drop fired) and nothing else
                              failed: the run is not a clean echo */
};

enum echoc_mode {
    MODE_BLOCK,  /* UNP 5.3: blocks on stdin, misses the server's FIN */
    MODE_SELECT, /* UNP 6.7/6.13: select() on stdin and the socket */
};

struct echoc_options {
    const char *host;
    int port;
    enum echoc_mode mode;
    long conns;
    bool bytes_mode;          /* --bytes given: generated data, not stdin */
    unsigned long long bytes;
    bool verify;
    bool half_close;
    bool sigpipe_ignore;
    const char *events;       /* --events FILE|-, or NULL */
};

/*
 * One connection. conn 1 is the one echoc talks on; 2..N are --conns'
 * idle ones. The fault hooks see `fault` (conn number, bytes read, fd).
 */
struct client_conn {
    int fd;                 /* -1 once a fault closed it */
    bool shut;              /* a shutdown_wr fault shut our write side */
    bool close_hooked;      /* before_close has run for it */
    struct fault_ctx fault;
};

/* The ways of talking on the connection (str_cli.c). Each returns an exit
 * status, having reported any failure on stderr. drain_cli() is what is
 * left once a shutdown_wr fault has shut our side: read to the EOF. */
int str_cli_block(struct client_conn *c, const struct echoc_options *opt);
int str_cli_select(struct client_conn *c, const struct echoc_options *opt);
int bytes_cli_block(struct client_conn *c, const struct echoc_options *opt);
int bytes_cli_select(struct client_conn *c, const struct echoc_options *opt);
int drain_cli(struct client_conn *c, const struct echoc_options *opt);

/*
 * Fault hooks (hooks.c). conn_hook() runs the hook at a point for a
 * connection and carries out, through lib's sock_fault_apply(), what
 * echoc can by itself:
 *   rst          SO_LINGER {1, 0} and close: RST; c->fd becomes -1
 *   close        close: FIN; c->fd becomes -1
 *   shutdown_wr  shutdown(SHUT_WR): FIN; c->shut is set
 * and tells the caller what is left for it. Compiled out, it is the
 * constant HOOK_GO_ON and the compiler drops every branch on it.
 */
enum hook_result {
    HOOK_GO_ON,  /* nothing (left) to do; c->shut may have been set */
    HOOK_ENDED,  /* rst or close: the connection is gone */
    HOOK_SHORT,  /* short=N: write at most *arg bytes per write(2) */
    HOOK_DROP,   /* drop: discard the data just read */
    HOOK_LEAK,   /* leak: do not close (or shut) this connection */
};

#if FL_FAULT_HOOKS
enum hook_result conn_hook_run(struct client_conn *c, enum fault_point point,
                               long long *arg);
/* Idle (no fault armed): one branch, no call. */
#define conn_hook(c, point, arg) \
    (FAULT_ARMED() ? conn_hook_run((c), (point), (arg)) : HOOK_GO_ON)
#else
#define conn_hook(c, point, arg) ((void)(c), (void)(arg), HOOK_GO_ON)
#endif

/* Add a spec from `source` ("--fault" or "ECHOC_FAULTS"); a bad spec, or
 * any spec in a build without hooks, exits 2 with the reason. */
void hooks_add_spec(const char *source, const char *spec);
/* Seed (announcing the seed when a rule draws) and activate the faults. */
void hooks_start(void);
/* The final status: ECHOC_OK becomes ECHOC_FAULT, with a message, when a
 * fault cut the session. */
int hooks_final_status(int status);

/* One line "echoc: ..." on stderr; returns status, for `return report(...)`. */
int report(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report a failed call on the connection: ECONNRESET -> ECHOC_RESET, EPIPE
 * -> ECHOC_BROKEN_PIPE, anything else -> ECHOC_ERROR. */
int report_socket_error(const char *call, int errnum);

#endif
