#include "zoo.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"
#include "io.h"
#include "net.h"

int zoo_port(int argc, char **argv)
{
    set_progname(argv[0]);
    if (argc != 2)
        die_usage("usage: %s PORT", progname());
    int port = parse_port(argv[1]);
    if (port <= 0)
        die_usage("PORT wants a number from 1 to 65535, not '%s'", argv[1]);
    return port;
}

int zoo_listen(int argc, char **argv)
{
    char err[256];
    int fd = net_listen(NULL, zoo_port(argc, argv), 128, err, sizeof err);
    if (fd < 0)
        die("%s", err);
    return fd;
}

int zoo_echo_through(int connfd, void (*fn)(char *buf, size_t len, size_t offset))
{
    char buf[65536];
    size_t offset = 0;

    for (;;) {
        ssize_t n = read_retry(connfd, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0)
            return -1;
        if (fn)
            fn(buf, (size_t)n, offset);
        if (writen(connfd, buf, (size_t)n) < 0)
            return -1;
        offset += (size_t)n;
    }
}

int zoo_echo(int connfd)
{
    return zoo_echo_through(connfd, NULL);
}

int zoo_accept(int listenfd)
{
    for (;;) {
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd >= 0)
            return connfd;
        if (errno != EINTR && errno != ECONNABORTED)
            die_errno("accept", NULL);
    }
}

pid_t zoo_fork_session(int listenfd, int connfd, int (*session)(int connfd))
{
    pid_t pid = fork();
    if (pid < 0)
        fprintf(stderr, "%s: fork: %s\n", progname(), strerror(errno));
    if (pid != 0)
        return pid;
    close(listenfd);
    int status = session(connfd);
    close(connfd);
    _exit(status == 0 ? 0 : 1);
}

void zoo_reap_every_exited_child(int sig)
{
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

noreturn void zoo_serve_forking(int listenfd, int (*session)(int connfd))
{
    /* No SA_RESTART, on purpose: the EINTR this raises in accept() is
     * retried below, as UNP 5.9 teaches. */
    Sigaction(SIGCHLD, zoo_reap_every_exited_child, 0);
    Sigaction(SIGPIPE, SIG_IGN, 0);
    for (;;) {
        int connfd = zoo_accept(listenfd);
        zoo_fork_session(listenfd, connfd, session);
        close(connfd);
    }
}
