/*
 * The echo step of the minimal poll and epoll servers: read once, write
 * what was read; what the socket does not take waits in the connection's
 * buffer, and the connection is not read again until it is written.
 */
#ifndef EVECHO_H
#define EVECHO_H

#include <fcntl.h>

#include "minimal.h"

enum ev_want { EV_READ, EV_WRITE, EV_CLOSE };

struct evconn_min {
    int fd;
    size_t off, len;
    char buf[MIN_EVENT_BUFSIZE];
};

/* Write what is pending. Policy: EAGAIN waits for writability; EINTR
 * retries; EPIPE/ECONNRESET (SIGPIPE ignored) close the connection. */
static inline enum ev_want ev_flush(struct evconn_min *c)
{
    while (c->off < c->len) {
        ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno == EAGAIN ? EV_WRITE : EV_CLOSE;
        c->off += (size_t)w;
    }
    c->off = c->len = 0;
    return EV_READ;
}

static inline enum ev_want ev_read(struct evconn_min *c)
{
    ssize_t n = read(c->fd, c->buf, sizeof c->buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return EV_READ;
    if (n <= 0)
        return EV_CLOSE;
    c->off = 0;
    c->len = (size_t)n;
    return ev_flush(c);
}

/* The next connection, non-blocking, or -1 when there is none now. */
static inline int ev_accept(int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (fd >= 0 || errno != ECONNABORTED)
            return fd;
    }
}

#endif
