/*
 * What the zoo's servers share and none of them gets wrong: the command
 * line (one argument, the port), the listening socket, the echo of one
 * session, and the correct forking loop. Each server file holds its one
 * defect: its own loop when the defect is in the parent, its own session
 * when the defect is in the child.
 */
#ifndef ZOO_H
#define ZOO_H

#include <stdnoreturn.h>
#include <stddef.h>
#include <sys/types.h>

/* The PORT of "prog PORT", or a one-line usage error and exit 2. */
int zoo_port(int argc, char **argv);

/* A listening socket on 0.0.0.0:PORT (SO_REUSEADDR, backlog 128), or a
 * one-line error naming the call and exit 1. */
int zoo_listen(int argc, char **argv);

/*
 * Echo one session until the peer's EOF, EINTR retried. Returns 0 at EOF,
 * -1 with errno after a failed read or write (ECONNRESET, EPIPE); the
 * caller closes the connection either way.
 */
int zoo_echo(int connfd);

/* The same, each chunk passed through fn (which may change it) before it
 * is written back; offset is where the chunk starts in the session. */
int zoo_echo_through(int connfd, void (*fn)(char *buf, size_t len, size_t offset));

/* accept() that retries EINTR and ECONNABORTED (a connection reset in the
 * accept queue) and dies on any other error. */
int zoo_accept(int listenfd);

/*
 * fork(); the child closes listenfd, runs session(connfd), closes connfd
 * and exits (0 when session returned 0, else 1). Returns the child's pid
 * to the parent, or -1 after saying why on stderr; the parent still owns
 * connfd.
 */
pid_t zoo_fork_session(int listenfd, int connfd, int (*session)(int connfd));

/* The SIGCHLD handler that is right: one delivered SIGCHLD may stand for
 * many exits, so it reaps with waitpid(-1, WNOHANG) until none is left
 * (and keeps errno). */
void zoo_reap_every_exited_child(int sig);

/*
 * The correct forking loop, every seed lesson applied: SIGCHLD reaped in a
 * waitpid(WNOHANG) loop, SIGPIPE ignored, accept() retried on EINTR and
 * ECONNABORTED, connfd closed in the parent, the child exits after its
 * session. fork_correct.c is this loop with zoo_echo.
 */
noreturn void zoo_serve_forking(int listenfd, int (*session)(int connfd));

#endif
