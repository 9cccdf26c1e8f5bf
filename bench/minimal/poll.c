/* One process, a poll() loop over the listener and every connection. */
#include <poll.h>

#include "evecho.h"

int main(int argc, char **argv)
{
    struct min_options opt = Min_options(argc, argv);
    size_t count = 1, room = 1024;
    struct pollfd *pfd = malloc(room * sizeof *pfd);
    struct evconn_min **conn = malloc(room * sizeof *conn);
    if (pfd == NULL || conn == NULL)
        Die("min_poll", "malloc");
    signal(SIGPIPE, SIG_IGN);
    pfd[0] = (struct pollfd){ .fd = Min_listen("min_poll", opt.port, SOCK_NONBLOCK),
                              .events = POLLIN };
    for (;;) {
        if (poll(pfd, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            Die("min_poll", "poll");
        }
        for (size_t i = count; i-- > 1;) {
            enum ev_want want;
            if (pfd[i].revents == 0)
                continue;
            /* what was asked for, whatever else revents says (POLLHUP,
             * POLLERR): the read or write then says how it ended */
            want = conn[i]->len ? ev_flush(conn[i]) : ev_read(conn[i]);
            if (want == EV_CLOSE) {
                close(pfd[i].fd);
                free(conn[i]);
                pfd[i] = pfd[--count];
                conn[i] = conn[count];
                continue;
            }
            pfd[i].events = want == EV_WRITE ? POLLOUT : POLLIN;
        }
        if (pfd[0].revents & POLLIN) {
            int fd;
            while ((fd = ev_accept(pfd[0].fd)) >= 0) {
                if (count == room) {
                    room *= 2;
                    pfd = realloc(pfd, room * sizeof *pfd);
                    conn = realloc(conn, room * sizeof *conn);
                    if (pfd == NULL || conn == NULL)
                        Die("min_poll", "realloc");
                }
                conn[count] = malloc(sizeof **conn);
                if (conn[count] == NULL) {
                    close(fd); /* no memory: this connection is dropped */
                    continue;
                }
                conn[count]->fd = fd;
                conn[count]->off = conn[count]->len = 0;
                pfd[count++] = (struct pollfd){ .fd = fd, .events = POLLIN };
            }
        }
    }
}
