/*
 * Dying wrappers for program set-up code, UNP style: a Capitalized call
 * either succeeds or prints "prog: call(object): strerror" and exits 1.
 * This is the only part of lib/ that exits; per-connection code never
 * calls it.
 */
#ifndef FL_DIE_H
#define FL_DIE_H

#include <signal.h>
#include <stdnoreturn.h>

void set_progname(const char *argv0);
const char *progname(void);

noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: one line, "prog: message (try 'prog --help')", exit 2. */
noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void die_errno(const char *call, const char *object);

/* A flag's numeric value, decimal digits only, within [min, max]; anything
 * else is a usage error naming the flag. */
long long parse_flag_number(const char *flag, const char *text, long long min,
                            long long max);
/* After getopt_long returned '?' (opterr = 0, optstring ":"): say which of
 * its three mistakes was made, as a usage error. */
noreturn void die_bad_option(char **argv, int optind_now, int optopt_now);

void Sigaction(int sig, void (*handler)(int), int flags);
void Sigprocmask(int how, const sigset_t *set, sigset_t *old);
void Close(int fd);

#endif
