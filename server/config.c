/*
 * --config FILE: what echod re-reads on SIGHUP (the FreeBSD handbook's
 * daemon). Lines are "key = value"; '#' starts a comment.
 *
 *   # at most 10 sessions at once; new ones are accepted and closed
 *   max_conns = 10
 *   # repeatable; added after the command line's --fault rules
 *   fault = delay=100ms@before_read
 *
 * A file is taken whole or not at all: a reload that finds an error keeps
 * the configuration in force and says why, with the file and line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"
#include "errfmt.h"
#include "eventlog.h"
#include "fl_build_config.h"

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
                       end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static int parse_line(char *line, struct echod_config *cfg, char *why, size_t whylen)
{
    char *hash = strchr(line, '#');
    char *eq, *key, *value, *end;

    if (hash)
        *hash = '\0';
    key = trim(line);
    if (*key == '\0')
        return 0;
    eq = strchr(key, '=');
    if (eq == NULL) {
        snprintf(why, whylen, "expected 'key = value', got '%s'", key);
        return -1;
    }
    *eq = '\0';
    key = trim(key);
    value = trim(eq + 1);

    if (strcmp(key, "max_conns") == 0) {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (*value < '0' || *value > '9' || *end != '\0' || errno || v > 1000000) {
            snprintf(why, whylen, "max_conns wants a number from 0 to 1000000, not '%s'",
                     value);
            return -1;
        }
        cfg->max_conns = v;
        return 0;
    }
    if (strcmp(key, "fault") == 0) {
#if FL_FAULT_HOOKS
        char err[FL_ERRLEN];
        if (fault_parse_points(&cfg->faults, value, FAULT_POINTS_SERVER, "echod", err,
                               sizeof err) < 0) {
            snprintf(why, whylen, "fault '%.60s': %.180s", value, err);
            return -1;
        }
        return 0;
#else
        snprintf(why, whylen, "fault: this build has no fault hooks");
        return -1;
#endif
    }
    snprintf(why, whylen, "unknown key '%s' (keys: max_conns, fault)", key);
    return -1;
}

int config_load(const char *path, long base_max_conns, const struct fault_set *base_faults,
                struct echod_config *cfg, char *err, size_t errlen)
{
    struct echod_config fresh = { .max_conns = base_max_conns, .faults = *base_faults };
    char line[1024], why[FL_ERRLEN];
    int lineno = 0, rc = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        err_fill(err, errlen, "open", path, errno);
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path,
                     lineno, sizeof line - 2);
            rc = -1;
            break;
        }
        if (parse_line(line, &fresh, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        err_fill(err, errlen, "read", path, errno);
        rc = -1;
    }
    fclose(f);
    if (rc == 0)
        *cfg = fresh;
    return rc;
}

void config_apply(struct echod_config *cfg, uint64_t seed)
{
#if FL_FAULT_HOOKS
    fault_seed(&cfg->faults, seed);
    fault_activate(&cfg->faults);
#else
    (void)cfg;
    (void)seed;
#endif
}
