/*
 * The JSON-lines event log: exact formatting from a fixed stamp, escaping,
 * whole-field truncation, and event_emit() to a real file. write(2) is
 * wrapped (-Wl,--wrap=write) only to count the calls made on the log
 * descriptor and to inject EINTR; the bytes still reach the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "errfmt.h"
#include "eventlog.h"

#define LINE_BASE "{\"ts\":1700000000.000042,\"pid\":7,\"event\":\"accept\""

static int log_writes; /* write() calls on the log descriptor */
static int eintr_left; /* fail that many of them with EINTR first */

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (fd >= 0 && fd == event_log_fd()) {
        log_writes++;
        if (eintr_left > 0) {
            eintr_left--;
            errno = EINTR;
            return -1;
        }
    }
    return __real_write(fd, buf, n);
}

static char tmpdir[] = "/tmp/fl-eventlog-test-XXXXXX";
static char log_path[PATH_MAX];

static int group_setup(void **state)
{
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(log_path, sizeof log_path, "%s/events.log", tmpdir);
    return 0;
}

static int group_teardown(void **state)
{
    unlink(log_path);
    return rmdir(tmpdir);
}

static int setup(void **state)
{
    log_writes = 0;
    eintr_left = 0;
    unlink(log_path);
    return 0;
}

static int teardown(void **state)
{
    event_log_close();
    return 0;
}

/* The finished line as a string (event_end() does not NUL-terminate). */
static const char *finish(struct event *ev)
{
    static char line[EVENT_MAX + 1];
    size_t n = event_end(ev);

    assert_true(n <= EVENT_MAX);
    memcpy(line, ev->buf, n);
    line[n] = '\0';
    return line;
}

/* Whether every JSON string in the line is closed: an even number of
 * unescaped quotes. Enough to tell a cut string from a dropped field. */
static int strings_closed(const char *s, size_t n)
{
    int in_string = 0;

    for (size_t i = 0; i < n; i++) {
        if (in_string && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            in_string = !in_string;
    }
    return !in_string;
}

static size_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t r;

    assert_true(fd >= 0);
    r = read(fd, buf, size - 1);
    close(fd);
    assert_true(r >= 0);
    buf[r] = '\0';
    return (size_t)r;
}

/* Formatting */

static void begin_at_int_str_end_give_the_exact_line(void **state)
{
    static const char want[] =
        LINE_BASE ",\"conn\":3,\"peer\":\"127.0.0.1:40000\"}\n";
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "conn", 3);
    event_str(&ev, "peer", "127.0.0.1:40000");
    assert_int_equal(event_end(&ev), sizeof want - 1);
    assert_memory_equal(ev.buf, want, sizeof want - 1);
    assert_false(ev.truncated);
}

static void begin_at_pads_microseconds_to_six_digits(void **state)
{
    struct event ev;

    event_begin_at(&ev, "x", 5, 0, 1);
    assert_string_equal(finish(&ev), "{\"ts\":5.000000,\"pid\":1,\"event\":\"x\"}\n");
}

static void begin_at_prints_largest_microsecond(void **state)
{
    struct event ev;

    event_begin_at(&ev, "x", 5, 999999, 1);
    assert_string_equal(finish(&ev), "{\"ts\":5.999999,\"pid\":1,\"event\":\"x\"}\n");
}

static void begin_stamps_the_current_pid(void **state)
{
    char err[FL_ERRLEN], want[64];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    snprintf(want, sizeof want, ",\"pid\":%ld,", (long)getpid());
    event_begin(&ev, "x");
    assert_non_null(strstr(finish(&ev), want));
}

/* Nobody would read it: nothing is built, no field is added, and emit
 * writes nothing (a fork child with no log pays no page for it). */
static void begin_with_the_log_closed_builds_nothing(void **state)
{
    struct event ev;

    event_log_close();
    event_begin(&ev, "x");
    event_int(&ev, "n", 1);
    event_str(&ev, "s", "y");
    assert_true(ev.off);
    assert_int_equal(ev.len, 0);
    event_emit(&ev);
    assert_int_equal(log_writes, 0);
}

/* The pid is cached per process: a child's events carry the child's pid,
 * not the one its parent had cached before the fork. */
static void a_forked_child_stamps_its_own_pid(void **state)
{
    int fds[2];
    pid_t child;
    char err[FL_ERRLEN], got[EVENT_MAX] = "", want[64];
    struct event ev;
    ssize_t n;
    int status;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin(&ev, "parent"); /* the parent's pid is now cached */
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        event_begin(&ev, "child");
        event_end(&ev);
        _exit(__real_write(fds[1], ev.buf, ev.len) == (ssize_t)ev.len ? 0 : 1);
    }
    close(fds[1]);
    n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(n > 0);
    snprintf(want, sizeof want, ",\"pid\":%ld,", (long)child);
    if (strstr(got, want) == NULL)
        fail_msg("child's event %s lacks %s", got, want);
}

/* A signal sent to a process just forked runs its handler as fork()
 * returns in the child, before fork's child handlers (forget_pid()) run.
 * The raw system call makes a child in exactly that state: no child
 * handler runs at all. There the cache still holds the parent's pid, and
 * only a handler's event, which asks the kernel, names the child. */
static void a_handler_in_a_child_not_yet_past_fork_stamps_the_childs_pid(void **state)
{
    int fds[2];
    pid_t child;
    char err[FL_ERRLEN], got[2 * EVENT_MAX] = "", want_child[64], want_parent[64];
    struct event ev;
    ssize_t n = 0, r;
    int status;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin(&ev, "parent"); /* the parent's pid is now cached */
    assert_int_equal(pipe(fds), 0);
#ifdef SYS_fork
    child = (pid_t)syscall(SYS_fork);
#else
    child = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
    assert_true(child >= 0);
    if (child == 0) {
        int ok = 1;

        event_begin_in_handler(&ev, "in_handler");
        event_end(&ev);
        ok &= __real_write(fds[1], ev.buf, ev.len) == (ssize_t)ev.len;
        event_begin(&ev, "cached");
        event_end(&ev);
        ok &= __real_write(fds[1], ev.buf, ev.len) == (ssize_t)ev.len;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    while ((r = read(fds[0], got + n, sizeof got - 1 - (size_t)n)) > 0)
        n += r;
    close(fds[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(want_child, sizeof want_child, ",\"pid\":%ld,\"event\":\"in_handler\"",
             (long)child);
    snprintf(want_parent, sizeof want_parent, ",\"pid\":%ld,\"event\":\"cached\"",
             (long)getpid());
    if (strstr(got, want_child) == NULL)
        fail_msg("the handler's event in child %ld lacks its pid: %s", (long)child, got);
    /* The window is real: the cache still names the parent there. */
    if (strstr(got, want_parent) == NULL)
        fail_msg("expected the cached stamp to be the parent's (%ld): %s",
                 (long)getpid(), got);
}

static void int_zero_prints_as_0(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "n", 0);
    assert_string_equal(finish(&ev), LINE_BASE ",\"n\":0}\n");
}

static void int_negative_gets_a_minus_sign(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "n", -42);
    assert_string_equal(finish(&ev), LINE_BASE ",\"n\":-42}\n");
}

static void int_llong_min_prints_every_digit(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "n", LLONG_MIN);
    assert_string_equal(finish(&ev), LINE_BASE ",\"n\":-9223372036854775808}\n");
}

static void int_llong_max_prints_every_digit(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "n", LLONG_MAX);
    assert_string_equal(finish(&ev), LINE_BASE ",\"n\":9223372036854775807}\n");
}

/* Escaping */

static void str_escapes_quote_and_backslash(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "s", "a\"b\\c");
    assert_string_equal(finish(&ev), LINE_BASE ",\"s\":\"a\\\"b\\\\c\"}\n");
}

static void str_escapes_control_bytes_as_u00xx(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "s", "\n\t\r\x01\x1f");
    assert_string_equal(finish(&ev),
                        LINE_BASE ",\"s\":\"\\u000a\\u0009\\u000d\\u0001\\u001f\"}\n");
}

static void str_passes_printable_and_high_bytes_through(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "s", " ~/\x7f\xc3\xa9");
    assert_string_equal(finish(&ev), LINE_BASE ",\"s\":\" ~/\x7f\xc3\xa9\"}\n");
}

/* The value of field "s" in a finished line, for the UTF-8 cases. */
static const char *escaped(const char *value)
{
    static char got[EVENT_MAX + 1];
    struct event ev;
    const char *line, *start, *end;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "s", value);
    line = finish(&ev);
    start = strstr(line, ",\"s\":\"") + 6;
    end = strrchr(line, '"');
    memcpy(got, start, (size_t)(end - start));
    got[end - start] = '\0';
    return got;
}

static void str_passes_well_formed_utf8_of_every_length(void **state)
{
    /* U+007A, U+00E9, U+20AC, U+1F600; and the highest code point. */
    assert_string_equal(escaped("z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
                        "z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(escaped("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf");
}

static void str_escapes_a_lone_invalid_byte_as_u00xx(void **state)
{
    assert_string_equal(escaped("a\xff" "b"), "a\\u00ffb");
    assert_string_equal(escaped("\x80"), "\\u0080");
}

static void str_escapes_every_byte_of_a_cut_sequence(void **state)
{
    /* A three-byte sequence missing its last byte, before ASCII and at
     * the end of the string. */
    assert_string_equal(escaped("\xe2\x82x"), "\\u00e2\\u0082x");
    assert_string_equal(escaped("ok\xe2\x82"), "ok\\u00e2\\u0082");
}

static void str_escapes_overlong_forms(void **state)
{
    /* '/' as two bytes, and U+0000 as three: the classic filter bypasses. */
    assert_string_equal(escaped("\xc0\xaf"), "\\u00c0\\u00af");
    assert_string_equal(escaped("\xe0\x80\x80"), "\\u00e0\\u0080\\u0080");
    assert_string_equal(escaped("\xf0\x8f\xbf\xbf"), "\\u00f0\\u008f\\u00bf\\u00bf");
}

static void str_escapes_surrogates_and_code_points_above_the_range(void **state)
{
    assert_string_equal(escaped("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");
    assert_string_equal(escaped("\xf4\x90\x80\x80"), "\\u00f4\\u0090\\u0080\\u0080");
    assert_string_equal(escaped("\xf5"), "\\u00f5");
}

static void str_empty_value_prints_an_empty_string(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "s", "");
    assert_string_equal(finish(&ev), LINE_BASE ",\"s\":\"\"}\n");
}

static void keys_and_event_name_are_escaped_too(void **state)
{
    struct event ev;

    event_begin_at(&ev, "a\"b", 1, 0, 1);
    event_int(&ev, "k\n", 1);
    assert_string_equal(finish(&ev),
                        "{\"ts\":1.000000,\"pid\":1,\"event\":\"a\\\"b\",\"k\\u000a\":1}\n");
}

/* Truncation: a field fits whole or is dropped whole. */

static char big[EVENT_MAX + 100];

static const char *big_value(size_t n, char c)
{
    assert_true(n < sizeof big);
    memset(big, c, n);
    big[n] = '\0';
    return big;
}

static void field_too_long_is_dropped_whole(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "big", big_value(EVENT_MAX, 'x'));
    assert_string_equal(finish(&ev), LINE_BASE "}\n");
}

static void field_too_long_sets_truncated(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "big", big_value(EVENT_MAX, 'x'));
    assert_true(ev.truncated);
}

static void field_too_long_only_once_escaped_is_dropped_whole(void **state)
{
    struct event ev;

    /* 100 bytes that grow to 600 as \u0001 escapes. */
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "ctl", big_value(100, '\x01'));
    assert_string_equal(finish(&ev), LINE_BASE "}\n");
    assert_true(ev.truncated);
}

static void small_field_after_a_dropped_one_still_fits(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "big", big_value(EVENT_MAX, 'x'));
    event_int(&ev, "conn", 3);
    assert_string_equal(finish(&ev), LINE_BASE ",\"conn\":3}\n");
    assert_true(ev.truncated);
}

static void truncated_line_has_its_strings_closed(void **state)
{
    struct event ev;
    size_t n;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "a", big_value(300, 'a'));
    event_str(&ev, "b", big_value(300, 'b'));
    event_str(&ev, "c", "short");
    n = event_end(&ev);
    assert_true(ev.truncated);
    assert_true(strings_closed(ev.buf, n));
    assert_memory_equal(ev.buf + n - 2, "}\n", 2);
}

/* ,"k":"<v>" is 7 + v bytes; the line ends with 2 more. */
static size_t value_filling_line_exactly(const struct event *ev)
{
    return EVENT_MAX - ev->len - 7 - 2;
}

static void field_filling_the_buffer_exactly_is_kept(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "k", big_value(value_filling_line_exactly(&ev), 'v'));
    assert_int_equal(event_end(&ev), EVENT_MAX);
    assert_false(ev.truncated);
    assert_memory_equal(ev.buf + EVENT_MAX - 4, "v\"}\n", 4);
}

static void field_one_byte_over_the_buffer_is_dropped(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "k", big_value(value_filling_line_exactly(&ev) + 1, 'v'));
    assert_string_equal(finish(&ev), LINE_BASE "}\n");
    assert_true(ev.truncated);
}

static void begin_clears_the_truncated_flag(void **state)
{
    struct event ev;

    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "big", big_value(EVENT_MAX, 'x'));
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    assert_false(ev.truncated);
}

/* The log */

static void emit_writes_exactly_the_line_to_the_log_file(void **state)
{
    static const char want[] = LINE_BASE ",\"conn\":3}\n";
    char err[FL_ERRLEN], got[2 * EVENT_MAX];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_int(&ev, "conn", 3);
    event_emit(&ev);
    assert_int_equal(slurp(log_path, got, sizeof got), sizeof want - 1);
    assert_string_equal(got, want);
}

static void emit_makes_one_write_per_line(void **state)
{
    char err[FL_ERRLEN];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_str(&ev, "peer", "127.0.0.1:40000");
    event_emit(&ev);
    assert_int_equal(log_writes, 1);
}

static void emit_appends_lines_in_order(void **state)
{
    char err[FL_ERRLEN], got[2 * EVENT_MAX];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin_at(&ev, "first", 1, 0, 1);
    event_emit(&ev);
    event_begin_at(&ev, "second", 2, 0, 1);
    event_emit(&ev);
    slurp(log_path, got, sizeof got);
    assert_string_equal(got, "{\"ts\":1.000000,\"pid\":1,\"event\":\"first\"}\n"
                             "{\"ts\":2.000000,\"pid\":1,\"event\":\"second\"}\n");
}

static void emit_retries_eintr_and_writes_the_line_once(void **state)
{
    char err[FL_ERRLEN], got[2 * EVENT_MAX];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    eintr_left = 2;
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    event_emit(&ev);
    slurp(log_path, got, sizeof got);
    assert_string_equal(got, LINE_BASE "}\n");
    assert_int_equal(log_writes, 3);
}

static void emit_preserves_errno(void **state)
{
    char err[FL_ERRLEN];
    struct event ev;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    errno = ECONNRESET;
    event_emit(&ev);
    assert_int_equal(errno, ECONNRESET);
}

static void emit_preserves_errno_when_the_write_fails(void **state)
{
    char err[FL_ERRLEN];
    struct event ev;

    /* Writes to /dev/full fail with ENOSPC. */
    assert_int_equal(event_log_open("/dev/full", err, sizeof err), 0);
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    errno = ECONNRESET;
    event_emit(&ev);
    assert_int_equal(errno, ECONNRESET);
    assert_int_equal(log_writes, 1);
}

static void emit_without_a_log_writes_nothing_and_preserves_errno(void **state)
{
    struct event ev;

    assert_int_equal(event_log_fd(), -1);
    event_begin_at(&ev, "accept", 1700000000, 42, 7);
    errno = EPIPE;
    event_emit(&ev);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(log_writes, 0);
}

static void log_open_dash_uses_a_copy_of_stdout(void **state)
{
    char err[FL_ERRLEN];
    struct stat a, b;

    assert_int_equal(event_log_open("-", err, sizeof err), 0);
    assert_true(event_log_fd() > STDERR_FILENO);
    assert_int_equal(fstat(event_log_fd(), &a), 0);
    assert_int_equal(fstat(STDOUT_FILENO, &b), 0);
    assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

static void log_open_on_unwritable_path_fails_naming_open_and_path(void **state)
{
    char path[PATH_MAX], want[PATH_MAX + 64], err[FL_ERRLEN];

    snprintf(path, sizeof path, "%s/no-such-dir/events.log", tmpdir);
    snprintf(want, sizeof want, "open(%s): %s", path, strerror(ENOENT));
    memset(err, 0, sizeof err);
    assert_int_equal(event_log_open(path, err, sizeof err), -1);
    assert_string_equal(err, want);
}

static void log_open_on_a_directory_fails_naming_open_and_path(void **state)
{
    char want[PATH_MAX + 64], err[FL_ERRLEN];

    /* EISDIR holds even for root, for whom permission bits do not. */
    snprintf(want, sizeof want, "open(%s): %s", tmpdir, strerror(EISDIR));
    assert_int_equal(event_log_open(tmpdir, err, sizeof err), -1);
    assert_string_equal(err, want);
}

static void log_open_refuses_a_symbolic_link_naming_it(void **state)
{
    char link_path[PATH_MAX], target[PATH_MAX], want[PATH_MAX + 128];
    char err[FL_ERRLEN];
    struct stat st;

    snprintf(link_path, sizeof link_path, "%s/link.log", tmpdir);
    snprintf(target, sizeof target, "%s/target.log", tmpdir);
    assert_int_equal(symlink(target, link_path), 0);
    snprintf(want, sizeof want, "open(%s, O_NOFOLLOW): %s: a symbolic link is not followed",
             link_path, strerror(ELOOP));
    assert_int_equal(event_log_open(link_path, err, sizeof err), -1);
    unlink(link_path);
    assert_string_equal(err, want);
    /* Nothing was created through the link either. */
    assert_int_equal(stat(target, &st), -1);
}

static void log_open_failure_keeps_the_previous_log(void **state)
{
    char err[FL_ERRLEN];
    int fd;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    fd = event_log_fd();
    assert_int_equal(event_log_open(tmpdir, err, sizeof err), -1);
    assert_int_equal(event_log_fd(), fd);
}

static void log_open_again_closes_the_previous_log(void **state)
{
    char err[FL_ERRLEN];
    int fd;

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    fd = event_log_fd();
    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    assert_int_not_equal(event_log_fd(), fd);
    errno = 0;
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
}

static void log_close_stops_logging(void **state)
{
    char err[FL_ERRLEN];

    assert_int_equal(event_log_open(log_path, err, sizeof err), 0);
    event_log_close();
    assert_int_equal(event_log_fd(), -1);
}

/* Regression: an event name longer than the buffer used to be cut inside
 * its string, leaving the line invalid JSON; now it is dropped whole. */
static void long_event_name_keeps_the_line_valid_json(void **state)
{
    struct event ev;
    size_t n;

    event_begin_at(&ev, big_value(EVENT_MAX, 'n'), 1700000000, 42, 7);
    n = event_end(&ev);
    assert_true(ev.truncated);
    assert_true(strings_closed(ev.buf, n));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(long_event_name_keeps_the_line_valid_json),
        T(begin_at_int_str_end_give_the_exact_line),
        T(begin_at_pads_microseconds_to_six_digits),
        T(begin_at_prints_largest_microsecond),
        T(begin_stamps_the_current_pid),
        T(begin_with_the_log_closed_builds_nothing),
        T(a_forked_child_stamps_its_own_pid),
        T(a_handler_in_a_child_not_yet_past_fork_stamps_the_childs_pid),
        T(int_zero_prints_as_0),
        T(int_negative_gets_a_minus_sign),
        T(int_llong_min_prints_every_digit),
        T(int_llong_max_prints_every_digit),
        T(str_escapes_quote_and_backslash),
        T(str_escapes_control_bytes_as_u00xx),
        T(str_passes_printable_and_high_bytes_through),
        T(str_passes_well_formed_utf8_of_every_length),
        T(str_escapes_a_lone_invalid_byte_as_u00xx),
        T(str_escapes_every_byte_of_a_cut_sequence),
        T(str_escapes_overlong_forms),
        T(str_escapes_surrogates_and_code_points_above_the_range),
        T(str_empty_value_prints_an_empty_string),
        T(keys_and_event_name_are_escaped_too),
        T(field_too_long_is_dropped_whole),
        T(field_too_long_sets_truncated),
        T(field_too_long_only_once_escaped_is_dropped_whole),
        T(small_field_after_a_dropped_one_still_fits),
        T(truncated_line_has_its_strings_closed),
        T(field_filling_the_buffer_exactly_is_kept),
        T(field_one_byte_over_the_buffer_is_dropped),
        T(begin_clears_the_truncated_flag),
        T(emit_writes_exactly_the_line_to_the_log_file),
        T(emit_makes_one_write_per_line),
        T(emit_appends_lines_in_order),
        T(emit_retries_eintr_and_writes_the_line_once),
        T(emit_preserves_errno),
        T(emit_preserves_errno_when_the_write_fails),
        T(emit_without_a_log_writes_nothing_and_preserves_errno),
        T(log_open_dash_uses_a_copy_of_stdout),
        T(log_open_on_unwritable_path_fails_naming_open_and_path),
        T(log_open_on_a_directory_fails_naming_open_and_path),
        T(log_open_refuses_a_symbolic_link_naming_it),
        T(log_open_failure_keeps_the_previous_log),
        T(log_open_again_closes_the_previous_log),
        T(log_close_stops_logging),
    };

    return cmocka_run_group_tests_name("eventlog", tests, group_setup,
                                       group_teardown);
}
