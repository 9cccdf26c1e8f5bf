/*
 * The loops that talk on the connection: UNP's str_cli blocking on stdin
 * (5.3), str_cli with select() and shutdown() (6.7, 6.13), and the same two
 * styles for generated data (--bytes). The error policy is echoc.c's: every
 * failure is reported here, once, and comes back as an exit status.
 *
 * The fault hooks sit around every read and write on the connection we
 * talk on (before_read, after_read, before_write, after_write) and at the
 * half-close (before_close). A read, for a hook, is one call that brings
 * data in: a line's echo in the blocking line loop, a readn() round in
 * the lockstep one, a read(2) elsewhere. What each fault does to the
 * loops: rst and close end the session at once (ECHOC_FAULT); shutdown_wr
 * stops the sending, and the loop reads what the server still sends up
 * to its EOF; short=N writes N bytes per write(2); drop discards what was
 * just read (not printed, not checked, but counted as echoed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "die.h"
#include "echoc.h"
#include "io.h"
#include "linereader.h"

/* Large enough for all a line_reader can hold, plus the NUL. */
#define LINE_SIZE (LINE_READER_BUFSIZE + 1)
/* Lockstep rounds stay well inside the socket buffers of both ends, so
 * the blocking writen() cannot wait on a server that waits on us. */
#define LOCKSTEP_CHUNK 16384
#define SELECT_CHUNK 65536
#define PENDING_MIN 65536

#define PREMATURE_MESSAGE "server terminated prematurely"

/* Loop helpers return an exit status to stop, or one of these. */
enum {
    KEEP_GOING = -1,
    NOT_SENT = -2, /* a shutdown_wr fault at before_write: nothing went out */
    DROPPED = -3,  /* a drop fault at after_read: discard what came in */
};

/* --- shared pieces ---------------------------------------------------- */

static int write_stdout(const void *buf, size_t n)
{
    if (writen(STDOUT_FILENO, buf, n) < 0)
        return report(ECHOC_ERROR, "write(stdout): %s", strerror(errno));
    return ECHOC_OK;
}

static int shut_write(int sockfd)
{
    if (shutdown(sockfd, SHUT_WR) < 0)
        return report_socket_error("shutdown", errno);
    return ECHOC_OK;
}

/* --- fault hooks on the connection ------------------------------------ */

/*
 * The hook steps take `hooked`: false only where str_cli_block() inlines
 * them into its copy for when no fault is armed, which so has no hook code
 * at all (bench/hook_cost.py); the other loops pass true and pay one
 * FAULT_ARMED() branch per hook while idle.
 */
#define STEP static inline __attribute__((always_inline))
#define HOOK_IF(hooked, c, point, arg) ((hooked) ? conn_hook((c), (point), (arg)) : HOOK_GO_ON)

/*
 * The before_write hook. *limit is the most one write(2) may carry: left
 * alone, or cut to N by short=N. Returns KEEP_GOING, NOT_SENT (shutdown_wr:
 * c->shut is set, send nothing), or ECHOC_FAULT (rst, close).
 */
STEP int before_write(struct client_conn *c, size_t *limit, const bool hooked)
{
    long long arg = 0;

    switch (HOOK_IF(hooked, c, FP_BEFORE_WRITE, &arg)) {
    case HOOK_ENDED:
        return ECHOC_FAULT;
    case HOOK_SHORT:
        if ((unsigned long long)arg < *limit)
            *limit = (size_t)arg;
        break;
    default:
        break;
    }
    return c->shut ? NOT_SENT : KEEP_GOING;
}

/* The after_write hook: KEEP_GOING (c->shut may be set) or ECHOC_FAULT. */
STEP int after_write(struct client_conn *c, const bool hooked)
{
    long long arg = 0;

    return HOOK_IF(hooked, c, FP_AFTER_WRITE, &arg) == HOOK_ENDED ? ECHOC_FAULT : KEEP_GOING;
}

/* The before_read hook: KEEP_GOING (c->shut may be set) or ECHOC_FAULT. */
STEP int before_read(struct client_conn *c, const bool hooked)
{
    long long arg = 0;

    return HOOK_IF(hooked, c, FP_BEFORE_READ, &arg) == HOOK_ENDED ? ECHOC_FAULT : KEEP_GOING;
}

/* n > 0 bytes came in: count them, then the after_read hook. Returns
 * KEEP_GOING, DROPPED or ECHOC_FAULT. */
STEP int after_read(struct client_conn *c, size_t n, const bool hooked)
{
    long long arg = 0;

    c->fault.bytes += (long long)n;
    switch (HOOK_IF(hooked, c, FP_AFTER_READ, &arg)) {
    case HOOK_ENDED:
        return ECHOC_FAULT;
    case HOOK_DROP:
        return DROPPED;
    default:
        return KEEP_GOING;
    }
}

/*
 * Write all n bytes between the before_write and after_write hooks, in
 * pieces of at most N bytes after short=N. Returns KEEP_GOING (c->shut may
 * be set: the bytes went out first), NOT_SENT, or an exit status.
 */
STEP int conn_write(struct client_conn *c, const void *buf, size_t n, const bool hooked)
{
    const char *p = buf;
    size_t limit = n, done = 0;
    int rc;

    if ((rc = before_write(c, &limit, hooked)) != KEEP_GOING)
        return rc;
    while (done < n) { /* one round unless short=N */
        size_t piece = n - done < limit ? n - done : limit;
        if (writen(c->fd, p + done, piece) < 0)
            return report_socket_error("write", errno);
        done += piece;
    }
    return after_write(c, hooked);
}

/*
 * --half-close at the end of input: the connection starts closing here, so
 * before_close runs first. rst and close end the session; leak skips the
 * shutdown (the server never gets our FIN, and we wait for its EOF in
 * vain). Returns ECHOC_OK or an exit status.
 */
static int half_close(struct client_conn *c)
{
    long long arg = 0;
    enum hook_result r;

    c->close_hooked = true;
    r = conn_hook(c, FP_BEFORE_CLOSE, &arg);
    if (r == HOOK_ENDED)
        return ECHOC_FAULT;
    if (r == HOOK_LEAK || c->shut)
        return ECHOC_OK;
    return shut_write(c->fd);
}

/*
 * Compare an echo with what was sent at the same stream offset. sent_len
 * may be shorter than got_len: the bytes beyond it were never sent.
 * Returns ECHOC_OK, or ECHOC_MISMATCH after naming the first difference.
 */
static int check_echo(const void *sent, size_t sent_len, const void *got,
                      size_t got_len, unsigned long long offset)
{
    const unsigned char *s = sent, *g = got;

    if (sent_len >= got_len && memcmp(s, g, got_len) == 0)
        return ECHOC_OK;
    for (size_t i = 0; i < got_len; i++) {
        if (i >= sent_len)
            return report(ECHOC_MISMATCH,
                          "echo mismatch at byte %llu: sent nothing, got 0x%02x",
                          offset + i, g[i]);
        if (s[i] != g[i])
            return report(ECHOC_MISMATCH,
                          "echo mismatch at byte %llu: sent 0x%02x, got 0x%02x",
                          offset + i, s[i], g[i]);
    }
    return ECHOC_OK;
}

/*
 * After our shutdown(SHUT_WR) the server owes us only its EOF; whatever
 * still arrives is passed on (to stdout in line mode) and, with --verify,
 * is an echo of nothing. Ends at the server's EOF.
 */
static int read_until_eof(struct client_conn *c, struct line_reader *from_server,
                          bool to_stdout, bool verify, unsigned long long offset)
{
    char buf[SELECT_CHUNK];
    int rc;

    for (;;) {
        ssize_t n;

        if ((rc = before_read(c, true)) != KEEP_GOING)
            return rc;
        n = line_reader_read(from_server, buf, sizeof buf);
        if (n < 0)
            return report_socket_error("read", errno);
        if (n == 0)
            return ECHOC_OK;
        if ((rc = after_read(c, (size_t)n, true)) == DROPPED) {
            offset += (unsigned long long)n;
            continue;
        }
        if (rc != KEEP_GOING)
            return rc;
        if (to_stdout && (rc = write_stdout(buf, (size_t)n)) != ECHOC_OK)
            return rc;
        if (verify && (rc = check_echo(NULL, 0, buf, (size_t)n, offset)) != ECHOC_OK)
            return rc;
        offset += (unsigned long long)n;
    }
}

/* --- block: UNP 5.3 ---------------------------------------------------- */

/*
 * Read back the echo of one line of len bytes: up to its newline, and never
 * more than len bytes, so a last line without a newline cannot leave us
 * waiting for one. A readline() cut short by EOF or an error is called
 * again, which then reports the EOF or the error itself.
 */
STEP int read_echo_line(struct line_reader *from_server, char *echo,
                    size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        ssize_t r = line_reader_readline(from_server, echo + *got, len - *got + 1);
        if (r < 0)
            return report_socket_error("read", errno);
        if (r == 0)
            return report(ECHOC_PREMATURE, PREMATURE_MESSAGE);
        *got += (size_t)r;
        if (echo[*got - 1] == '\n')
            break;
    }
    return ECHOC_OK;
}

/*
 * The faithful UNP client: while it sits in readline() on stdin it cannot
 * see the server's FIN. It learns of it only after the next line is
 * written, when the read of its echo returns 0.
 */
STEP int block_session(struct client_conn *c, const struct echoc_options *opt,
                      const bool hooked)
{
    struct line_reader from_stdin, from_server;
    char line[LINE_SIZE], echo[LINE_SIZE];
    unsigned long long offset = 0;
    size_t got;
    int rc;

    line_reader_init(&from_stdin, STDIN_FILENO);
    line_reader_init(&from_server, c->fd);
    while (!c->shut) { /* ends at stdin's EOF, or when a fault shut us */
        ssize_t n = line_reader_readline(&from_stdin, line, sizeof line);
        if (n < 0)
            return report(ECHOC_ERROR, "read(stdin): %s", strerror(errno));
        if (n == 0)
            break;
        if ((rc = conn_write(c, line, (size_t)n, hooked)) == NOT_SENT)
            break;
        if (rc != KEEP_GOING)
            return rc;
        if ((rc = before_read(c, hooked)) != KEEP_GOING)
            return rc;
        if ((rc = read_echo_line(&from_server, echo, (size_t)n, &got)) != ECHOC_OK)
            return rc;
        if ((rc = after_read(c, got, hooked)) != KEEP_GOING && rc != DROPPED)
            return rc;
        /* Printed before it is checked, so a bad echo can be seen. */
        if (rc != DROPPED && (rc = write_stdout(echo, got)) != ECHOC_OK)
            return rc;
        if (rc != DROPPED && opt->verify &&
            (rc = check_echo(line, (size_t)n, echo, got, offset)) != ECHOC_OK)
            return rc;
        offset += (unsigned long long)n;
    }
    if (c->shut)
        return read_until_eof(c, &from_server, true, opt->verify, offset);
    if (!opt->half_close)
        return ECHOC_OK;
    if ((rc = half_close(c)) != ECHOC_OK)
        return rc;
    return read_until_eof(c, &from_server, true, opt->verify, offset);
}

/* The faults are set before the session (hooks_start()) and never change:
 * one look decides which copy of the session runs. */
int str_cli_block(struct client_conn *c, const struct echoc_options *opt)
{
    if (FAULT_ARMED())
        return block_session(c, opt, true);
    return block_session(c, opt, false);
}

/* --- select: UNP 6.7 / 6.13 -------------------------------------------- */

/*
 * Bytes sent and not yet echoed, kept for --verify. The blocking writen()
 * stops us once the socket buffers of both ends are full, so this holds at
 * most what is in flight.
 */
struct pending {
    unsigned char *data;
    size_t start, len, cap;
};

static int pending_append(struct pending *p, const void *bytes, size_t n)
{
    if (p->start + p->len + n > p->cap) {
        if (p->len > 0)
            memmove(p->data, p->data + p->start, p->len);
        p->start = 0;
    }
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : PENDING_MIN;
        unsigned char *grown;
        while (cap < p->len + n)
            cap *= 2;
        grown = realloc(p->data, cap);
        if (grown == NULL)
            return -1;
        p->data = grown;
        p->cap = cap;
    }
    memcpy(p->data + p->start + p->len, bytes, n);
    p->len += n;
    return 0;
}

static void pending_consume(struct pending *p, size_t n)
{
    if (n > p->len)
        n = p->len;
    p->start += n;
    p->len -= n;
}

struct select_session {
    struct client_conn *c;
    const struct echoc_options *opt;
    struct line_reader from_stdin;
    bool stdin_eof;
    unsigned long long sent, echoed;
    struct pending unechoed; /* only with --verify */
};

static bool all_echoed(const struct select_session *s)
{
    return s->echoed >= s->sent;
}

/* After our shutdown (--half-close, or a shutdown_wr fault) the end is the
 * server's EOF, not the last echo. */
static bool waits_for_eof(const struct select_session *s)
{
    return s->opt->half_close || s->c->shut;
}

/* A shutdown_wr fault stops the input as its EOF would. */
static int send_line(struct select_session *s, const char *line, size_t n)
{
    int rc = conn_write(s->c, line, n, true);

    if (rc == NOT_SENT) {
        s->stdin_eof = true;
        return KEEP_GOING;
    }
    if (rc != KEEP_GOING)
        return rc;
    if (s->opt->verify && pending_append(&s->unechoed, line, n) < 0)
        return report(ECHOC_ERROR, "realloc: %s", strerror(errno));
    s->sent += n;
    if (s->c->shut)
        s->stdin_eof = true;
    return KEEP_GOING;
}

/*
 * UNP 6.5's pitfall: lines already in the reader's buffer are invisible to
 * select(), which would wait on stdin while they sit there. Send them all
 * first. Asking for no more than is buffered means readline() never
 * reads, so a trailing piece of a line goes out now and its rest later.
 */
static int forward_buffered_lines(struct select_session *s)
{
    char line[LINE_SIZE];
    size_t avail;
    int rc;

    while (!s->stdin_eof && (avail = line_reader_buffered(&s->from_stdin)) > 0) {
        ssize_t n = line_reader_readline(&s->from_stdin, line, avail + 1);
        if (n <= 0) /* cannot happen with bytes buffered; never spin on it */
            break;
        if ((rc = send_line(s, line, (size_t)n)) != KEEP_GOING)
            return rc;
    }
    return KEEP_GOING;
}

/*
 * select() said stdin is readable, so the first read cannot block. If it
 * brings part of a line only, readline() waits for the rest, as fgets()
 * does in UNP 6.7; echoc's callers write whole lines.
 */
static int on_stdin_readable(struct select_session *s)
{
    char line[LINE_SIZE];
    ssize_t n = line_reader_readline(&s->from_stdin, line, sizeof line);

    if (n < 0)
        return report(ECHOC_ERROR, "read(stdin): %s", strerror(errno));
    if (n > 0)
        return send_line(s, line, (size_t)n);
    s->stdin_eof = true;
    if (s->opt->half_close) {
        int rc = half_close(s->c);
        return rc == ECHOC_OK ? KEEP_GOING : rc;
    }
    return all_echoed(s) ? ECHOC_OK : KEEP_GOING;
}

static int on_socket_readable(struct select_session *s)
{
    char buf[SELECT_CHUNK];
    ssize_t n;
    int rc;

    if ((rc = before_read(s->c, true)) != KEEP_GOING)
        return rc;
    n = read_retry(s->c->fd, buf, sizeof buf);
    if (n < 0)
        return report_socket_error("read", errno);
    if (n == 0) {
        /* UNP 6.13: the server's EOF is the normal end only after our own
         * shutdown(), and only once every echo is in. Otherwise it is
         * reported now, input pending or not. */
        if (s->stdin_eof && all_echoed(s))
            return ECHOC_OK;
        return report(ECHOC_PREMATURE, PREMATURE_MESSAGE);
    }
    if ((rc = after_read(s->c, (size_t)n, true)) != KEEP_GOING && rc != DROPPED)
        return rc;
    if (rc != DROPPED && (rc = write_stdout(buf, (size_t)n)) != ECHOC_OK)
        return rc;
    if (s->opt->verify) {
        struct pending *p = &s->unechoed;
        if (rc != DROPPED &&
            (rc = check_echo(p->data ? p->data + p->start : NULL, p->len, buf,
                             (size_t)n, s->echoed)) != ECHOC_OK)
            return rc;
        pending_consume(p, (size_t)n);
    }
    s->echoed += (unsigned long long)n;
    if (s->c->shut) /* shutdown_wr at this read: no more input */
        s->stdin_eof = true;
    if (s->stdin_eof && !waits_for_eof(s) && all_echoed(s))
        return ECHOC_OK;
    return KEEP_GOING;
}

/* Ends at the server's EOF, or at stdin's EOF once every echo is in. */
static int select_loop(struct select_session *s)
{
    int rc;

    for (;;) {
        fd_set readable;

        if (s->c->shut) /* a shutdown_wr fault at a read: input ends */
            s->stdin_eof = true;
        if (!s->stdin_eof && (rc = forward_buffered_lines(s)) != KEEP_GOING)
            return rc;
        FD_ZERO(&readable);
        if (!s->stdin_eof)
            FD_SET(STDIN_FILENO, &readable);
        FD_SET(s->c->fd, &readable);
        if (select(s->c->fd + 1, &readable, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            return report(ECHOC_ERROR, "select: %s", strerror(errno));
        }
        /* The socket first: a FIN is news even when a line is waiting. */
        if (FD_ISSET(s->c->fd, &readable) && (rc = on_socket_readable(s)) != KEEP_GOING)
            return rc;
        if (!s->stdin_eof && FD_ISSET(STDIN_FILENO, &readable) &&
            (rc = on_stdin_readable(s)) != KEEP_GOING)
            return rc;
    }
}

int str_cli_select(struct client_conn *c, const struct echoc_options *opt)
{
    struct select_session s = { .c = c, .opt = opt };
    int rc;

    line_reader_init(&s.from_stdin, STDIN_FILENO);
    rc = select_loop(&s);
    free(s.unechoed.data);
    return rc;
}

/* --- generated data (--bytes) ------------------------------------------ */

/* "faultlin": any constant will do; it only has to be the same each run. */
#define PATTERN_SEED 0x6661756c746c696eULL

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/*
 * The data at a stream offset: a hash of its 8-byte block index, so any
 * stretch can be regenerated for --verify without keeping what was sent,
 * and every run sends the same bytes, captures included. One byte in 256
 * is forced to NUL so even a short run has one: a server that handles
 * data as C strings then fails --verify.
 */
static void pattern_fill(unsigned char *buf, unsigned long long offset, size_t n)
{
    while (n > 0) {
        uint64_t word = splitmix64(PATTERN_SEED ^ (offset >> 3));
        for (unsigned k = (unsigned)(offset & 7); k < 8 && n > 0; k++) {
            *buf++ = (offset & 0xff) == 1 ? 0 : (unsigned char)(word >> (8 * k));
            offset++;
            n--;
        }
    }
}

static size_t chunk_size(unsigned long long left, size_t max)
{
    return left < max ? (size_t)left : max;
}

static int check_generated_echo(const unsigned char *got, size_t n,
                                unsigned long long offset,
                                unsigned long long total)
{
    unsigned char expected[SELECT_CHUNK];
    size_t sent_len = offset < total ? chunk_size(total - offset, n) : 0;

    pattern_fill(expected, offset, sent_len);
    return check_echo(expected, sent_len, got, n, offset);
}

/*
 * Lockstep, as str_cli does with lines: one chunk out with writen(), the
 * same amount back with readn(), so neither side's buffers ever fill.
 */
int bytes_cli_block(struct client_conn *c, const struct echoc_options *opt)
{
    unsigned char out[LOCKSTEP_CHUNK], in[LOCKSTEP_CHUNK];
    const unsigned long long total = opt->bytes;
    unsigned long long done = 0;
    struct line_reader from_server;
    int rc;

    /* Ends after total / LOCKSTEP_CHUNK rounds, or when a fault shut us. */
    while (done < total && !c->shut) {
        size_t n = chunk_size(total - done, sizeof out);
        ssize_t got;

        pattern_fill(out, done, n);
        if ((rc = conn_write(c, out, n, true)) == NOT_SENT)
            break;
        if (rc != KEEP_GOING)
            return rc;
        if (done + n == total && opt->half_close && !c->shut &&
            (rc = half_close(c)) != ECHOC_OK)
            return rc;
        if ((rc = before_read(c, true)) != KEEP_GOING)
            return rc;
        got = readn(c->fd, in, n);
        if (got < 0)
            return report_socket_error("read", errno);
        rc = got > 0 ? after_read(c, (size_t)got, true) : KEEP_GOING;
        if (rc != KEEP_GOING && rc != DROPPED)
            return rc;
        if (rc != DROPPED && opt->verify &&
            (rc = check_echo(out, n, in, (size_t)got, done)) != ECHOC_OK)
            return rc;
        if ((size_t)got < n)
            return report(ECHOC_PREMATURE, PREMATURE_MESSAGE);
        done += n;
    }
    line_reader_init(&from_server, c->fd);
    if (c->shut)
        return read_until_eof(c, &from_server, false, opt->verify, done);
    if (!opt->half_close)
        return ECHOC_OK;
    if (total == 0 && (rc = half_close(c)) != ECHOC_OK)
        return rc;
    return read_until_eof(c, &from_server, false, opt->verify, done);
}

struct bytes_session {
    struct client_conn *c;
    const struct echoc_options *opt;
    unsigned long long sent, received;
    unsigned char out[SELECT_CHUNK]; /* out[out_pos..out_len) not yet written */
    size_t out_pos, out_len;
};

static bool would_block(int errnum)
{
    return errnum == EAGAIN || errnum == EWOULDBLOCK || errnum == EINTR;
}

static int on_bytes_readable(struct bytes_session *s)
{
    unsigned char buf[SELECT_CHUNK];
    /* After a shutdown_wr fault, what was sent is all that can come back. */
    unsigned long long expected = s->c->shut ? s->sent : s->opt->bytes;
    ssize_t n;
    int rc;

    if ((rc = before_read(s->c, true)) != KEEP_GOING)
        return rc;
    n = read(s->c->fd, buf, sizeof buf);
    if (n < 0)
        return would_block(errno) ? KEEP_GOING : report_socket_error("read", errno);
    if (n == 0)
        return s->received < expected ? report(ECHOC_PREMATURE, PREMATURE_MESSAGE)
                                      : ECHOC_OK;
    if ((rc = after_read(s->c, (size_t)n, true)) != KEEP_GOING && rc != DROPPED)
        return rc;
    if (rc != DROPPED && s->opt->verify &&
        (rc = check_generated_echo(buf, (size_t)n, s->received, s->opt->bytes)) != ECHOC_OK)
        return rc;
    s->received += (unsigned long long)n;
    return KEEP_GOING;
}

static int on_bytes_writable(struct bytes_session *s)
{
    size_t limit;
    ssize_t n;
    int rc;

    if (s->out_pos == s->out_len) {
        s->out_len = chunk_size(s->opt->bytes - s->sent, sizeof s->out);
        s->out_pos = 0;
        pattern_fill(s->out, s->sent, s->out_len);
    }
    limit = s->out_len - s->out_pos;
    if ((rc = before_write(s->c, &limit, true)) == NOT_SENT)
        return KEEP_GOING; /* c->shut: the loop stops writing */
    if (rc != KEEP_GOING)
        return rc;
    n = write(s->c->fd, s->out + s->out_pos, limit);
    if (n < 0)
        return would_block(errno) ? KEEP_GOING : report_socket_error("write", errno);
    s->out_pos += (size_t)n;
    s->sent += (unsigned long long)n;
    if ((rc = after_write(s->c, true)) != KEEP_GOING)
        return rc;
    if (s->sent == s->opt->bytes && s->opt->half_close && !s->c->shut) {
        rc = half_close(s->c);
        return rc == ECHOC_OK ? KEEP_GOING : rc;
    }
    return KEEP_GOING;
}

/* Ends when every echo is in, or at the server's EOF with --half-close. */
static int bytes_select_loop(struct bytes_session *s)
{
    const unsigned long long total = s->opt->bytes;
    int rc;

    if (total == 0 && s->opt->half_close && (rc = half_close(s->c)) != ECHOC_OK)
        return rc;
    for (;;) {
        fd_set readable, writable;
        const int fd = s->c->fd;

        /* After our shutdown the end is the server's EOF. */
        if (!s->opt->half_close && !s->c->shut && s->received >= total)
            return ECHOC_OK;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(fd, &readable);
        if (s->sent < total && !s->c->shut)
            FD_SET(fd, &writable);
        if (select(fd + 1, &readable, &writable, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            return report(ECHOC_ERROR, "select: %s", strerror(errno));
        }
        if (FD_ISSET(fd, &readable) && (rc = on_bytes_readable(s)) != KEEP_GOING)
            return rc;
        if (FD_ISSET(fd, &writable) && !s->c->shut &&
            (rc = on_bytes_writable(s)) != KEEP_GOING)
            return rc;
    }
}

/*
 * Non-blocking, with select() for both directions: however large N is,
 * we keep draining echoes while the server waits for us to read, so
 * neither side can block the other for good.
 */
int bytes_cli_select(struct client_conn *c, const struct echoc_options *opt)
{
    struct bytes_session s = { .c = c, .opt = opt };
    int flags = fcntl(c->fd, F_GETFL);

    if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0)
        die_errno("fcntl O_NONBLOCK", "socket");
    return bytes_select_loop(&s);
}

/* A fault shut our write side before the talking began (shutdown_wr at
 * connect): read what the server sends up to its EOF. */
int drain_cli(struct client_conn *c, const struct echoc_options *opt)
{
    struct line_reader from_server;

    line_reader_init(&from_server, c->fd);
    return read_until_eof(c, &from_server, !opt->bytes_mode, opt->verify, 0);
}
