/*
 * writen, readn and read_retry against scripted write(2) and read(2),
 * interposed with -Wl,--wrap=write,--wrap=read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fake_read.h"
#include "io.h"

/* One result of write(): accept ret bytes (ret <= count), or -1 with err. */
struct write_step {
    ssize_t ret;
    int err;
};

#define WRITE_TAKE(n) { (n), 0 }
#define WRITE_FAIL(e) { -1, (e) }
#define WRITE_EINTR   WRITE_FAIL(EINTR)

#define WRITES_MAX 16

static const struct write_step *wscript;
static size_t wscript_len;
static size_t wcalls;
static size_t wasked[WRITES_MAX];
static char written[256]; /* the bytes write() accepted, in order */
static size_t written_len;

static void fake_write_script(const struct write_step *steps, size_t n)
{
    wscript = steps;
    wscript_len = n;
    wcalls = 0;
    written_len = 0;
}
#define FAKE_WRITES(steps) fake_write_script((steps), ARRAY_LEN(steps))

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    const struct write_step *step;

    if (fd != FAKE_FD)
        return __real_write(fd, buf, n);
    if (wcalls >= wscript_len)
        fail_msg("write() call %zu is beyond the script of %zu steps",
                 wcalls + 1, wscript_len);
    if (wcalls < WRITES_MAX)
        wasked[wcalls] = n;
    step = &wscript[wcalls++];
    if (step->ret < 0) {
        errno = step->err;
        return -1;
    }
    if ((size_t)step->ret > n || written_len + (size_t)step->ret > sizeof written)
        fail_msg("script step %zu accepts %zd bytes; write() offered %zu",
                 wcalls, step->ret, n);
    memcpy(written + written_len, buf, (size_t)step->ret);
    written_len += (size_t)step->ret;
    return step->ret;
}

static int setup(void **state)
{
    fake_read_script(NULL, 0);
    fake_write_script(NULL, 0);
    return 0;
}

static int teardown(void **state)
{
    fake_read_verify();
    if (wcalls != wscript_len)
        fail_msg("write() was called %zu times; the script has %zu steps",
                 wcalls, wscript_len);
    return 0;
}

static const char msg[] = "hello, world"; /* 12 bytes */

/* writen */

static void writen_completes_across_partial_writes_in_order(void **state)
{
    static const struct write_step writes[] = {
        WRITE_TAKE(5), WRITE_TAKE(1), WRITE_TAKE(4), WRITE_TAKE(2),
    };

    FAKE_WRITES(writes);
    assert_int_equal(writen(FAKE_FD, msg, 12), 12);
    assert_int_equal(written_len, 12);
    assert_memory_equal(written, msg, 12);
}

static void writen_offers_only_the_rest_after_a_partial_write(void **state)
{
    static const struct write_step writes[] = {
        WRITE_TAKE(5), WRITE_TAKE(4), WRITE_TAKE(3),
    };

    FAKE_WRITES(writes);
    writen(FAKE_FD, msg, 12);
    assert_int_equal(wasked[0], 12);
    assert_int_equal(wasked[1], 7);
    assert_int_equal(wasked[2], 3);
}

static void writen_retries_eintr_without_losing_bytes(void **state)
{
    static const struct write_step writes[] = {
        WRITE_TAKE(4), WRITE_EINTR, WRITE_EINTR, WRITE_TAKE(8),
    };

    FAKE_WRITES(writes);
    assert_int_equal(writen(FAKE_FD, msg, 12), 12);
    assert_int_equal(written_len, 12);
    assert_memory_equal(written, msg, 12);
}

static void writen_returns_epipe_after_partial_write(void **state)
{
    static const struct write_step writes[] = {
        WRITE_TAKE(2), WRITE_FAIL(EPIPE),
    };

    FAKE_WRITES(writes);
    errno = 0;
    assert_int_equal(writen(FAKE_FD, msg, 12), -1);
    assert_int_equal(errno, EPIPE);
}

static void writen_returns_first_write_error(void **state)
{
    static const struct write_step writes[] = { WRITE_FAIL(ECONNRESET) };

    FAKE_WRITES(writes);
    errno = 0;
    assert_int_equal(writen(FAKE_FD, msg, 12), -1);
    assert_int_equal(errno, ECONNRESET);
}

static void writen_treats_zero_write_as_eio_instead_of_spinning(void **state)
{
    static const struct write_step writes[] = { WRITE_TAKE(3), WRITE_TAKE(0) };

    FAKE_WRITES(writes);
    errno = 0;
    assert_int_equal(writen(FAKE_FD, msg, 12), -1);
    assert_int_equal(errno, EIO);
}

static void writen_of_zero_bytes_returns_zero_without_writing(void **state)
{
    assert_int_equal(writen(FAKE_FD, msg, 0), 0);
}

/* readn */

static void readn_assembles_short_reads(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_DATA("cde"), READ_DATA("f"),
    };
    char buf[6];

    FAKE_READS(reads);
    assert_int_equal(readn(FAKE_FD, buf, sizeof buf), 6);
    assert_memory_equal(buf, "abcdef", 6);
}

static void readn_asks_only_for_the_rest(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_DATA("cde"), READ_DATA("f"),
    };
    char buf[6];

    FAKE_READS(reads);
    readn(FAKE_FD, buf, sizeof buf);
    assert_int_equal(fake_read_asked(0), 6);
    assert_int_equal(fake_read_asked(1), 4);
    assert_int_equal(fake_read_asked(2), 1);
}

static void readn_returns_short_count_at_eof(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_DATA("c"), READ_EOF,
    };
    char buf[10];

    FAKE_READS(reads);
    assert_int_equal(readn(FAKE_FD, buf, sizeof buf), 3);
    assert_memory_equal(buf, "abc", 3);
}

static void readn_returns_zero_at_immediate_eof(void **state)
{
    static const struct read_step reads[] = { READ_EOF };
    char buf[10];

    FAKE_READS(reads);
    assert_int_equal(readn(FAKE_FD, buf, sizeof buf), 0);
}

static void readn_retries_eintr_without_losing_bytes(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_EINTR, READ_DATA("cd"),
    };
    char buf[4];

    FAKE_READS(reads);
    assert_int_equal(readn(FAKE_FD, buf, sizeof buf), 4);
    assert_memory_equal(buf, "abcd", 4);
}

static void readn_error_returns_minus_one_and_keeps_errno(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_FAIL(ECONNRESET),
    };
    char buf[4];

    FAKE_READS(reads);
    errno = 0;
    assert_int_equal(readn(FAKE_FD, buf, sizeof buf), -1);
    assert_int_equal(errno, ECONNRESET);
}

/* read_retry */

static void read_retry_retries_eintr(void **state)
{
    static const struct read_step reads[] = {
        READ_EINTR, READ_EINTR, READ_DATA("x"),
    };
    char buf[8];

    FAKE_READS(reads);
    assert_int_equal(read_retry(FAKE_FD, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'x');
}

static void read_retry_returns_a_short_read_as_is(void **state)
{
    static const struct read_step reads[] = { READ_DATA("ab") };
    char buf[8];

    FAKE_READS(reads);
    assert_int_equal(read_retry(FAKE_FD, buf, sizeof buf), 2);
}

static void read_retry_returns_other_errors_at_once(void **state)
{
    static const struct read_step reads[] = { READ_FAIL(EAGAIN) };
    char buf[8];

    FAKE_READS(reads);
    errno = 0;
    assert_int_equal(read_retry(FAKE_FD, buf, sizeof buf), -1);
    assert_int_equal(errno, EAGAIN);
}

static void read_retry_returns_zero_at_eof(void **state)
{
    static const struct read_step reads[] = { READ_EINTR, READ_EOF };
    char buf[8];

    FAKE_READS(reads);
    assert_int_equal(read_retry(FAKE_FD, buf, sizeof buf), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(writen_completes_across_partial_writes_in_order),
        T(writen_offers_only_the_rest_after_a_partial_write),
        T(writen_retries_eintr_without_losing_bytes),
        T(writen_returns_epipe_after_partial_write),
        T(writen_returns_first_write_error),
        T(writen_treats_zero_write_as_eio_instead_of_spinning),
        T(writen_of_zero_bytes_returns_zero_without_writing),
        T(readn_assembles_short_reads),
        T(readn_asks_only_for_the_rest),
        T(readn_returns_short_count_at_eof),
        T(readn_returns_zero_at_immediate_eof),
        T(readn_retries_eintr_without_losing_bytes),
        T(readn_error_returns_minus_one_and_keeps_errno),
        T(read_retry_retries_eintr),
        T(read_retry_returns_a_short_read_as_is),
        T(read_retry_returns_other_errors_at_once),
        T(read_retry_returns_zero_at_eof),
    };

    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
