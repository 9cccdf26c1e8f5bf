/*
 * fork_floods_output: a correct forking echo server with a debug trace
 * left on: every chunk it echoes is copied raw to stdout and described, in
 * a hex dump of its first 64 bytes, on stderr. One 8 MiB echo writes more
 * than 8 MiB to stdout.
 *
 * Must pass every check; what a check prints or keeps of the server's
 * output must stay bounded.
 * Fix: no per-byte tracing, or tracing to a bounded log.
 */
#include <stdio.h>
#include <unistd.h>

#include "io.h"
#include "zoo.h"

static void trace(char *buf, size_t len, size_t offset)
{
    char line[256];
    int at = snprintf(line, sizeof line, "[%ld] offset %zu, %zu bytes:",
                      (long)getpid(), offset, len);
    for (size_t i = 0; i < len && i < 64 && at < (int)sizeof line - 4; i++)
        at += snprintf(line + at, sizeof line - (size_t)at, " %02x",
                       (unsigned char)buf[i]);
    line[at++] = '\n';
    (void)writen(STDERR_FILENO, line, (size_t)at);
    (void)writen(STDOUT_FILENO, buf, len);
}

static int echo_traced(int connfd)
{
    return zoo_echo_through(connfd, trace);
}

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), echo_traced);
}
