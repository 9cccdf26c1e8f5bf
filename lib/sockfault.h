/*
 * The socket-level fault actions, carried out once for echod and echoc:
 * rst, close and shutdown_wr (docs/FAULTS.md, "Actions"). The engine
 * (fault.c) decides that one fires; the program at the hook hands the
 * action and its socket here.
 *
 * Not part of the engine, but a hook symbol all the same: it is in libfl
 * in every build (its unit test runs in both), and no program of a build
 * with -Dfault_hooks=disabled links it (ci/hook_symbols.py checks).
 */
#ifndef FL_SOCKFAULT_H
#define FL_SOCKFAULT_H

#include <stddef.h>

#include "fault.h"

/* What became of the descriptor: the caller goes on from this. */
enum sock_fault_effect {
    SOCK_FAULT_NONE,   /* not a socket action: fd untouched, carry on */
    SOCK_FAULT_CLOSED, /* rst or close: fd is closed, the connection is
                          over (even when a call failed: close(2) frees
                          the descriptor whatever it returns) */
    SOCK_FAULT_SHUT,   /* shutdown_wr: our FIN is out (or the connection
                          was already gone); fd stays open for reading */
};

/*
 * Carry out action on the socket fd:
 *   rst          SO_LINGER {1, 0}, then close(): the kernel sends RST, no
 *                FIN, and drops unsent data; if SO_LINGER cannot be set,
 *                fd is closed all the same (a FIN then)
 *   close        close(): FIN
 *   shutdown_wr  shutdown(SHUT_WR): FIN, reading goes on
 * and nothing for any other action. *effect says what became of fd.
 * Returns 0, or -1 when a call failed, with err set to
 * "call(fd N): strerror" and errno kept. Never exits.
 */
int sock_fault_apply(int fd, enum fault_action action, enum sock_fault_effect *effect,
                     char *err, size_t errlen);

#endif
