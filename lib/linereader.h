/*
 * A buffered line reader over a descriptor (CS:APP's rio_readlineb). It
 * owns its buffer, so a caller multiplexing with select() can ask whether
 * a line is already buffered before blocking (UNP 6.5's stdio pitfall).
 */
#ifndef FL_LINEREADER_H
#define FL_LINEREADER_H

#include <stddef.h>
#include <sys/types.h>

#define LINE_READER_BUFSIZE 8192

struct line_reader {
    int fd;
    int pending_errno; /* an error met after a partial line, for next call */
    size_t start; /* first unread byte in buf */
    size_t end;   /* one past the last valid byte */
    char buf[LINE_READER_BUFSIZE];
};

void line_reader_init(struct line_reader *lr, int fd);

/*
 * Copy the next line, newline included, into out and NUL-terminate it.
 * A line longer than outsize - 1 comes back in pieces, as with fgets().
 * The last line before EOF may lack its newline.
 * Returns the number of bytes stored (> 0), 0 at EOF with nothing buffered
 * (or when outsize is 1: there is no room for data), or -1 with errno set.
 * EINTR is retried. An error met after part of a line was copied returns
 * that part first; the error comes back on the next call, so a reset is
 * never mistaken for end of file.
 */
ssize_t line_reader_readline(struct line_reader *lr, char *out, size_t outsize);

/* Copy up to n buffered-or-fresh bytes, line boundaries ignored.
 * Returns the count, 0 at EOF, -1 with errno set. */
ssize_t line_reader_read(struct line_reader *lr, void *out, size_t n);

/* Bytes already buffered, which select() on lr->fd would not see. */
size_t line_reader_buffered(const struct line_reader *lr);

#endif
