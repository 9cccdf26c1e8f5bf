/*
 * echod: the reference concurrent echo server.
 *
 *   echod [--port N] [--bind ADDR] [--model fork] [--reap waitpid|wait|none]
 *         [--leak-connfd] [--events FILE|-] [--backlog N]
 *
 * After listen() it prints one readiness line on stdout:
 *   echod: listening on 0.0.0.0:9877 model=fork reap=waitpid pid=1234
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "die.h"
#include "echod.h"
#include "errfmt.h"
#include "eventlog.h"
#include "net.h"

volatile sig_atomic_t terminate_requested;

static void request_termination(int signo)
{
    log_signal(signo);
    terminate_requested = 1;
}

static const char usage_text[] =
    "usage: echod [options]\n"
    "  --port N              TCP port (default 9877; 0 = ephemeral)\n"
    "  --bind ADDR           local address (default: all IPv4 addresses)\n"
    "  --model fork          concurrency model (default fork)\n"
    "  --reap waitpid|wait|none\n"
    "                        SIGCHLD strategy: waitpid loop (UNP server-v3),\n"
    "                        one wait() per signal (server-v2, loses signals),\n"
    "                        none (server-v1, zombies)   (default waitpid)\n"
    "  --leak-connfd         the parent never closes accepted sockets\n"
    "  --events FILE|-       append JSON-lines events to FILE or stdout\n"
    "  --backlog N           listen() backlog (default 1024)\n"
    "  --help                this text\n"
    "Readiness: one line on stdout after listen(), naming the bound address.\n"
    "Exit: 0 after SIGTERM/SIGINT, 1 on a fatal error, 2 on bad usage.\n";

static void parse_options(int argc, char **argv, struct echod_options *opt)
{
    enum { OPT_PORT = 256, OPT_BIND, OPT_MODEL, OPT_REAP, OPT_LEAK, OPT_EVENTS,
           OPT_BACKLOG, OPT_HELP };
    static const struct option longopts[] = {
        { "port", required_argument, NULL, OPT_PORT },
        { "bind", required_argument, NULL, OPT_BIND },
        { "model", required_argument, NULL, OPT_MODEL },
        { "reap", required_argument, NULL, OPT_REAP },
        { "leak-connfd", no_argument, NULL, OPT_LEAK },
        { "events", required_argument, NULL, OPT_EVENTS },
        { "backlog", required_argument, NULL, OPT_BACKLOG },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    int c;

    *opt = (struct echod_options){
        .bind = NULL, .port = 9877, .backlog = 1024, .model = "fork",
        .reap = REAP_WAITPID, .leak_connfd = false, .events = NULL,
    };
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
            if (strcmp(optarg, "fork") != 0)
                die_usage("unknown --model '%s' (this build has: fork)", optarg);
            opt->model = optarg;
            break;
        case OPT_REAP:
            if (strcmp(optarg, "waitpid") == 0)
                opt->reap = REAP_WAITPID;
            else if (strcmp(optarg, "wait") == 0)
                opt->reap = REAP_WAIT;
            else if (strcmp(optarg, "none") == 0)
                opt->reap = REAP_NONE;
            else
                die_usage("unknown --reap '%s' (choose waitpid, wait or none)", optarg);
            break;
        case OPT_LEAK:
            opt->leak_connfd = true;
            break;
        case OPT_EVENTS:
            opt->events = optarg;
            break;
        case OPT_BACKLOG:
            opt->backlog = (int)parse_flag_number("--backlog", optarg, 1, 65535);
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
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

int main(int argc, char **argv)
{
    struct echod_options opt;
    char err[FL_ERRLEN], where[ADDR_TEXT_MAX];
    sigset_t blocked, wait_mask;
    struct event ev;
    int listenfd, flags;

    set_progname(argv[0]);
    parse_options(argc, argv, &opt);

    if (opt.events && event_log_open(opt.events, err, sizeof err) < 0)
        die("%s", err);

    /* SIGTERM/SIGINT/SIGHUP stay blocked except inside the accept loop's
     * ppoll(), which unblocks them atomically (see model_fork.c). */
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);
    Sigprocmask(SIG_BLOCK, &blocked, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGHUP);
    Sigaction(SIGTERM, request_termination, 0);
    Sigaction(SIGINT, request_termination, 0);
    /* SIGHUP reload arrives with --config; until then it is logged and
     * otherwise ignored rather than killing the server. */
    Sigaction(SIGHUP, log_signal, 0);
    reaper_install(opt.reap);

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
    event_str(&ev, "model", opt.model);
    event_str(&ev, "reap", reap_strategy_name(opt.reap));
    event_int(&ev, "leak_connfd", opt.leak_connfd);
    event_int(&ev, "fault_hooks", FL_FAULT_HOOKS);
    event_emit(&ev);

    printf("echod: listening on %s model=%s reap=%s pid=%ld\n", where, opt.model,
           reap_strategy_name(opt.reap), (long)getpid());
    if (fflush(stdout) == EOF)
        die_errno("fflush", "stdout");

    return serve_fork(listenfd, &opt, &wait_mask);
}
