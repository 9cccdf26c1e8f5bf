/* PLACEHOLDER while the prefork model is being written: refuses to run. */
#include "die.h"
#include "echod.h"

int serve_prefork(int listenfd, struct echod_options *opt, const sigset_t *wait_mask)
{
    (void)listenfd;
    (void)opt;
    (void)wait_mask;
    die("--model prefork: not built yet");
}
