/*
 * fork_leaks_connfd: the parent never closes connfd after fork (the
 * FreeBSD handbook's and UC3M's classic). The child closes its copy when
 * the session ends, but the parent's copy keeps the socket open: the
 * client's FIN is never answered (CLOSE_WAIT), the client never sees EOF
 * after a half-close, and the parent holds one more descriptor per
 * connection until accept() fails with EMFILE.
 *
 * Must fail: half-close (no EOF), close-wait, descriptors, churn.
 * Fix: close(connfd) in the parent right after fork().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    Sigaction(SIGCHLD, zoo_reap_every_exited_child, SA_RESTART);
    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            /* EMFILE once the leak has used up the descriptor table: say
             * so, and poll slowly rather than spin on a full queue. */
            fprintf(stderr, "%s: accept: %s\n", progname(), strerror(errno));
            poll(NULL, 0, 100);
            continue;
        }
        zoo_fork_session(listenfd, connfd, zoo_echo);
        /* connfd is never closed here: the defect. */
    }
}
