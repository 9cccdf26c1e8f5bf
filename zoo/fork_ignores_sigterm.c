/*
 * fork_ignores_sigterm: a correct forking echo server that ignores
 * SIGTERM, so a polite stop does nothing: whoever stops it must wait out
 * its own deadline and then SIGKILL it.
 *
 * Must pass every check (it serves correctly); the harness must still stop
 * it within a bounded time, SIGKILL after a SIGTERM grace, and say so,
 * instead of raising a timeout of its own.
 * Fix: leave SIGTERM at its default, or catch it and shut down.
 */
#include <signal.h>

#include "die.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    int listenfd = zoo_listen(argc, argv);
    Sigaction(SIGTERM, SIG_IGN, 0);
    zoo_serve_forking(listenfd, zoo_echo);
}
