/* A pool of --workers processes, each blocking in accept() on the shared
 * listener; the parent only waits. */
#include <sys/wait.h>

#include "minimal.h"

int main(int argc, char **argv)
{
    struct min_options opt = Min_options(argc, argv);
    int listener = Min_listen("min_prefork", opt.port, 0);
    for (int i = 0; i < opt.workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            Die("min_prefork", "fork");
        if (pid == 0) {
            for (;;) {
                int fd = min_accept(listener);
                if (fd < 0)
                    Die("min_prefork", "accept");
                min_echo_blocking(fd);
            }
        }
    }
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 1; /* every worker died */
}
