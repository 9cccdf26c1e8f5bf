#include "eventlog.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errfmt.h"

/* Written once before any handler is installed, then only read. */
static int log_fd = -1;

/*
 * The pid events are stamped with, asked of the kernel once per process
 * rather than once per event (getpid() is a system call: it was 7 of the
 * fork model's 29 per connection). Once a log is open, fork() runs
 * forget_pid() in the child before it returns there, so no event of a
 * child carries its parent's pid. Without a log no pid is ever asked
 * (event_begin()) and no handler is registered: a fork child would pay a
 * page fault or two for it.
 */
static pid_t stamp_pid;

static void forget_pid(void)
{
    stamp_pid = 0;
}

static void register_forget_pid(void)
{
    pthread_atfork(NULL, NULL, forget_pid);
}

static void forget_pid_at_fork(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, register_forget_pid);
}

static pid_t current_pid(void)
{
    if (stamp_pid == 0)
        stamp_pid = getpid(); /* async-signal-safe; a race writes the same value */
    return stamp_pid;
}

int event_log_open(const char *path, char *err, size_t errlen)
{
    int fd;

    if (strcmp(path, "-") == 0)
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    else
        /* A log path is often in a shared directory (/tmp): a symlink
         * planted there must not turn echod's appends onto another file. */
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == ELOOP) {
        snprintf(err, errlen, "open(%s, O_NOFOLLOW): %s: a symbolic link is not "
                 "followed", path, strerror(ELOOP));
        return -1;
    }
    if (fd < 0) {
        err_fill(err, errlen, "open", path, errno);
        return -1;
    }
    event_log_close();
    forget_pid_at_fork();
    log_fd = fd;
    return 0;
}

void event_log_close(void)
{
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
}

int event_log_fd(void)
{
    return log_fd;
}

/* Space for the closing "}\n", reserved from every field. */
#define CLOSING 2

static int put(struct event *ev, const char *s, size_t n)
{
    if (ev->len + n + CLOSING > sizeof ev->buf) {
        ev->truncated = 1;
        return -1;
    }
    memcpy(ev->buf + ev->len, s, n);
    ev->len += n;
    return 0;
}

static int puts_(struct event *ev, const char *s)
{
    return put(ev, s, strlen(s));
}

/* Decimal digits of v, right-aligned in a small buffer; returns the start. */
static char *format_uint(unsigned long long v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return p;
}

static void put_int(struct event *ev, long long v)
{
    char digits[24];
    char *end = digits + sizeof digits;
    unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = format_uint(mag, end);
    if (v < 0)
        *--p = '-';
    put(ev, p, (size_t)(end - p));
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when s does not start
 * one. A NUL ends the string, so it also ends any sequence it cuts short.
 */
static size_t utf8_sequence_len(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0; /* overlong below U+0800 */
    else if (s[0] == 0xed)
        hi = 0x9f; /* U+D800..U+DFFF, the surrogates */
    else if (s[0] == 0xf0)
        lo = 0x90; /* overlong below U+10000 */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/*
 * Strings come from outside (config bytes, peer data, paths), and the log
 * must stay valid UTF-8 JSON whatever they hold. Well-formed UTF-8 passes
 * through; '"' and '\\' get a backslash; control bytes and every byte that
 * is not part of a well-formed sequence become \u00XX. Since a character
 * U+0080..U+00FF in the input is well-formed and passes through raw, an
 * escape \u0080..\u00ff in the log always stands for one invalid byte XX.
 */
static void put_escaped(struct event *ev, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned char c = *p;
        size_t n = utf8_sequence_len(p);
        char esc[6];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(ev, esc, 2);
            p++;
        } else if (c < 0x20 || n == 0) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            put(ev, esc, 6);
            p++;
        } else {
            put(ev, (const char *)p, n);
            p += n;
        }
    }
}

static void put_key(struct event *ev, const char *key)
{
    puts_(ev, ",\"");
    put_escaped(ev, key);
    puts_(ev, "\":");
}

/* A field either fits whole or is dropped, so the line stays valid JSON. */
struct field_mark {
    size_t len;
    int truncated;
};

static struct field_mark field_start(struct event *ev)
{
    struct field_mark m = { ev->len, ev->truncated };
    ev->truncated = 0;
    return m;
}

static void field_finish(struct event *ev, struct field_mark m)
{
    if (ev->truncated)
        ev->len = m.len;
    ev->truncated |= m.truncated;
}


void event_begin_at(struct event *ev, const char *name, long long sec,
                    long usec, long long pid)
{
    char frac[7];
    ev->len = 0;
    ev->truncated = 0;
    ev->off = 0;
    puts_(ev, "{\"ts\":");
    put_int(ev, sec);
    for (int i = 5; i >= 0; i--) {
        frac[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    frac[6] = '\0';
    puts_(ev, ".");
    puts_(ev, frac);
    puts_(ev, ",\"pid\":");
    put_int(ev, pid);
    event_str(ev, "event", name); /* a name too long is dropped whole */
}

/* With the log closed the event would never be written: nothing is built
 * (no clock, no getpid(), no formatting), so a fork child with no log
 * touches none of this code's pages, nor libc's, nor the vDSO's: each one
 * is a page fault per child. */
static void begin_now(struct event *ev, const char *name, bool ask_pid)
{
    struct timespec now;

    ev->off = log_fd < 0;
    if (ev->off) {
        ev->len = 0;
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now); /* async-signal-safe (POSIX.1-2008) */
    event_begin_at(ev, name, (long long)now.tv_sec, now.tv_nsec / 1000,
                   (long long)(ask_pid ? getpid() : current_pid()));
}

void event_begin(struct event *ev, const char *name)
{
    begin_now(ev, name, false);
}

/* A signal sent to a process just forked is delivered as fork() returns in
 * the child, before forget_pid() has run there: a handler stamping from the
 * cache would put the parent's pid on the child's event (a fork child's
 * SIGTERM logged as its parent's). Those handlers run once per signal, not
 * per connection, so they ask the kernel. */
void event_begin_in_handler(struct event *ev, const char *name)
{
    begin_now(ev, name, true);
}

void event_int(struct event *ev, const char *key, long long value)
{
    if (ev->off)
        return;
    struct field_mark m = field_start(ev);
    put_key(ev, key);
    put_int(ev, value);
    field_finish(ev, m);
}

void event_str(struct event *ev, const char *key, const char *value)
{
    if (ev->off)
        return;
    struct field_mark m = field_start(ev);
    put_key(ev, key);
    puts_(ev, "\"");
    put_escaped(ev, value);
    puts_(ev, "\"");
    field_finish(ev, m);
}

size_t event_end(struct event *ev)
{
    /* put() always leaves CLOSING bytes free, so this cannot fail. */
    ev->buf[ev->len++] = '}';
    ev->buf[ev->len++] = '\n';
    return ev->len;
}

void event_emit(struct event *ev)
{
    if (ev->off)
        return;
    int saved = errno;
    size_t n = event_end(ev);
    if (log_fd >= 0) {
        ssize_t w;
        do
            w = write(log_fd, ev->buf, n);
        while (w < 0 && errno == EINTR);
    }
    errno = saved;
}
