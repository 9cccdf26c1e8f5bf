/*
 * fork_accept_eintr_fatal: reaps correctly, but its SIGCHLD handler is
 * installed without SA_RESTART, and an interrupted wait for the next
 * connection (EINTR) is treated as fatal. The first child to exit
 * interrupts that wait, and the server exits (UNP 5.9, "Handling
 * Interrupted System Calls").
 *
 * It waits in ppoll() before accept(), with SIGCHLD blocked everywhere
 * else and let in by ppoll's mask (the pselect pattern, UNP 20.5): a
 * child's exit interrupts the wait however late the parent gets back to
 * it. With a bare blocking accept() the defect only showed when the exit
 * landed inside accept(); on a loaded machine the whole session could end
 * before the parent returned there, and the server lived.
 *
 * Must fail: every check (each one's sessions end with their children's
 * SIGCHLD): "server died during <check>: exit status 1", with
 * "ppoll(the wait for a connection): Interrupted system call" from its
 * stderr.
 * Fix: retry the wait (and accept()) on EINTR, as UNP 5.9 teaches.
 */
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);
    sigset_t sigchld, during_wait;

    Sigaction(SIGCHLD, zoo_reap_every_exited_child, 0);
    Sigaction(SIGPIPE, SIG_IGN, 0);
    sigemptyset(&sigchld);
    sigaddset(&sigchld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &sigchld, &during_wait) < 0)
        die_errno("sigprocmask", "SIGCHLD");
    sigdelset(&during_wait, SIGCHLD);
    for (;;) {
        struct pollfd listener = { .fd = listenfd, .events = POLLIN };
        if (ppoll(&listener, 1, NULL, &during_wait) < 0)
            die_errno("ppoll", "the wait for a connection");
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd < 0)
            die_errno("accept", NULL);
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
