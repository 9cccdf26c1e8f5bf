/*
 * fork_accept_eintr_fatal: reaps correctly, but its SIGCHLD handler is
 * installed without SA_RESTART, and accept() failing with EINTR is treated
 * as fatal. The first child to exit while the parent waits in accept()
 * interrupts it, and the server exits (UNP 5.9, "Handling Interrupted
 * System Calls").
 *
 * Must fail: every check (each one's last session ends while the server
 * waits in accept()): "server died during <check>: exited with status 1",
 * with "accept: Interrupted system call" from its stderr. Not for sure
 * early-rst and half-close: their one session is so short that, under
 * load, the child can be gone before the parent is back in accept().
 * Fix: retry accept() on EINTR (and ECONNABORTED), or install the handler
 * with SA_RESTART.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    Sigaction(SIGCHLD, zoo_reap_every_exited_child, 0);
    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd < 0)
            die_errno("accept", NULL);
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
