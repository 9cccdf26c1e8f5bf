/*
 * One echo session (UNP's str_echo): whatever read() returns goes back with
 * writen(), so binary data and NULs are echoed byte for byte.
 *
 * Error policy: EINTR is retried (read_retry, writen). ECONNRESET on read
 * and EPIPE / ECONNRESET on write mean the peer is gone: the session ends
 * and says so in the event log. With SIGPIPE at its default disposition the
 * write that would return EPIPE kills the process instead, which is the
 * behaviour UNP 5.13 describes and the suite observes.
 */
#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "echod.h"
#include "eventlog.h"
#include "io.h"

#define SESSION_BUFSIZE 16384

static void log_session_end(long conn, long long bytes, const char *reason,
                            int errnum)
{
    struct event ev;
    event_begin(&ev, "session_end");
    event_int(&ev, "conn", conn);
    event_int(&ev, "bytes", bytes);
    event_str(&ev, "reason", reason);
    if (errnum)
        event_str(&ev, "error", strerror(errnum));
    event_emit(&ev);
}

int echo_session(int connfd, long conn)
{
    char buf[SESSION_BUFSIZE];
    long long echoed = 0;

    for (;;) {
        ssize_t n = read_retry(connfd, buf, sizeof buf);
        if (n == 0) {
            log_session_end(conn, echoed, "eof", 0);
            return 0;
        }
        if (n < 0) {
            log_session_end(conn, echoed, "read", errno);
            return 1;
        }
        if (writen(connfd, buf, (size_t)n) < 0) {
            log_session_end(conn, echoed, "write", errno);
            return 1;
        }
        echoed += n;
    }
}
