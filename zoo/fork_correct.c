/*
 * fork_correct: a forking echo server with no known defect; it must pass
 * every check.
 *
 * Its loop, zoo_serve_forking in zoo.c, applies every lesson the seeds
 * teach, each one the fix of another zoo server:
 *   - SIGCHLD is caught and its handler reaps in a loop, waitpid(-1,
 *     WNOHANG) until nothing is left, because one delivered SIGCHLD can
 *     stand for many exits (fork_no_sigchld_handler.c,
 *     fork_one_wait_per_sigchld.c, fork_reaps_on_accept.c);
 *   - the parent closes connfd right after fork (fork_leaks_connfd.c);
 *   - SIGPIPE is ignored: a write to a reset peer fails with EPIPE and ends
 *     that session only (poll_sigpipe_default.c);
 *   - accept() interrupted by SIGCHLD (EINTR) is retried, and so is
 *     ECONNABORTED (fork_accept_eintr_fatal.c);
 *   - the child exits when its session ends (fork_children_never_exit.c),
 *     and the session ends at the client's EOF (fork_ignores_eof.c).
 */
#include "zoo.h"

int main(int argc, char **argv)
{
    zoo_serve_forking(zoo_listen(argc, argv), zoo_echo);
}
