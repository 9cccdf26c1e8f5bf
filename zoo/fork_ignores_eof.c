/*
 * fork_ignores_eof: the session treats the client's EOF as "the client is
 * idle" and waits for it to come back instead of closing. A client that
 * half-closes (shutdown(SHUT_WR)) gets its echo but never the EOF it waits
 * for; a client that closes leaves the server's end in CLOSE_WAIT and its
 * process alive, forever.
 *
 * Must fail: half-close (no EOF), session-ends, close-wait (held by the
 * children), zombies, lost-sigchld and eintr (the children they wait for
 * never exit), churn (2,000 live children).
 * Fix: read() returning 0 ends the session: close the connection and exit.
 */
#include <unistd.h>

#include "zoo.h"

static int echo_then_wait_forever(int connfd)
{
    if (zoo_echo(connfd) < 0)
        return -1;
    for (;;)
        pause(); /* "the client may send more later" */
}

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), echo_then_wait_forever);
}
