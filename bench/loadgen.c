/*
 * loadgen: the one load client `faultline bench` runs against every
 * server. It does no more than the measurement needs (no byte checked:
 * the echo's length is), so that what it measures is the server. Every
 * mode is bounded in time and in count; each prints one JSON object.
 *
 *   loadgen cycle  --port P --workers N --seconds S [--count N] [--msg B]
 *       N threads, each: connect, send B bytes, read B back, close, again
 *       until S seconds or N connections in all; a latency histogram of
 *       the whole cycle (connect to close).
 *   loadgen stream --port P --conns N --seconds S [--window B]
 *       N connections in one epoll loop, each keeping up to B bytes in
 *       flight; echoed bytes per second; then a clean end (shutdown, the
 *       echo read to EOF).
 *   loadgen hold   --port P --conns N [--workers K] [--seconds S]
 *       open N connections, K at a time, one byte echoed on each (the
 *       server serves it), RLIMIT_NOFILE raised to fit, within S seconds;
 *       print a line; hold them until stdin ends (at most S seconds more);
 *       close them all; print a line.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECONDS 600.0
#define MAX_WORKERS 1024
#define MAX_CONNS 100000
#define MAX_MSG 65536
#define DRAIN_SECONDS 5.0

/* Latency histogram, log-linear in nanoseconds: values below 2 * SUB
 * exact, above them SUB buckets per power of two (error under 1/SUB). */
#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define BUCKETS (64 * SUB)

struct histogram {
    uint64_t count[BUCKETS];
    uint64_t n, max, sum;
};

static int bucket_of(uint64_t ns)
{
    if (ns < 2 * SUB)
        return (int)ns;
    int shift = 63 - __builtin_clzll(ns) - SUB_BITS;
    int idx = (shift + 1) * SUB + (int)((ns >> shift) - SUB);
    return idx < BUCKETS ? idx : BUCKETS - 1;
}

/* The middle of a bucket's range. */
static uint64_t value_of(int idx)
{
    if (idx < 2 * SUB)
        return (uint64_t)idx;
    int shift = idx / SUB - 1;
    uint64_t low = (uint64_t)(idx % SUB + SUB) << shift;
    return low + ((1ULL << shift) >> 1);
}

static void hist_add(struct histogram *h, uint64_t ns)
{
    h->count[bucket_of(ns)]++;
    h->n++;
    h->sum += ns;
    if (ns > h->max)
        h->max = ns;
}

static void hist_merge(struct histogram *into, const struct histogram *h)
{
    for (int i = 0; i < BUCKETS; i++)
        into->count[i] += h->count[i];
    into->n += h->n;
    into->sum += h->sum;
    if (h->max > into->max)
        into->max = h->max;
}

static double hist_quantile_us(const struct histogram *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            return (double)(v < h->max ? v : h->max) / 1000.0;
        }
    }
    return (double)h->max / 1000.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void usage(const char *why)
{
    fprintf(stderr, "loadgen: %s\n"
            "usage: loadgen cycle|stream|hold --port P [--host ADDR] [--seconds S]\n"
            "         [--workers N] [--count N] [--msg B] [--conns N] [--window B]\n",
            why);
    exit(2);
}

struct options {
    const char *mode;
    struct sockaddr_in addr;
    double seconds;
    long workers, count, msg, conns, window;
};

/* The errors a mode counts, by errno, for its JSON. */
struct errors {
    atomic_long connect, io, eof;
    atomic_int first_errno;
};

static void note_error(struct errors *e, atomic_long *kind, int err)
{
    atomic_fetch_add(kind, 1);
    int none = 0;
    atomic_compare_exchange_strong(&e->first_errno, &none, err);
}

static void print_errors(const struct errors *e)
{
    int first = atomic_load(&e->first_errno);
    printf("\"errors\": {\"connect\": %ld, \"io\": %ld, \"eof\": %ld, \"first\": \"%s\"}",
           atomic_load(&e->connect), atomic_load(&e->io), atomic_load(&e->eof),
           first ? strerror(first) : "");
}

/* A connected socket, or -1 (errno set). */
static int dial(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Send len bytes and read len back: 0, or -1 with errno (0: early EOF). */
static int echo_once(int fd, const char *out, char *in, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, out + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, in + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* --- cycle ---------------------------------------------------------------- */

struct cycle_shared {
    const struct options *opt;
    double deadline;
    atomic_long tickets;
    struct errors errors;
};

struct cycle_worker {
    pthread_t tid;
    struct cycle_shared *shared;
    struct histogram hist;
};

static void *cycle_loop(void *arg)
{
    struct cycle_worker *w = arg;
    struct cycle_shared *s = w->shared;
    const struct options *opt = s->opt;
    char out[MAX_MSG], in[MAX_MSG];
    long failures = 0;
    memset(out, 'x', (size_t)opt->msg);
    /* At least one cycle each, however late the thread starts on a busy
     * machine. A run of failures ends the worker: a server that refuses
     * every connection must not keep the loop spinning for the whole run. */
    for (long cycles = 0; failures < 1000; cycles++) {
        if (cycles > 0 && now() >= s->deadline)
            break;
        if (atomic_fetch_add(&s->tickets, 1) >= opt->count)
            break;
        uint64_t start = now_ns();
        int fd = dial(&opt->addr);
        if (fd < 0) {
            note_error(&s->errors, &s->errors.connect, errno);
            failures++;
            continue;
        }
        if (echo_once(fd, out, in, (size_t)opt->msg) < 0) {
            note_error(&s->errors, errno ? &s->errors.io : &s->errors.eof, errno);
            close(fd);
            failures++;
            continue;
        }
        close(fd);
        hist_add(&w->hist, now_ns() - start);
        failures = 0;
    }
    return NULL;
}

static int run_cycle(const struct options *opt)
{
    struct cycle_shared shared = { .opt = opt };
    struct cycle_worker *workers = calloc((size_t)opt->workers, sizeof *workers);
    struct histogram *all = calloc(1, sizeof *all);
    if (workers == NULL || all == NULL) {
        perror("loadgen: calloc");
        return 1;
    }
    double start = now();
    shared.deadline = start + opt->seconds;
    for (long i = 0; i < opt->workers; i++) {
        workers[i].shared = &shared;
        int err = pthread_create(&workers[i].tid, NULL, cycle_loop, &workers[i]);
        if (err != 0) {
            fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (long i = 0; i < opt->workers; i++) {
        pthread_join(workers[i].tid, NULL);
        hist_merge(all, &workers[i].hist);
    }
    double elapsed = now() - start;
    printf("{\"mode\": \"cycle\", \"workers\": %ld, \"msg_bytes\": %ld, "
           "\"connections\": %llu, \"seconds\": %.6f, \"conn_per_s\": %.1f, "
           "\"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
           "\"p999\": %.1f, \"max\": %.1f, \"mean\": %.1f}, ",
           opt->workers, opt->msg, (unsigned long long)all->n, elapsed,
           (double)all->n / elapsed, hist_quantile_us(all, 0.50),
           hist_quantile_us(all, 0.90), hist_quantile_us(all, 0.99),
           hist_quantile_us(all, 0.999), (double)all->max / 1000.0,
           all->n ? (double)all->sum / (double)all->n / 1000.0 : 0.0);
    print_errors(&shared.errors);
    printf("}\n");
    free(workers);
    free(all);
    return 0;
}

/* --- stream --------------------------------------------------------------- */

struct stream_conn {
    int fd;
    uint64_t sent, received;
    int writing, ended, armed_out; /* armed_out: EPOLLOUT is watched */
};

static int stream_watch(int ep, int op, struct stream_conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    return epoll_ctl(ep, op, c->fd, &ev);
}

static int run_stream(const struct options *opt)
{
    static char buf[1 << 16];
    struct errors errors = { 0 };
    struct stream_conn *conns = calloc((size_t)opt->conns, sizeof *conns);
    struct epoll_event events[256];
    uint64_t measured = 0, total = 0;
    long open_conns = 0, clean = 0;
    int ep = epoll_create1(0);
    if (conns == NULL || ep < 0) {
        perror("loadgen: stream setup");
        return 1;
    }
    memset(buf, 'x', sizeof buf);
    for (long i = 0; i < opt->conns; i++) {
        struct stream_conn *c = &conns[i];
        c->fd = dial(&opt->addr);
        if (c->fd < 0) {
            note_error(&errors, &errors.connect, errno);
            c->ended = 1;
            continue;
        }
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        c->writing = c->armed_out = 1;
        stream_watch(ep, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLOUT);
        open_conns++;
    }
    double start = now(), deadline = start + opt->seconds, elapsed = 0;
    int draining = 0;
    /* Until the deadline: keep the window full. Then: shut down writing on
     * each connection and read its echo to EOF, within DRAIN_SECONDS. */
    while (open_conns > 0) {
        double t = now();
        if (!draining && t >= deadline) {
            measured = total;
            elapsed = t - start;
            draining = 1;
            for (long i = 0; i < opt->conns; i++) {
                if (conns[i].ended)
                    continue;
                shutdown(conns[i].fd, SHUT_WR);
                conns[i].writing = conns[i].armed_out = 0;
                stream_watch(ep, EPOLL_CTL_MOD, &conns[i], EPOLLIN);
            }
        }
        if (draining && t >= deadline + DRAIN_SECONDS)
            break;
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct stream_conn *c = events[i].data.ptr;
            if (c->ended)
                continue;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r > 0) {
                    c->received += (uint64_t)r;
                    total += (uint64_t)r;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (r == 0 && draining && c->received == c->sent)
                        clean++;
                    else
                        note_error(&errors, r == 0 ? &errors.eof : &errors.io,
                                   r == 0 ? 0 : errno);
                    close(c->fd);
                    c->ended = 1;
                    open_conns--;
                    continue;
                }
            }
            if (c->writing && (events[i].events & EPOLLOUT) &&
                c->sent - c->received < (uint64_t)opt->window) {
                size_t room = (size_t)((uint64_t)opt->window - (c->sent - c->received));
                ssize_t w = write(c->fd, buf, room < sizeof buf ? room : sizeof buf);
                if (w > 0)
                    c->sent += (uint64_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    note_error(&errors, &errors.io, errno);
                    close(c->fd);
                    c->ended = 1;
                    open_conns--;
                    continue;
                }
            }
            /* A full window waits for echoes only; an emptied one writes. */
            int want = c->writing && c->sent - c->received < (uint64_t)opt->window;
            if (want != c->armed_out) {
                stream_watch(ep, EPOLL_CTL_MOD, c, want ? EPOLLIN | EPOLLOUT : EPOLLIN);
                c->armed_out = want;
            }
        }
    }
    if (!draining) {
        measured = total;
        elapsed = now() - start;
    }
    for (long i = 0; i < opt->conns; i++)
        if (!conns[i].ended)
            close(conns[i].fd);
    printf("{\"mode\": \"stream\", \"conns\": %ld, \"window_bytes\": %ld, "
           "\"bytes\": %llu, \"seconds\": %.6f, \"mb_per_s\": %.2f, "
           "\"total_bytes\": %llu, \"ended_cleanly\": %ld, ",
           opt->conns, opt->window, (unsigned long long)measured, elapsed,
           elapsed > 0 ? (double)measured / elapsed / 1e6 : 0.0,
           (unsigned long long)total, clean);
    print_errors(&errors);
    printf("}\n");
    free(conns);
    close(ep);
    return 0;
}

/* --- hold ----------------------------------------------------------------- */

/* Room for `want` descriptors: the soft limit up to the hard one, and the
 * hard one raised where this process may (root outside a user namespace). */
static long raise_nofile(long want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= (rlim_t)want)
        return (long)rl.rlim_cur;
    struct rlimit up = { (rlim_t)want, (rlim_t)want > rl.rlim_max ? (rlim_t)want : rl.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        return want;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

/* Open connections --workers at a time, each non-blocking: connect; once
 * writable, send one byte; once it is back, the connection is held. Every
 * descriptor opened goes into fds (*opened of them); returns how many were
 * held, stopping at the first error or the deadline. */
static long open_held(const struct options *opt, int *fds, long *opened, double deadline,
                      struct errors *errors)
{
    enum { CONNECTING = 0, ECHOING = 1 };
    struct epoll_event events[256];
    long held = 0, in_flight = 0;
    int ep = epoll_create1(0), failed = 0;
    char byte = 'x';
    if (ep < 0) {
        note_error(errors, &errors->io, errno);
        return 0;
    }
    while (held < opt->conns && !failed && now() < deadline) {
        while (in_flight < opt->workers && *opened < opt->conns) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0 || (connect(fd, (const struct sockaddr *)&opt->addr,
                                   sizeof opt->addr) < 0 && errno != EINPROGRESS)) {
                note_error(errors, &errors->connect, errno);
                if (fd >= 0)
                    close(fd);
                failed = 1;
                break;
            }
            struct epoll_event ev = { .events = EPOLLOUT,
                                      .data.u64 = (uint64_t)fd << 1 | CONNECTING };
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            fds[(*opened)++] = fd;
            in_flight++;
        }
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n && !failed; i++) {
            int fd = (int)(events[i].data.u64 >> 1), err = 0;
            socklen_t len = sizeof err;
            if ((events[i].data.u64 & 1) == CONNECTING) {
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0 || write(fd, &byte, 1) != 1) {
                    note_error(errors, &errors->connect, err ? err : errno);
                    failed = 1;
                    break;
                }
                struct epoll_event ev = { .events = EPOLLIN,
                                          .data.u64 = (uint64_t)fd << 1 | ECHOING };
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                continue;
            }
            char back;
            ssize_t r = read(fd, &back, 1);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r != 1) {
                note_error(errors, r == 0 ? &errors->eof : &errors->io, r == 0 ? 0 : errno);
                failed = 1;
                break;
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            held++;
            in_flight--;
        }
    }
    close(ep);
    return held;
}

static int run_hold(const struct options *opt)
{
    struct errors errors = { 0 };
    int *fds = calloc((size_t)opt->conns, sizeof *fds);
    long opened = 0, limit = raise_nofile(opt->conns + 64);
    if (fds == NULL) {
        perror("loadgen: calloc");
        return 1;
    }
    double start = now();
    long held = open_held(opt, fds, &opened, start + opt->seconds, &errors);
    double open_seconds = now() - start, deadline = now() + opt->seconds;
    printf("{\"mode\": \"hold\", \"wanted\": %ld, \"held\": %ld, \"nofile\": %ld, "
           "\"in_flight\": %ld, \"open_seconds\": %.6f, ", opt->conns, held, limit,
           opt->workers, open_seconds);
    print_errors(&errors);
    printf("}\n");
    fflush(stdout);
    /* Held until stdin ends (the caller has looked), or the deadline. */
    struct pollfd in = { .fd = STDIN_FILENO, .events = POLLIN };
    char scratch[256];
    for (;;) {
        int left = (int)((deadline - now()) * 1000);
        if (left <= 0 || poll(&in, 1, left) <= 0)
            break;
        if (read(STDIN_FILENO, scratch, sizeof scratch) <= 0)
            break;
    }
    double close_start = now();
    for (long i = 0; i < opened; i++)
        close(fds[i]);
    printf("{\"mode\": \"hold\", \"closed\": %ld, \"close_seconds\": %.6f}\n", opened,
           now() - close_start);
    free(fds);
    return 0;
}

/* --- the command line ----------------------------------------------------- */

static long number(const char *flag, const char *text, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        char why[160];
        snprintf(why, sizeof why, "%s wants a number from %ld to %ld, not '%s'", flag,
                 lo, hi, text);
        usage(why);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct options opt = { .seconds = 1.0, .workers = 1, .count = 1L << 40, .msg = 64,
                           .conns = 1, .window = 256 * 1024 };
    const char *host = "127.0.0.1";
    long port = -1;
    if (argc < 2)
        usage("no mode");
    opt.mode = argv[1];
    if (strcmp(opt.mode, "cycle") && strcmp(opt.mode, "stream") && strcmp(opt.mode, "hold"))
        usage("the mode is cycle, stream or hold");
    for (int i = 2; i < argc; i++) {
        const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            usage("an option without its value");
        i++;
        if (!strcmp(flag, "--port"))
            port = number(flag, val, 1, 65535);
        else if (!strcmp(flag, "--host"))
            host = val;
        else if (!strcmp(flag, "--seconds")) {
            opt.seconds = strtod(val, NULL);
            if (!(opt.seconds > 0 && opt.seconds <= MAX_SECONDS))
                usage("--seconds wants a number above 0, at most 600");
        } else if (!strcmp(flag, "--workers"))
            opt.workers = number(flag, val, 1, MAX_WORKERS);
        else if (!strcmp(flag, "--count"))
            opt.count = number(flag, val, 1, 1L << 40);
        else if (!strcmp(flag, "--msg"))
            opt.msg = number(flag, val, 1, MAX_MSG);
        else if (!strcmp(flag, "--conns"))
            opt.conns = number(flag, val, 1, MAX_CONNS);
        else if (!strcmp(flag, "--window"))
            opt.window = number(flag, val, 1, 1L << 30);
        else
            usage("unknown option");
    }
    if (port < 0)
        usage("--port is required");
    opt.addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1)
        usage("--host wants an IPv4 address");
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(opt.mode, "cycle"))
        return run_cycle(&opt);
    if (!strcmp(opt.mode, "stream"))
        return run_stream(&opt);
    return run_hold(&opt);
}
