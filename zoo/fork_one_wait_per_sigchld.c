/*
 * fork_one_wait_per_sigchld: UNP's server-v2 (sigchldwait.c). The SIGCHLD
 * handler calls wait() once. Signals do not queue: children that exit
 * while a SIGCHLD is already pending raise no second one, and all but one
 * of them stay zombies until some later exit's handler happens to take one.
 *
 * Must fail: lost-sigchld (the server is stopped while 5 children exit, so
 * their 5 SIGCHLDs merge into one for certain) and churn (2,000 exits
 * merge). zombies (5 clients close together, server running) fails only
 * when the exits happen to merge: no verdict is required of it.
 * Fix: reap in a loop, waitpid(-1, &status, WNOHANG) until it returns 0.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"
#include "zoo.h"

static void reap_one_child(int sig)
{
    int saved = errno;
    (void)sig;
    wait(NULL);
    errno = saved;
}

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);

    /* SA_RESTART: accept() resumes after the handler, so this server's one
     * defect is the lost signals, not EINTR. */
    Sigaction(SIGCHLD, reap_one_child, SA_RESTART);
    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = zoo_accept(listenfd);
        zoo_fork_session(listenfd, connfd, zoo_echo);
        close(connfd);
    }
}
