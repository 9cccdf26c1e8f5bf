/* One process, a level-triggered epoll loop. */
#include <sys/epoll.h>

#include "evecho.h"

#define MIN_EVENTS 256

/* c NULL: the listener */
static void watch(int ep, int op, int fd, struct evconn_min *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(ep, op, fd, &ev) < 0)
        Die("min_epoll", "epoll_ctl");
}

int main(int argc, char **argv)
{
    struct min_options opt = Min_options(argc, argv);
    struct epoll_event events[MIN_EVENTS];
    int ep = epoll_create1(0);
    if (ep < 0)
        Die("min_epoll", "epoll_create1");
    signal(SIGPIPE, SIG_IGN);
    int listener = Min_listen("min_epoll", opt.port, SOCK_NONBLOCK);
    watch(ep, EPOLL_CTL_ADD, listener, NULL, EPOLLIN);
    for (;;) {
        int n = epoll_wait(ep, events, MIN_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            Die("min_epoll", "epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct evconn_min *c = events[i].data.ptr;
            enum ev_want want;
            int writing;
            if (c == NULL) {
                int fd;
                while ((fd = ev_accept(listener)) >= 0) {
                    struct evconn_min *nc = malloc(sizeof *nc);
                    if (nc == NULL) {
                        close(fd); /* no memory: this connection is dropped */
                        continue;
                    }
                    nc->fd = fd;
                    nc->off = nc->len = 0;
                    watch(ep, EPOLL_CTL_ADD, fd, nc, EPOLLIN);
                }
                continue;
            }
            /* what was asked for, whatever else the events say (EPOLLHUP,
             * EPOLLERR): the read or write then says how it ended */
            writing = c->len > 0;
            want = writing ? ev_flush(c) : ev_read(c);
            if (want == EV_CLOSE) {
                close(c->fd); /* close removes it from the epoll set */
                free(c);
            } else if ((want == EV_WRITE) != writing) {
                watch(ep, EPOLL_CTL_MOD, c->fd, c, want == EV_WRITE ? EPOLLOUT : EPOLLIN);
            }
        }
    }
}
