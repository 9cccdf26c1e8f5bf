/* Byte I/O that finishes what it starts (UNP's writen, CS:APP's rio). */
#ifndef FL_IO_H
#define FL_IO_H

#include <sys/types.h>

/*
 * Write all n bytes, retrying partial writes and EINTR.
 * Returns n, or -1 with errno set (EPIPE, ECONNRESET, ...) after a failure;
 * bytes written before the failure are lost to the caller, as in UNP.
 */
ssize_t writen(int fd, const void *buf, size_t n);

/* read(2) that retries EINTR: returns what read returns otherwise. */
ssize_t read_retry(int fd, void *buf, size_t n);

/* Read exactly n bytes unless EOF comes first: returns the count read
 * (short only at EOF), or -1 with errno set. */
ssize_t readn(int fd, void *buf, size_t n);

#endif
