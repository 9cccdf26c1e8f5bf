/* echoc: what the option parser and the str_cli loops share. */
#ifndef ECHOC_H
#define ECHOC_H

#include <stdbool.h>
#include <stddef.h>

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
};

/* The four ways of talking on the connection (str_cli.c). Each returns an
 * exit status, having reported any failure on stderr. */
int str_cli_block(int sockfd, const struct echoc_options *opt);
int str_cli_select(int sockfd, const struct echoc_options *opt);
int bytes_cli_block(int sockfd, const struct echoc_options *opt);
int bytes_cli_select(int sockfd, const struct echoc_options *opt);

/* One line "echoc: ..." on stderr; returns status, for `return report(...)`. */
int report(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report a failed call on the connection: ECONNRESET -> ECHOC_RESET, EPIPE
 * -> ECHOC_BROKEN_PIPE, anything else -> ECHOC_ERROR. */
int report_socket_error(const char *call, int errnum);

#endif
