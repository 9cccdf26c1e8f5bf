#include "die.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "faultline";

void set_progname(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    prog = slash ? slash + 1 : argv0;
}

const char *progname(void)
{
    return prog;
}

__attribute__((format(printf, 1, 0)))
static void vreport(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    exit(1);
}

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try '%s --help')\n", prog);
    exit(2);
}

void die_errno(const char *call, const char *object)
{
    int saved = errno;
    if (object)
        die("%s(%s): %s", call, object, strerror(saved));
    die("%s: %s", call, strerror(saved));
}

long long parse_flag_number(const char *flag, const char *text, long long min,
                            long long max)
{
    char *end;
    long long v;

    /* strtoll alone would take " 5", "+5" and wrap "-1" for wide types. */
    errno = 0;
    v = strtoll(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0' ||
        v < min || v > max)
        die_usage("%s wants a number from %lld to %lld, not '%s'", flag, min,
                  max, text);
    return v;
}

void die_bad_option(char **argv, int optind_now, int optopt_now)
{
    enum { FIRST_LONG_ONLY = 256 }; /* our long options' codes start here */

    if (optopt_now >= FIRST_LONG_ONLY) {
        const char *arg = argv[optind_now - 1];
        die_usage("option '%.*s' takes no value", (int)strcspn(arg, "="), arg);
    }
    if (optopt_now != 0)
        die_usage("unknown option '-%c'", optopt_now);
    die_usage("unknown or ambiguous option '%s'", argv[optind_now - 1]);
}

void Sigaction(int sig, void (*handler)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) < 0)
        die("sigaction(%s): %s", strsignal(sig), strerror(errno));
}

void Sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (sigprocmask(how, set, old) < 0)
        die_errno("sigprocmask", NULL);
}

void Close(int fd)
{
    /* close() is never retried: on Linux the descriptor is gone even on EINTR. */
    if (close(fd) < 0 && errno != EINTR)
        die_errno("close", NULL);
}
