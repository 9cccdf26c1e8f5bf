/*
 * echoc's side of the fault engine: --fault and ECHOC_FAULTS, the seed,
 * and the caller's share of a firing fault (rst, close, shutdown_wr here,
 * through lib's sock_fault_apply(); short, drop and leak in the loops that
 * get HOOK_SHORT, HOOK_DROP and HOOK_LEAK back). docs/FAULTS.md describes
 * what each does to a session.
 *
 * Built with -Dfault_hooks=disabled, only the refusal of --fault is left:
 * no fault_* function is called, so none is linked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echoc.h"
#include "errfmt.h"
#include "sockfault.h"

#if FL_FAULT_HOOKS

static struct fault_set faults;
/* Firings that changed what the session exchanged, per action. */
static long cut[FA_COUNT];

void hooks_add_spec(const char *source, const char *spec)
{
    char err[FL_ERRLEN];

    if (fault_parse_points(&faults, spec, FAULT_POINTS_CLIENT, "echoc", err,
                           sizeof err) < 0)
        exit(report(ECHOC_USAGE, "%s '%s': %s", source, spec, err));
}

void hooks_start(void)
{
    struct timespec now;
    uint64_t fallback, seed;
    int announce;

    if (faults.n == 0)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    fallback = ((uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec) ^
               (uint64_t)getpid();
    seed = fault_seed_default(&faults, fallback, &announce);
    if (announce)
        report(0, "fault seed %llu (replay with seed=%llu)", (unsigned long long)seed,
               (unsigned long long)seed);
    fault_activate(&faults);
}

static void note(const struct client_conn *c, enum fault_action action,
                 enum fault_point point, const char *what)
{
    report(0, "fault %s@%s on connection %ld: %s", fault_action_name(action),
           fault_point_name(point), c->fault.conn, what);
}

/* rst, close, shutdown_wr: carried out by lib (sockfault.c), said on
 * stderr, with the failed call instead when one failed (a shutdown the
 * peer's reset beat; that shows again at the next read). shutdown_wr
 * shuts only once. */
static enum hook_result cut_socket(struct client_conn *c, enum fault_action action,
                                   enum fault_point point)
{
    enum sock_fault_effect effect = SOCK_FAULT_SHUT;
    enum hook_result result = HOOK_GO_ON;
    const char *what = "write side shut (FIN sent), reading to the end";
    char err[FL_ERRLEN] = "";
    int rc = 0;

    if (!(action == FA_SHUTDOWN_WR && c->shut))
        rc = sock_fault_apply(c->fd, action, &effect, err, sizeof err);
    if (effect == SOCK_FAULT_SHUT) {
        c->shut = true;
    } else {
        c->fd = -1;
        result = HOOK_ENDED;
        what = action == FA_RST ? "reset (RST sent), connection gone"
                                : "closed (FIN sent), connection gone";
    }
    cut[action]++;
    note(c, action, point, rc < 0 ? err : what);
    return result;
}

enum hook_result conn_hook_run(struct client_conn *c, enum fault_point point,
                               long long *arg)
{
    struct fault_hit hit;

    if (c->fd < 0)
        return HOOK_ENDED;
    c->fault.fd = c->fd;
    hit = FAULT_HOOK(point, &c->fault);
    switch (hit.action) {
    case FA_RST:
    case FA_CLOSE:
    case FA_SHUTDOWN_WR:
        return cut_socket(c, hit.action, point);
    case FA_SHORT:
        *arg = hit.arg;
        return HOOK_SHORT;
    case FA_DROP:
        cut[hit.action]++;
        return HOOK_DROP;
    case FA_LEAK:
        return HOOK_LEAK;
    default: /* nothing else reaches echoc's points (fault_parse_points) */
        return HOOK_GO_ON;
    }
}

int hooks_final_status(int status)
{
    char what[128] = "";
    size_t n = 0;

    if (status != ECHOC_OK)
        return status;
    for (int a = 0; a < FA_COUNT; a++)
        if (cut[a] > 0 && n < sizeof what)
            n += (size_t)snprintf(what + n, sizeof what - n, "%s%s x%ld", n ? ", " : "",
                                  fault_action_name((enum fault_action)a), cut[a]);
    if (n == 0)
        return status;
    return report(ECHOC_FAULT, "faults cut the session (%s): exit %d, not %d", what,
                  ECHOC_FAULT, ECHOC_OK);
}

#else /* !FL_FAULT_HOOKS */

void hooks_add_spec(const char *source, const char *spec)
{
    (void)spec;
    exit(report(ECHOC_USAGE, "%s: this build has no fault hooks (meson -Dfault_hooks=enabled)",
                source));
}

void hooks_start(void)
{
}

int hooks_final_status(int status)
{
    return status;
}

#endif
