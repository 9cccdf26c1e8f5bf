/*
 * A scripted read(2) for unit tests, interposed at link time with
 * -Wl,--wrap=read. Because libfl is a static library, the wrap also catches
 * the library's own calls. Only FAKE_FD follows the script; any other
 * descriptor gets the real read(2).
 */
#ifndef FL_TEST_FAKE_READ_H
#define FL_TEST_FAKE_READ_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#define FAKE_FD 1000

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One result of read(): ret bytes of data, 0 for EOF, or -1 with err. */
struct read_step {
    ssize_t ret;
    int err;
    const char *data;
};

#define READ_DATA(s) { (ssize_t)(sizeof(s) - 1), 0, (s) }
#define READ_FAIL(e) { -1, (e), NULL }
#define READ_EINTR   READ_FAIL(EINTR)
#define READ_EOF     { 0, 0, NULL }

/* Replace the script; the steps must outlive the test. */
void fake_read_script(const struct read_step *steps, size_t n);
#define FAKE_READS(steps) fake_read_script((steps), ARRAY_LEN(steps))

/* read() calls made on FAKE_FD since the script was set. */
size_t fake_read_calls(void);
/* The count argument of the i-th call (0-based, first 16 calls). */
size_t fake_read_asked(size_t i);
/* Fail the test unless every step was consumed; for teardown. */
void fake_read_verify(void);

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __wrap_read(int fd, void *buf, size_t n);

#endif
