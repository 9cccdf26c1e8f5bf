/*
 * fork_children_never_exit: each session ends cleanly (EOF echoed, the
 * connection closed) but the child then blocks forever instead of exiting,
 * as a child does that waits on a lock, a pipe or a condition that nothing
 * will ever signal. Every connection ever made leaves a sleeping process:
 * after a 2,000-connection churn, 2,000 of them.
 *
 * Must fail: zombies, lost-sigchld and eintr (the exits they wait for never
 * come), churn (2,000 live children). Must pass half-close and close-wait:
 * the sockets are closed properly.
 * Fix: the child exits when its session is over.
 */
#include <unistd.h>

#include "zoo.h"

static int echo_then_never_exit(int connfd)
{
    zoo_echo(connfd);
    close(connfd);
    for (;;)
        pause(); /* waits for a wake-up that never comes */
    return 0;
}

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), echo_then_never_exit);
}
