/*
 * dies_at_start: listens, then exits 1 at once, as a server does whose
 * start-up fails after listen() (a missing file, a bad option read late).
 *
 * faultline check must refuse it as a usage error (exit 2) that names its
 * exit status and what it said, not run the checks against nothing.
 * Fix: fail before listening, or not at all.
 */
#include <stdio.h>
#include <stdlib.h>

#include "zoo.h"

int main(int argc, char **argv)
{
    zoo_listen(argc, argv);
    /* The error first, then the usage text, as many programs print them:
     * the line that says what went wrong is not the last. */
    fprintf(stderr, "%s: cannot open /etc/zoo/zoo.conf: No such file or directory\n"
                    "usage: %s PORT\n"
                    "  reads its settings from /etc/zoo/zoo.conf\n", argv[0], argv[0]);
    return 1;
}
