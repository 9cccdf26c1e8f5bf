/*
 * poll_sigpipe_default: a single-process poll() echo server, non-blocking
 * sockets and a 64 KiB buffer per connection, correct about half-close
 * (after the client's EOF it still sends what it owes, then closes), that
 * leaves SIGPIPE at its default action.
 *
 * When a peer resets the connection while the server owes it bytes (the
 * client half-closed, then closed without reading; or closed with unread
 * echo in its buffer), poll() reports POLLERR: the server reads the error
 * with SO_ERROR, logs it, and goes on like at EOF, flushing what it owes.
 * That write meets the reset connection: EPIPE, and SIGPIPE at its
 * default kills the process, and with it every other client's session
 * (UNP 5.13, in a server where one process holds them all).
 *
 * Must fail: dead-peer-write, rst-mid-session, slow-consumer and
 * session-ends (their stalled clients close with unread bytes: RSTs), each
 * "server died during <check>: killed by signal 13 (SIGPIPE)".
 * Fix: signal(SIGPIPE, SIG_IGN) (or MSG_NOSIGNAL on every send) and close
 * the connection on EPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

#define MAX_CONNS 1024
#define BUF_SIZE 65536

struct conn {
    int fd;
    bool eof;         /* no more input: flush what is owed, then close */
    size_t len;       /* bytes read and not yet echoed */
    char buf[BUF_SIZE];
};

static struct conn conns[MAX_CONNS];
static struct pollfd pfds[MAX_CONNS + 1];

static void drop(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
}

static void on_input(struct conn *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
    if (n > 0)
        c->len += (size_t)n;
    else if (n == 0)
        c->eof = true;
    else if (errno != EAGAIN && errno != EINTR)
        drop(c);
}

static void on_error(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    fprintf(stderr, "%s: connection %d: %s; flushing what it is owed\n",
            progname(), c->fd, strerror(err));
    c->eof = true;
}

static void on_output(struct conn *c)
{
    ssize_t n = write(c->fd, c->buf, c->len); /* SIGPIPE kills us here */
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(c);
        return;
    }
    memmove(c->buf, c->buf + n, c->len - (size_t)n);
    c->len -= (size_t)n;
}

static void accept_one(int listenfd)
{
    int fd = accept4(listenfd, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0)
        return; /* EAGAIN, ECONNABORTED, EMFILE: try again at the next poll */
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].fd < 0) {
            conns[i].fd = fd;
            conns[i].eof = false;
            conns[i].len = 0;
            return;
        }
    }
    close(fd); /* full */
}

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);
    if (fcntl(listenfd, F_SETFL, O_NONBLOCK) < 0)
        die_errno("fcntl", "O_NONBLOCK");
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].fd = -1;

    for (;;) {
        pfds[MAX_CONNS] = (struct pollfd){ .fd = listenfd, .events = POLLIN };
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            short events = 0;
            if (!c->eof && c->len < BUF_SIZE)
                events |= POLLIN;
            if (c->len > 0)
                events |= POLLOUT;
            pfds[i] = (struct pollfd){ .fd = c->fd, .events = events };
        }
        if (poll(pfds, MAX_CONNS + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("poll", NULL);
        }
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            short re = pfds[i].revents;
            if (c->fd < 0 || !re)
                continue;
            if (re & POLLERR)
                on_error(c);
            if (c->fd >= 0 && (re & (POLLIN | POLLHUP)) && !c->eof && c->len < BUF_SIZE)
                on_input(c);
            if (c->fd >= 0 && c->len > 0)
                on_output(c);
            if (c->fd >= 0 && c->eof && c->len == 0)
                drop(c);
        }
        if (pfds[MAX_CONNS].revents & POLLIN)
            accept_one(listenfd);
    }
}
