/*
 * fork_reaps_on_accept: the lazy reaper. No SIGCHLD handler; the parent
 * reaps in a loop, but only when accept() returns, i.e. when the next
 * client arrives. Every session's zombie lives until someone connects
 * again: after the last client of the day, forever.
 *
 * Must fail: zombies, lost-sigchld (the zombies of the 5 closed sessions
 * stay while the server sits in accept()), churn (the last cycle's child).
 * Must pass eintr: its closing probe is a new connection, which reaps.
 * Fix: reap when the child exits (a SIGCHLD handler that loops on
 * waitpid(WNOHANG), or a self-pipe the loop polls together with the
 * listener), not when the next client comes.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = zoo_accept(listenfd);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
