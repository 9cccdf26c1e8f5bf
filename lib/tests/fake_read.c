#include "fake_read.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define ASKED_MAX 16

static const struct read_step *script;
static size_t script_len;
static size_t calls;
static size_t asked[ASKED_MAX];

void fake_read_script(const struct read_step *steps, size_t n)
{
    script = steps;
    script_len = n;
    calls = 0;
}

size_t fake_read_calls(void)
{
    return calls;
}

size_t fake_read_asked(size_t i)
{
    assert_true(i < calls && i < ASKED_MAX);
    return asked[i];
}

void fake_read_verify(void)
{
    if (calls != script_len)
        fail_msg("read() was called %zu times; the script has %zu steps",
                 calls, script_len);
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    const struct read_step *step;

    if (fd != FAKE_FD)
        return __real_read(fd, buf, n);
    if (calls >= script_len)
        fail_msg("read() call %zu is beyond the script of %zu steps",
                 calls + 1, script_len);
    if (calls < ASKED_MAX)
        asked[calls] = n;
    step = &script[calls++];
    if (step->ret < 0) {
        errno = step->err;
        return -1;
    }
    if ((size_t)step->ret > n)
        fail_msg("script step %zu hands over %zd bytes; read() asked for %zu",
                 calls, step->ret, n);
    if (step->ret > 0)
        memcpy(buf, step->data, (size_t)step->ret);
    return step->ret;
}
