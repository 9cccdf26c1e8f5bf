/*
 * echod: the reference concurrent echo server. See usage(), or
 * docs/ARCHITECTURE.md for the event log and the signal discipline.
 *
 * After listen() it prints one readiness line on stdout (on stderr when
 * --events - makes stdout the JSON stream):
 *   echod: listening on 0.0.0.0:9877 model=fork reap=waitpid pid=1234
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fl_build_config.h"
#include "die.h"
#include "echod.h"
#include "errfmt.h"
#include "eventlog.h"
#include "fault.h"
#include "net.h"

/* The --model names, their loops and their --help lines: the first is
 * the default. */
static const struct echod_model models[] = {
    { "fork", serve_fork, "a process per connection" },
    { "thread", serve_thread, "a thread per connection" },
    { "prefork", serve_prefork, "a pre-forked pool of --workers processes" },
    { "poll", serve_poll, "one process, a poll() loop" },
    { "epoll", serve_epoll, "one process, an epoll loop" },
};
#define NMODELS (sizeof models / sizeof models[0])

static const char usage_head[] =
    "usage: echod [options]\n"
    "  --port N              TCP port (default 9877; 0 = ephemeral)\n"
    "  --bind ADDR           local address (default: all IPv4 addresses)\n"
    "  --model NAME          how connections are served:\n";

static const char usage_tail[] =
    "  --workers N           prefork: processes in the pool (default 4)\n"
    "  --reap waitpid|wait|none   (fork, prefork)\n"
    "                        SIGCHLD strategy: waitpid loop (UNP server-v3),\n"
    "                        one wait() per signal (server-v2, loses signals),\n"
    "                        none (server-v1, zombies)   (default waitpid)\n"
    "  --leak-connfd         the parent never closes accepted sockets\n"
    "  --sigpipe default|ignore|handler\n"
    "                        a write to a reset peer: kills the writer\n"
    "                        (default), fails with EPIPE (ignore), or is\n"
    "                        logged as a signal event and fails (handler)\n"
    "  --config FILE         max_conns and faults, re-read on SIGHUP\n"
    "  --fault SPEC          inject a fault (repeatable; also ECHOD_FAULTS);\n"
    "                        grammar in docs/FAULTS.md\n"
    "  --drain-timeout MS    on SIGTERM, wait this long for open sessions to\n"
    "                        finish (default 5000; fork and prefork wait only\n"
    "                        with the waitpid reaper)\n"
    "  --max-conns N         at most N sessions at once, more are accepted and\n"
    "                        closed (default 0: no limit; --config's max_conns\n"
    "                        overrides it)\n"
    "  --idle-timeout SECONDS\n"
    "                        close a session after SECONDS with no byte from\n"
    "                        its client (default 0: never; 0.25 = 250 ms)\n"
    "  --session-timeout SECONDS\n"
    "                        close a session SECONDS after its accept, however\n"
    "                        busy (default 0: never)\n"
    "  --keepalive IDLE[,INTVL,CNT]\n"
    "                        TCP keepalive on accepted sockets: first probe\n"
    "                        after IDLE s, then every INTVL s, reset after CNT\n"
    "                        unanswered (default: off)\n"
    "  --emfile backoff|reserve\n"
    "                        out of descriptors at accept: stop accepting for\n"
    "                        100 ms, connections wait (the default), or close\n"
    "                        the waiting connection at once with a descriptor\n"
    "                        held in reserve\n"
    "  --events FILE|-       append JSON-lines events to FILE (never through a\n"
    "                        symlink) or stdout\n"
    "  --backlog N           listen() backlog (default 1024)\n"
    "  --help                this text\n"
    "  --version             print faultline's version and exit\n"
    "Readiness: one line on stdout after listen(), naming the bound address\n"
    "(on stderr with --events -, so stdout carries only JSON).\n"
    "Signals: SIGTERM/SIGINT close the listener, let open sessions finish\n"
    "what they have read, then exit 0; SIGHUP re-reads --config.\n"
    "Exit: 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 on bad usage.\n";

static void usage(void)
{
    fputs(usage_head, stdout);
    for (size_t i = 0; i < NMODELS; i++)
        printf("      %-18s%s%s\n", models[i].name, models[i].help,
               i == 0 ? " (default)" : "");
    fputs(usage_tail, stdout);
}

/* The index of value in names, or a usage error listing the choices. */
static int choose(const char *flag, const char *value, const char *const names[])
{
    char choices[128] = "";

    for (int i = 0; names[i]; i++) {
        if (strcmp(value, names[i]) == 0)
            return i;
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices),
                 "%s%s", i ? ", " : "", names[i]);
    }
    die_usage("unknown %s '%s' (choose %s)", flag, value, choices);
}

static const struct echod_model *choose_model(const char *value)
{
    const char *names[NMODELS + 1];

    for (size_t i = 0; i < NMODELS; i++)
        names[i] = models[i].name;
    names[NMODELS] = NULL;
    return &models[choose("--model", value, names)];
}

static void add_faults(struct fault_set *set, const char *where, const char *spec)
{
#if FL_FAULT_HOOKS
    char err[FL_ERRLEN];
    if (fault_parse_points(set, spec, FAULT_POINTS_SERVER, "echod", err, sizeof err) < 0)
        die_usage("%s '%s': %s", where, spec, err);
#else
    (void)set;
    (void)spec;
    die_usage("%s: this build has no fault hooks (meson -Dfault_hooks=enabled)", where);
#endif
}

/* SECONDS for a timeout: digits, then optionally a point and one to three
 * more (as in 30 or 0.25), at most a day; 0 turns the timeout off.
 * Returns milliseconds. */
static long parse_seconds(const char *flag, const char *text)
{
    long long whole = 0, frac = 0;
    const char *p = text;
    int decimals = 0;
    bool ok = *p >= '0' && *p <= '9';

    while (*p >= '0' && *p <= '9' && whole <= 86400)
        whole = whole * 10 + (*p++ - '0');
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && decimals < 3) {
            frac = frac * 10 + (*p++ - '0');
            decimals++;
        }
        ok = ok && decimals > 0;
    }
    for (; decimals < 3; decimals++)
        frac *= 10;
    if (!ok || *p != '\0' || whole * 1000 + frac > 86400000LL)
        die_usage("%s wants seconds from 0 to 86400 with at most 3 decimals "
                  "(as in 30 or 0.25), not '%s'", flag, text);
    return (long)(whole * 1000 + frac);
}

/* --keepalive IDLE[,INTVL,CNT]: seconds idle before the first probe,
 * seconds between probes, probes unanswered before the reset (Linux's
 * TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and their limits). */
static void parse_keepalive(const char *text)
{
    char copy[64], *intvl = NULL, *cnt = NULL;

    if (strlen(text) >= sizeof copy)
        die_usage("--keepalive wants IDLE[,INTVL,CNT], not '%s'", text);
    strcpy(copy, text);
    intvl = strchr(copy, ',');
    if (intvl) {
        *intvl++ = '\0';
        cnt = strchr(intvl, ',');
        if (cnt == NULL)
            die_usage("--keepalive wants IDLE or IDLE,INTVL,CNT, not '%s'", text);
        *cnt++ = '\0';
    }
    session_limits.keepalive_idle =
        (int)parse_flag_number("--keepalive IDLE", copy, 1, 32767);
    if (intvl) {
        session_limits.keepalive_intvl =
            (int)parse_flag_number("--keepalive INTVL", intvl, 1, 32767);
        session_limits.keepalive_cnt =
            (int)parse_flag_number("--keepalive CNT", cnt, 1, 127);
    }
}

static void parse_options(int argc, char **argv, struct echod_options *opt)
{
    enum { OPT_PORT = 256, OPT_BIND, OPT_MODEL, OPT_REAP, OPT_LEAK, OPT_EVENTS,
           OPT_BACKLOG, OPT_SIGPIPE, OPT_CONFIG, OPT_FAULT, OPT_DRAIN, OPT_WORKERS,
           OPT_IDLE_TIMEOUT, OPT_SESSION_TIMEOUT, OPT_KEEPALIVE, OPT_MAX_CONNS, OPT_EMFILE,
           OPT_HELP, OPT_VERSION };
    static const struct option longopts[] = {
        { "port", required_argument, NULL, OPT_PORT },
        { "bind", required_argument, NULL, OPT_BIND },
        { "model", required_argument, NULL, OPT_MODEL },
        { "reap", required_argument, NULL, OPT_REAP },
        { "leak-connfd", no_argument, NULL, OPT_LEAK },
        { "sigpipe", required_argument, NULL, OPT_SIGPIPE },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "fault", required_argument, NULL, OPT_FAULT },
        { "drain-timeout", required_argument, NULL, OPT_DRAIN },
        { "workers", required_argument, NULL, OPT_WORKERS },
        { "events", required_argument, NULL, OPT_EVENTS },
        { "backlog", required_argument, NULL, OPT_BACKLOG },
        { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
        { "session-timeout", required_argument, NULL, OPT_SESSION_TIMEOUT },
        { "keepalive", required_argument, NULL, OPT_KEEPALIVE },
        { "max-conns", required_argument, NULL, OPT_MAX_CONNS },
        { "emfile", required_argument, NULL, OPT_EMFILE },
        { "help", no_argument, NULL, OPT_HELP },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };
    static const char *const reaps[] = { "waitpid", "wait", "none", NULL };
    static const char *const sigpipes[] = { "default", "ignore", "handler", NULL };
    static const char *const emfiles[] = { "backoff", "reserve", NULL };
    const char *env = getenv("ECHOD_FAULTS");
    int c;

    *opt = (struct echod_options){
        .bind = NULL, .port = 9877, .backlog = 1024, .model = &models[0],
        .reap = REAP_WAITPID, .sigpipe = SIGPIPE_DEFAULT, .leak_connfd = false,
        .events = NULL, .config_path = NULL, .drain_ms = 5000, .workers = 4,
        .cli_max_conns = 0, .emfile_reserve = false,
    };
    /* No timeouts, no keepalive: the classic servers have none. */
    session_limits = (struct session_limits){ 0 };
    opt->cli_faults = (struct fault_set){ .n = 0 };
    if (env && *env)
        add_faults(&opt->cli_faults, "ECHOD_FAULTS", env);

    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PORT:
            opt->port = parse_port(optarg);
            if (opt->port < 0)
                die_usage("--port wants a number from 0 to 65535, not '%s'", optarg);
            break;
        case OPT_BIND:
            opt->bind = optarg;
            break;
        case OPT_MODEL:
            opt->model = choose_model(optarg);
            break;
        case OPT_REAP:
            opt->reap = (enum reap_strategy)choose("--reap", optarg, reaps);
            break;
        case OPT_SIGPIPE:
            opt->sigpipe = (enum sigpipe_mode)choose("--sigpipe", optarg, sigpipes);
            break;
        case OPT_LEAK:
            opt->leak_connfd = true;
            break;
        case OPT_CONFIG:
            opt->config_path = optarg;
            break;
        case OPT_FAULT:
            add_faults(&opt->cli_faults, "--fault", optarg);
            break;
        case OPT_DRAIN:
            opt->drain_ms = (long)parse_flag_number("--drain-timeout", optarg, 0,
                                                    3600000);
            break;
        case OPT_WORKERS:
            opt->workers = (int)parse_flag_number("--workers", optarg, 1, 1024);
            break;
        case OPT_EVENTS:
            opt->events = optarg;
            break;
        case OPT_BACKLOG:
            opt->backlog = (int)parse_flag_number("--backlog", optarg, 1, 65535);
            break;
        case OPT_IDLE_TIMEOUT:
            session_limits.idle_ms = parse_seconds("--idle-timeout", optarg);
            break;
        case OPT_SESSION_TIMEOUT:
            session_limits.session_ms = parse_seconds("--session-timeout", optarg);
            break;
        case OPT_KEEPALIVE:
            parse_keepalive(optarg);
            break;
        case OPT_EMFILE:
            opt->emfile_reserve = choose("--emfile", optarg, emfiles) == 1;
            break;
        case OPT_MAX_CONNS:
            opt->cli_max_conns = (long)parse_flag_number("--max-conns", optarg, 0, 1000000);
            break;
        case OPT_HELP:
            usage();
            exit(0);
        case OPT_VERSION:
            puts("echod " FL_VERSION);
            exit(0);
        case ':':
            die_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            die_bad_option(argv, optind, optopt);
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
}

#if FL_FAULT_HOOKS
/* The seed for faults without seed= (the first seed= a rule gives, else
 * time ^ pid), logged so that a random run can be replayed with seed=S.
 * Logged as a string: a JSON number would lose 64-bit precision. */
static uint64_t choose_fault_seed(struct fault_set *faults)
{
    struct timespec now;
    struct event ev;
    char text[24];
    uint64_t seed;
    int chosen;

    clock_gettime(CLOCK_REALTIME, &now);
    seed = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 20) ^ (uint64_t)getpid();
    seed = fault_seed_default(faults, seed, &chosen);
    snprintf(text, sizeof text, "%" PRIu64, seed);
    event_begin(&ev, "fault_seed");
    event_str(&ev, "seed", text);
    event_int(&ev, "faults", faults->n);
    event_emit(&ev);
    return seed;
}
#endif

static bool events_on_stdout(const struct echod_options *opt)
{
    return opt->events != NULL && strcmp(opt->events, "-") == 0;
}

int main(int argc, char **argv)
{
    struct echod_options opt;
    char err[FL_ERRLEN], where[ADDR_TEXT_MAX];
    sigset_t wait_mask;
    struct event ev;
    FILE *ready;
    int listenfd, flags;

    set_progname(argv[0]);
    parse_options(argc, argv, &opt);

    opt.config = (struct echod_config){ .max_conns = opt.cli_max_conns,
                                        .faults = opt.cli_faults };
    if (opt.config_path &&
        config_load(opt.config_path, opt.cli_max_conns, &opt.cli_faults, &opt.config,
                    err, sizeof err) < 0)
        die("%s", err);
    if (opt.events && event_log_open(opt.events, err, sizeof err) < 0)
        die("%s", err);
#if FL_FAULT_HOOKS
    opt.fault_seed = choose_fault_seed(&opt.config.faults);
#endif
    config_apply(&opt.config, opt.fault_seed);

    signals_install(opt.sigpipe, &wait_mask);
    reaper_install(opt.reap);

    if (opt.emfile_reserve)
        accept_reserve_open();
    listenfd = net_listen(opt.bind, opt.port, opt.backlog, err, sizeof err);
    if (listenfd < 0)
        die("%s", err);
    flags = fcntl(listenfd, F_GETFL);
    if (flags < 0 || fcntl(listenfd, F_SETFL, flags | O_NONBLOCK) < 0)
        die_errno("fcntl O_NONBLOCK", "listening socket");
    if (local_addr_format(listenfd, where, sizeof where) < 0)
        die_errno("getsockname", "listening socket");

    event_begin(&ev, "listen");
    event_str(&ev, "addr", where);
    event_str(&ev, "model", opt.model->name);
    event_str(&ev, "reap", reap_strategy_name(opt.reap));
    event_int(&ev, "leak_connfd", opt.leak_connfd);
    event_int(&ev, "max_conns", opt.config.max_conns);
    event_int(&ev, "idle_timeout_ms", session_limits.idle_ms);
    event_int(&ev, "session_timeout_ms", session_limits.session_ms);
    event_int(&ev, "keepalive_idle", session_limits.keepalive_idle);
    event_str(&ev, "emfile", opt.emfile_reserve ? "reserve" : "backoff");
    event_int(&ev, "fault_hooks", FL_FAULT_HOOKS);
    event_emit(&ev);

    /* With --events - standard output is the JSON stream, and a reader
     * parses every line of it: the readiness line goes to stderr instead. */
    ready = events_on_stdout(&opt) ? stderr : stdout;
    fprintf(ready, "echod: listening on %s model=%s reap=%s pid=%ld\n", where,
            opt.model->name, reap_strategy_name(opt.reap), (long)getpid());
    if (fflush(ready) == EOF)
        die_errno("fflush", ready == stdout ? "stdout" : "stderr");

    return opt.model->serve(listenfd, &opt, &wait_mask);
}
