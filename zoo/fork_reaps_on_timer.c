/*
 * fork_reaps_on_timer: reaps in a loop every time its poll() on the
 * listener times out, every 0.5 s, the way Python's
 * socketserver.ForkingMixIn does (serve_forever(poll_interval=0.5) calls
 * collect_children). No SIGCHLD handler.
 *
 * Not a defect: a zombie lives at most half a second, then is reaped
 * whether or not anyone connects. It must PASS zombies, lost-sigchld and
 * churn, whose bound for "no zombie" has to allow a reaper that is late
 * by design but not lazy (compare fork_reaps_on_accept.c, which never
 * reaps until the next client).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

#define REAP_INTERVAL_MS 500

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        struct pollfd pfd = { .fd = listenfd, .events = POLLIN };
        int ready = poll(&pfd, 1, REAP_INTERVAL_MS);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (ready < 0 && errno != EINTR)
            die_errno("poll", NULL);
        if (ready <= 0)
            continue;
        int connfd = zoo_accept(listenfd);
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
