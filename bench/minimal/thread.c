/* A detached thread per connection. */
#include <pthread.h>
#include <stdint.h>

#include "minimal.h"

static void *serve(void *arg)
{
    min_echo_blocking((int)(intptr_t)arg);
    return NULL;
}

int main(int argc, char **argv)
{
    struct min_options opt = Min_options(argc, argv);
    pthread_attr_t attr;
    signal(SIGPIPE, SIG_IGN); /* one process serves them all */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int listener = Min_listen("min_thread", opt.port, 0);
    for (;;) {
        pthread_t tid;
        int fd = min_accept(listener);
        if (fd < 0)
            Die("min_thread", "accept");
        if (pthread_create(&tid, &attr, serve, (void *)(intptr_t)fd) != 0)
            close(fd); /* no thread: this connection is dropped */
    }
}
