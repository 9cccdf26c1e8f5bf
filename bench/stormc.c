/*
 * stormc: the client population of `faultline storm`. It opens N
 * connections, at most K at a time, from one epoll loop (no thread, no
 * Python in the hot path), and on each one plays the action its seed
 * gives it:
 *
 *   echo  send L bytes, half-close, read the echo to the server's EOF
 *   rst   send half of L bytes, then reset (SO_LINGER 0) at once
 *
 * Payload byte o of connection i is a pure function of (seed, i, o), so
 * every received byte is compared with the byte that was sent there:
 * stronger than a length+hash check, and it says where an echo went
 * wrong. The same seed gives the same lengths and actions, in the same
 * order of connection numbers.
 *
 *   stormc --port P --conns N --concurrency K --seed S [--addr A]
 *          [--max-len B] [--rst-percent R] [--seconds T] [--idle-timeout T]
 *
 * Bounded: N <= 100000, K <= 4096, T <= 600 s; a connection without
 * progress for --idle-timeout seconds ends as "timeout". stderr gets a
 * progress line every half second; stdout one JSON object at the end:
 * the totals and, per connection, [local port, length, sent, received,
 * outcome, first mismatching offset or -1, corrupted bytes].
 *
 * Exit: 0 whatever the outcomes (judging them is the harness's job), 2 on
 * bad arguments, 1 when the loop itself failed (epoll, memory).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 100000
#define MAX_CONCURRENCY 4096
#define MAX_LEN (1 << 20)
#define MAX_SECONDS 600.0
#define CHUNK 16384

enum action { ACT_ECHO, ACT_RST };
/* unfinished: still open when --seconds ran out, as unstarted is not yet
 * opened: the run's length, not the server, ended it. */
enum outcome { OUT_PENDING, OUT_OK, OUT_SHORT, OUT_RESET, OUT_TIMEOUT,
               OUT_CONNECT, OUT_CLIENT_RST, OUT_ERROR, OUT_UNSTARTED, OUT_UNFINISHED };
static const char *const outcome_name[] = {
    "pending", "ok", "short", "reset", "timeout", "connect_error",
    "client_rst", "error", "unstarted", "unfinished"};
#define N_OUTCOMES 10

struct conn {
    int fd;
    int port;               /* our local port: the server's accept event names it */
    enum action action;
    enum outcome outcome;
    int half_closed;
    long len, sent, received, mismatch_at, corrupted;
    double last_progress;
    uint64_t stream;        /* the payload's key */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static unsigned char payload_byte(uint64_t stream, long offset)
{
    return (unsigned char)(splitmix64(stream ^ ((uint64_t)(offset >> 3) << 20))
                           >> ((offset & 7) * 8));
}

static void usage_error(const char *what)
{
    fprintf(stderr, "stormc: %s (usage: stormc --port P --conns N --concurrency K "
            "--seed S [--addr A] [--max-len B] [--rst-percent R] [--seconds T] "
            "[--idle-timeout T])\n", what);
    exit(2);
}

static double number(const char *opt, const char *text, double low, double high)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || v < low || v > high) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s '%s': not a number from %g to %g", opt, text,
                 low, high);
        usage_error(msg);
    }
    return v;
}

static void finish(struct conn *c, enum outcome o, int epfd, long *live)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        if (o == OUT_CLIENT_RST) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(c->fd);
        c->fd = -1;
        (*live)--;
    }
    c->outcome = o;
}

/* Start connection c; returns -1 (with c finished) when it could not. */
static int start(struct conn *c, const struct sockaddr_in *to, int epfd, long *live)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->outcome = OUT_CONNECT;
        return -1;
    }
    (*live)++;
    c->last_progress = now();
    if (connect(c->fd, (const struct sockaddr *)to, sizeof *to) < 0 &&
        errno != EINPROGRESS) {
        finish(c, OUT_CONNECT, epfd, live);
        return -1;
    }
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    if (getsockname(c->fd, (struct sockaddr *)&me, &len) == 0)
        c->port = ntohs(me.sin_port);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
                             .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        finish(c, OUT_ERROR, epfd, live);
        return -1;
    }
    return 0;
}

/* A socket error: reset or refused, or something else. */
static enum outcome error_outcome(int err, long received)
{
    if (err == ECONNREFUSED && received == 0)
        return OUT_CONNECT;
    if (err == ECONNRESET || err == EPIPE)
        return OUT_RESET;
    return OUT_ERROR;
}

static void on_writable(struct conn *c, int epfd, long *live)
{
    unsigned char buf[CHUNK];
    /* rst: half the payload, then the reset, whatever came back by then. */
    long goal = c->action == ACT_RST ? c->len / 2 : c->len;
    while (c->sent < goal) {
        long n = goal - c->sent < CHUNK ? goal - c->sent : CHUNK;
        for (long i = 0; i < n; i++)
            buf[i] = payload_byte(c->stream, c->sent + i);
        ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            int err = errno;
            if (c->sent == 0 && c->received == 0 && err != EPIPE && err != ECONNRESET)
                finish(c, OUT_CONNECT, epfd, live);
            else
                finish(c, error_outcome(err, c->received), epfd, live);
            return;
        }
        c->sent += w;
        c->last_progress = now();
    }
    if (c->action == ACT_RST) {
        finish(c, OUT_CLIENT_RST, epfd, live);
        return;
    }
    if (!c->half_closed && c->action == ACT_ECHO) {
        shutdown(c->fd, SHUT_WR);
        c->half_closed = 1;
    }
    /* Everything sent: only reads are of interest now. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_readable(struct conn *c, int epfd, long *live)
{
    unsigned char buf[CHUNK];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            finish(c, error_outcome(errno, c->received), epfd, live);
            return;
        }
        if (r == 0) {
            finish(c, c->received == c->len && c->sent == c->len ? OUT_OK : OUT_SHORT,
                   epfd, live);
            return;
        }
        for (ssize_t i = 0; i < r; i++) {
            /* A byte past what was sent is as wrong as a changed one. */
            if (c->received + i >= c->sent ||
                buf[i] != payload_byte(c->stream, c->received + i)) {
                if (c->mismatch_at < 0)
                    c->mismatch_at = c->received + i;
                c->corrupted++;
            }
        }
        c->received += r;
        c->last_progress = now();
    }
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    long port = -1, nconns = -1, concurrency = -1, max_len = 4096, rst_percent = 0;
    double seconds = 60, idle_timeout = 5;
    uint64_t seed = 0;
    int have_seed = 0;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (i + 1 >= argc)
            usage_error(strncmp(opt, "--", 2) ? "unexpected argument" : "option needs a value");
        const char *val = argv[++i];
        if (!strcmp(opt, "--addr"))
            addr = val;
        else if (!strcmp(opt, "--port"))
            port = (long)number(opt, val, 1, 65535);
        else if (!strcmp(opt, "--conns"))
            nconns = (long)number(opt, val, 1, MAX_CONNS);
        else if (!strcmp(opt, "--concurrency"))
            concurrency = (long)number(opt, val, 1, MAX_CONCURRENCY);
        else if (!strcmp(opt, "--max-len"))
            max_len = (long)number(opt, val, 1, MAX_LEN);
        else if (!strcmp(opt, "--rst-percent"))
            rst_percent = (long)number(opt, val, 0, 100);
        else if (!strcmp(opt, "--seconds"))
            seconds = number(opt, val, 0.1, MAX_SECONDS);
        else if (!strcmp(opt, "--idle-timeout"))
            idle_timeout = number(opt, val, 0.1, MAX_SECONDS);
        else if (!strcmp(opt, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(val, &end, 10);
            if (errno || end == val || *end || *val == '-')
                usage_error("--seed: not a whole number from 0 to 2^64-1");
            have_seed = 1;
        } else {
            char msg[120];
            snprintf(msg, sizeof msg, "unknown option '%s'", opt);
            usage_error(msg);
        }
    }
    if (port < 0 || nconns < 0 || concurrency < 0 || !have_seed)
        usage_error("--port, --conns, --concurrency and --seed are required");

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &to.sin_addr) != 1)
        usage_error("--addr: not an IPv4 address");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)concurrency + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)concurrency + 64 ? rl.rlim_max
                                                             : (rlim_t)concurrency + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) {
        fprintf(stderr, "stormc: calloc(%ld connections): %s\n", nconns, strerror(errno));
        return 1;
    }
    for (long i = 0; i < nconns; i++) {
        uint64_t r = splitmix64(seed ^ splitmix64((uint64_t)i + 1));
        conns[i] = (struct conn){.fd = -1, .port = 0, .outcome = OUT_UNSTARTED,
                                 .len = 1 + (long)(r % (uint64_t)max_len),
                                 .action = (long)((r >> 32) % 100) < rst_percent
                                           ? ACT_RST : ACT_ECHO,
                                 .mismatch_at = -1, .stream = splitmix64(r)};
    }

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        fprintf(stderr, "stormc: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    double t0 = now(), next_progress = t0 + 0.5, next_timeout_scan = t0;
    long next = 0, live = 0, done = 0;
    struct epoll_event evs[256];
    while (done < nconns) {
        double t = now();
        if (t - t0 > seconds)
            break;
        while (live < concurrency && next < nconns) {
            struct conn *c = &conns[next++];
            c->outcome = OUT_PENDING;
            if (start(c, &to, epfd, &live) < 0)
                done++;
        }
        int n = epoll_wait(epfd, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "stormc: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
                on_readable(c, epfd, &live);
            if (c->fd >= 0 && (evs[i].events & EPOLLERR)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                finish(c, error_outcome(err ? err : ECONNRESET, c->received), epfd, &live);
            }
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                on_writable(c, epfd, &live);
            if (c->fd < 0)
                done++;
        }
        t = now();
        if (t < next_timeout_scan)
            continue;
        next_timeout_scan = t + 0.1;
        for (long i = 0; i < next; i++) {
            struct conn *c = &conns[i];
            if (c->fd >= 0 && t - c->last_progress > idle_timeout) {
                finish(c, OUT_TIMEOUT, epfd, &live);
                done++;
            }
        }
        if (t >= next_progress) {
            fprintf(stderr, "stormc: %ld/%ld done, %ld open, %.1fs\n", done, nconns,
                    live, t - t0);
            next_progress = t + 0.5;
        }
    }
    for (long i = 0; i < next; i++)
        if (conns[i].fd >= 0)
            finish(&conns[i], OUT_UNFINISHED, epfd, &live);

    long totals[N_OUTCOMES] = {0}, corrupted = 0;
    for (long i = 0; i < nconns; i++) {
        totals[conns[i].outcome]++;
        corrupted += conns[i].corrupted;
    }
    printf("{\"seed\":%llu,\"conns\":%ld,\"seconds\":%.3f,\"corrupted_bytes\":%ld,"
           "\"outcomes\":{", (unsigned long long)seed, nconns, now() - t0, corrupted);
    int first = 1;
    for (int o = 0; o < N_OUTCOMES; o++) {
        if (!totals[o])
            continue;
        printf("%s\"%s\":%ld", first ? "" : ",", outcome_name[o], totals[o]);
        first = 0;
    }
    printf("},\"conn\":[");
    for (long i = 0; i < nconns; i++) {
        const struct conn *c = &conns[i];
        printf("%s[%d,%ld,%ld,%ld,\"%s\",%ld,%ld,\"%s\"]", i ? "," : "", c->port, c->len,
               c->sent, c->received, outcome_name[c->outcome], c->mismatch_at,
               c->corrupted, c->action == ACT_RST ? "rst" : "echo");
    }
    printf("]}\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
