/*
 * listens_on_wrong_port: told to serve on PORT, it listens on PORT+1 (an
 * option read from the wrong place, a default that wins). It echoes
 * correctly, where nobody looks.
 *
 * faultline check must refuse it as a usage error (exit 2) that names the
 * port it does listen on.
 * Fix: listen where you are told.
 */
#include "die.h"
#include "net.h"
#include "zoo.h"

int main(int argc, char **argv)
{
    char err[256];
    int listenfd = net_listen(NULL, zoo_port(argc, argv) + 1, 128, err, sizeof err);
    if (listenfd < 0)
        die("%s", err);
    zoo_serve_forking(listenfd, zoo_echo);
}
