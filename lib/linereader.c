#include "linereader.h"

#include <errno.h>
#include <string.h>

#include "io.h"

void line_reader_init(struct line_reader *lr, int fd)
{
    lr->fd = fd;
    lr->pending_errno = 0;
    lr->start = 0;
    lr->end = 0;
}

size_t line_reader_buffered(const struct line_reader *lr)
{
    return lr->end - lr->start;
}

/* Refill an empty buffer with one read. Returns the read's result. */
static ssize_t fill(struct line_reader *lr)
{
    ssize_t r = read_retry(lr->fd, lr->buf, sizeof lr->buf);
    if (r > 0) {
        lr->start = 0;
        lr->end = (size_t)r;
    }
    return r;
}

ssize_t line_reader_readline(struct line_reader *lr, char *out, size_t outsize)
{
    size_t stored = 0;

    if (outsize == 0)
        return 0;
    if (lr->pending_errno) {
        errno = lr->pending_errno;
        lr->pending_errno = 0;
        return -1;
    }
    while (stored < outsize - 1) {
        if (lr->start == lr->end) {
            ssize_t r = fill(lr);
            if (r < 0) {
                if (stored == 0)
                    return -1;
                lr->pending_errno = errno;
                break;
            }
            if (r == 0)
                break;
        }
        size_t avail = lr->end - lr->start;
        size_t room = outsize - 1 - stored;
        size_t take = avail < room ? avail : room;
        const char *from = lr->buf + lr->start;
        const char *nl = memchr(from, '\n', take);
        if (nl)
            take = (size_t)(nl - from) + 1;
        memcpy(out + stored, from, take);
        lr->start += take;
        stored += take;
        if (nl)
            break;
    }
    out[stored] = '\0';
    return (ssize_t)stored;
}

ssize_t line_reader_read(struct line_reader *lr, void *out, size_t n)
{
    if (lr->pending_errno) {
        errno = lr->pending_errno;
        lr->pending_errno = 0;
        return -1;
    }
    if (lr->start == lr->end) {
        ssize_t r = fill(lr);
        if (r <= 0)
            return r;
    }
    size_t avail = lr->end - lr->start;
    size_t take = avail < n ? avail : n;
    memcpy(out, lr->buf + lr->start, take);
    lr->start += take;
    return (ssize_t)take;
}
