/* A process per connection; SIGCHLD reaps with a waitpid loop (UNP
 * server-v3), the parent closes its copy of the connection. */
#include <sys/wait.h>

#include "minimal.h"

static void reap(int signo)
{
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

int main(int argc, char **argv)
{
    struct min_options opt = Min_options(argc, argv);
    struct sigaction sa = { .sa_handler = reap, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        Die("min_fork", "sigaction(SIGCHLD)");
    int listener = Min_listen("min_fork", opt.port, 0);
    for (;;) {
        int fd = min_accept(listener);
        if (fd < 0)
            Die("min_fork", "accept");
        pid_t pid = fork();
        if (pid == 0) {
            close(listener);
            min_echo_blocking(fd);
            _exit(0);
        }
        /* fork failing (EAGAIN at the process limit) drops this connection. */
        close(fd);
    }
}
