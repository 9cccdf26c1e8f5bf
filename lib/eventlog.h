/*
 * The JSON-lines event log. Every function here is async-signal-safe: an
 * event is formatted by hand into a caller's stack buffer (no printf, no
 * malloc) and written with one write(2), so signal handlers may log, and
 * parent and children appending to one O_APPEND file never interleave
 * within a line.
 *
 *   struct event ev;
 *   event_begin(&ev, "accept");
 *   event_int(&ev, "conn", 3);
 *   event_str(&ev, "peer", "127.0.0.1:40000");
 *   event_emit(&ev);   -> {"ts":1700000000.000001,"pid":42,"event":"accept","conn":3,"peer":"127.0.0.1:40000"}
 */
#ifndef FL_EVENTLOG_H
#define FL_EVENTLOG_H

#include <stddef.h>
#include <sys/types.h>

#define EVENT_MAX 512

struct event {
    size_t len;
    int truncated; /* set when a field did not fit; the line stays valid JSON */
    int off;       /* event_begin() with the log closed: nothing is built */
    char buf[EVENT_MAX];
};

/*
 * Open the log: "-" means standard output, anything else a file opened for
 * appending (created 0644), never through a symbolic link (O_NOFOLLOW: the
 * error says so). Returns 0, or -1 with err filled. Until it is
 * called, or after event_log_close(), events are formatted and discarded.
 */
int event_log_open(const char *path, char *err, size_t errlen);
void event_log_close(void);
int event_log_fd(void);

/* Start an event stamped with the current time and pid. */
void event_begin(struct event *ev, const char *name);
/* The same from a signal handler: the pid is asked of the kernel, since a
 * handler can run in a fork child before the cached pid is forgotten. */
void event_begin_in_handler(struct event *ev, const char *name);
/* Start an event with a given stamp (for tests and replays). */
void event_begin_at(struct event *ev, const char *name, long long sec,
                    long usec, long long pid);
void event_int(struct event *ev, const char *key, long long value);
/* Strings are JSON-escaped so the line stays valid UTF-8 JSON: control
 * bytes and bytes outside well-formed UTF-8 become \u00XX (eventlog.c). */
void event_str(struct event *ev, const char *key, const char *value);
/* Close the object and newline; returns the finished line's length. */
size_t event_end(struct event *ev);
/* event_end() then one write(2) to the log; errno is preserved. */
void event_emit(struct event *ev);

#endif
