/*
 * fork_no_sigchld_handler: UNP's server-v1 (tcpserv01.c). Nobody ever
 * waits for a child, so every finished session leaves a zombie for as long
 * as the server lives.
 *
 * Must fail: zombies, lost-sigchld, churn (2,000 zombies).
 * Fix: catch SIGCHLD and reap in a loop, waitpid(-1, &status, WNOHANG)
 * until it returns 0 (fork_correct.c).
 */
#include <signal.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = zoo_accept(listenfd);
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
