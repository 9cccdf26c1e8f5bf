/*
 * The events more than one part of echod writes, one builder each, so that
 * a name and its fields are spelled in one place (the table in
 * docs/ARCHITECTURE.md). Events only one file writes stay beside their
 * code (listen, signal, reaped, the prefork workers', rlimit).
 */
#include <string.h>
#include <sys/socket.h>

#include "echod.h"
#include "eventlog.h"
#include "net.h"

void log_accept(long conn, const struct sockaddr *peer, socklen_t len)
{
    char text[ADDR_TEXT_MAX];
    struct event ev;

    event_begin(&ev, "accept");
    if (ev.off)
        return; /* no log: the peer's text is not worth making */
    addr_format(peer, len, text, sizeof text);
    event_int(&ev, "conn", conn);
    event_str(&ev, "peer", text);
    event_emit(&ev);
}

void log_error(const char *name, const char *call, int errnum)
{
    struct event ev;

    event_begin(&ev, name);
    event_str(&ev, "call", call);
    event_str(&ev, "error", strerror(errnum));
    event_emit(&ev);
}

void log_conn(const char *name, long conn, const char *key, long long value)
{
    struct event ev;

    event_begin(&ev, name);
    event_int(&ev, "conn", conn);
    if (key)
        event_int(&ev, key, value);
    event_emit(&ev);
}

void log_session_end(long conn, long long bytes, const char *reason, int errnum)
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

void log_session_timeout(long conn, long long bytes, const char *which)
{
    bool idle = strcmp(which, "idle") == 0;
    struct event ev;

    event_begin(&ev, "session_timeout");
    event_int(&ev, "conn", conn);
    event_str(&ev, "reason", which);
    event_int(&ev, "limit_ms", idle ? session_limits.idle_ms : session_limits.session_ms);
    event_emit(&ev);
    log_session_end(conn, bytes, idle ? "idle_timeout" : "session_timeout", 0);
}

void log_stop(long connections)
{
    struct event ev;

    event_begin(&ev, "stop");
    event_int(&ev, "connections", connections);
    event_emit(&ev);
}

void log_drain_timeout(size_t live)
{
    struct event ev;

    event_begin(&ev, "drain_timeout");
    event_int(&ev, "live", (long long)live);
    event_emit(&ev);
}

void log_reload(const struct echod_options *opt)
{
    struct event ev;

    event_begin(&ev, "reload");
    event_int(&ev, "max_conns", opt->config.max_conns);
    event_int(&ev, "faults", opt->config.faults.n);
    event_emit(&ev);
}

void log_reload_failed(const char *error)
{
    struct event ev;

    event_begin(&ev, "reload_failed");
    event_str(&ev, "error", error);
    event_emit(&ev);
}

#if FL_FAULT_HOOKS
void log_fault_error(long conn, const char *error)
{
    struct event ev;

    event_begin(&ev, "fault_error");
    event_int(&ev, "conn", conn);
    event_str(&ev, "error", error);
    event_emit(&ev);
}
#endif
