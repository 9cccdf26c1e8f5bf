/*
 * fork_banner_first: each session starts with a greeting line, as an SMTP
 * or FTP server's does, and then echoes. The server is alive and well; its
 * replies are not the echo of what the client sent.
 *
 * Must fail: binary-echo (the wrong-reply case: the first bytes back are
 * the banner), and every check that asks for an exact echo (concurrent-
 * clients, half-close, rst-mid-session, and the "still serving?" probe
 * that early-rst, dead-peer-write, eintr, churn and slow-consumer end
 * with). Must pass the checks that only count processes and sockets.
 * Fix: an echo server says nothing of its own.
 */
#include "io.h"
#include "zoo.h"

static int greet_then_echo(int connfd)
{
    static const char banner[] = "220 zoo echo service ready\r\n";
    if (writen(connfd, banner, sizeof banner - 1) < 0)
        return -1;
    return zoo_echo(connfd);
}

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), greet_then_echo);
}
