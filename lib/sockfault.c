#include "sockfault.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errfmt.h"

static int failed(int fd, const char *call, char *err, size_t errlen)
{
    int saved = errno;
    char object[32];

    snprintf(object, sizeof object, "fd %d", fd);
    err_fill(err, errlen, call, object, saved);
    errno = saved;
    return -1;
}

int sock_fault_apply(int fd, enum fault_action action, enum sock_fault_effect *effect,
                     char *err, size_t errlen)
{
    static const struct linger abortive = { .l_onoff = 1, .l_linger = 0 };

    switch (action) {
    case FA_RST:
        *effect = SOCK_FAULT_CLOSED;
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) < 0) {
            int saved = errno;
            /* The fault still ends the connection, with a FIN: half of
             * what was asked beats a session that goes on. */
            close(fd);
            errno = saved;
            return failed(fd, "setsockopt SO_LINGER", err, errlen);
        }
        /* With a zero linger close() is an abort: RST, unsent data gone. */
        if (close(fd) < 0)
            return failed(fd, "close", err, errlen);
        return 0;
    case FA_CLOSE:
        *effect = SOCK_FAULT_CLOSED;
        if (close(fd) < 0)
            return failed(fd, "close", err, errlen);
        return 0;
    case FA_SHUTDOWN_WR:
        *effect = SOCK_FAULT_SHUT;
        /* ENOTCONN: the peer reset the connection first; the next read
         * says so to the caller as well. */
        if (shutdown(fd, SHUT_WR) < 0)
            return failed(fd, "shutdown SHUT_WR", err, errlen);
        return 0;
    default:
        *effect = SOCK_FAULT_NONE;
        return 0;
    }
}
