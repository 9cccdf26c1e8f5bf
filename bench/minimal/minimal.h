/*
 * What the minimal servers share: their setup and the blocking echo loop.
 * They are the reference `faultline bench` holds echod's models against:
 * accept, read, write, close, and what correctness needs beside (reaping
 * children, SIGPIPE ignored where one process serves every connection),
 * nothing else. Each model's own file holds only its loop.
 *
 *   min_fork [--port N]            min_prefork [--port N] [--workers N]
 *
 * Readiness: one line on stdout after listen(), as echod prints it.
 * The buffers are echod's sizes (session.c 16 KiB, evconn.c 64 KiB), so
 * that the comparison is of the loops, not of the copy sizes.
 */
#ifndef MINIMAL_H
#define MINIMAL_H

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIN_BLOCKING_BUFSIZE 16384
#define MIN_EVENT_BUFSIZE (64 * 1024)
#define MIN_BACKLOG 1024

struct min_options {
    int port;
    int workers;
};

static inline void Die(const char *prog, const char *call)
{
    fprintf(stderr, "%s: %s: %s\n", prog, call, strerror(errno));
    exit(1);
}

static inline struct min_options Min_options(int argc, char **argv)
{
    struct min_options opt = { 9877, 8 };
    for (int i = 1; i < argc; i++) {
        int *into = !strcmp(argv[i], "--port") ? &opt.port
                    : !strcmp(argv[i], "--workers") ? &opt.workers : NULL;
        if (into == NULL || i + 1 >= argc) {
            fprintf(stderr, "usage: %s [--port N] [--workers N]\n", argv[0]);
            exit(2);
        }
        *into = atoi(argv[++i]);
    }
    if (opt.port < 0 || opt.port > 65535 || opt.workers < 1 || opt.workers > 1024) {
        fprintf(stderr, "%s: --port 0..65535, --workers 1..1024\n", argv[0]);
        exit(2);
    }
    return opt;
}

/* The listening socket, and the readiness line. */
static inline int Min_listen(const char *prog, int port, int type_flags)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_ANY) };
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
    if (fd < 0)
        Die(prog, "socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        Die(prog, "setsockopt(SO_REUSEADDR)");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        Die(prog, "bind");
    if (listen(fd, MIN_BACKLOG) < 0)
        Die(prog, "listen");
    printf("%s: listening on 0.0.0.0:%d pid=%ld\n", prog, port, (long)getpid());
    fflush(stdout);
    return fd;
}

/* Echo until EOF, then close. Policy: EINTR retries; any other error
 * (ECONNRESET, EPIPE with SIGPIPE ignored) ends the connection. */
static inline void min_echo_blocking(int fd)
{
    char buf[MIN_BLOCKING_BUFSIZE];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto done;
            off += w;
        }
    }
done:
    close(fd);
}

/* accept(2), retried on what the next connection does not care about:
 * EINTR, and a connection reset before it was taken (ECONNABORTED). */
static inline int min_accept(int listener)
{
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
            return fd;
    }
}

#endif
