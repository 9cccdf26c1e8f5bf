/*
 * libFuzzer target for the fault grammar (suite "fuzz", clang only):
 *
 *   meson test -C BUILD --suite fuzz
 *
 * Each input is a spec. The first byte picks how many rules the set holds
 * before the parse (0..16) and the error buffer's size for a second parse;
 * the rest, NUL-terminated, is the spec. Invariants:
 *   - fault_parse returns 0 or -1, and the same with a tiny error buffer;
 *   - on -1 the message starts with "position N: " with 1 <= N <= len + 1,
 *     and the set is byte for byte what it was;
 *   - on 0 the set grew by at least one rule, the old rules are untouched,
 *     and every new rule formats (untruncated) to text that parses back to
 *     one rule equal to it and formats to the same text again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

#define MAX_SPEC 4096

static void check(int ok, const char *what, const char *spec)
{
    if (!ok) {
        fprintf(stderr, "invariant broken: %s\nspec: '%s'\n", what, spec);
        abort();
    }
}

static int same_rule(const struct fault_rule *a, const struct fault_rule *b)
{
    return a->action == b->action && a->point == b->point && a->arg == b->arg &&
           a->conn == b->conn && a->nth == b->nth &&
           a->after_bytes == b->after_bytes && a->count == b->count &&
           a->prob == b->prob && a->seed == b->seed &&
           a->seed_given == b->seed_given;
}

static void prefill(struct fault_set *set, int n)
{
    char err[128];

    fault_set_init(set);
    for (int i = 0; i < n; i++)
        if (fault_parse(set, "delay=1ms@before_read,prob=0.5,seed=3", err, sizeof err) != 0)
            abort();
}

static void check_round_trip(const struct fault_rule *r, const char *spec)
{
    struct fault_set again;
    char text[FAULT_FORMAT_MAX], text2[FAULT_FORMAT_MAX], err[256];

    fault_format(r, text, sizeof text);
    check(strlen(text) < sizeof text - 1, "formatted rule fits FAULT_FORMAT_MAX", spec);
    fault_set_init(&again);
    if (fault_parse(&again, text, err, sizeof err) != 0) {
        fprintf(stderr, "formatted '%s' does not parse: %s\n", text, err);
        check(0, "formatted rule parses", spec);
    }
    check(again.n == 1, "formatted rule is one rule", spec);
    check(same_rule(r, &again.rules[0]), "formatted rule parses to the same rule", spec);
    fault_format(&again.rules[0], text2, sizeof text2);
    check(strcmp(text, text2) == 0, "formatting is stable", spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char spec[MAX_SPEC + 1];
    struct fault_set set, before, small;
    char err[512], tiny[48];
    size_t len, tinylen;
    int prior, rc, rc_small;
    unsigned long pos;

    if (size < 1 || size - 1 > MAX_SPEC)
        return 0;
    prior = data[0] % (FAULT_MAX_RULES + 1);
    tinylen = (size_t)(data[0] >> 3) % sizeof tiny;
    len = size - 1;
    memcpy(spec, data + 1, len);
    spec[len] = '\0';

    prefill(&set, prior);
    before = set;
    memset(err, 0x5a, sizeof err);
    rc = fault_parse(&set, spec, err, sizeof err);
    check(rc == 0 || rc == -1, "returns 0 or -1", spec);

    prefill(&small, prior);
    memset(tiny, 0x5a, sizeof tiny);
    rc_small = fault_parse(&small, spec, tiny, tinylen);
    check(rc_small == rc, "a small error buffer changes nothing", spec);
    check(tinylen == 0 || memchr(tiny, '\0', tinylen) != NULL,
          "the error buffer is NUL-terminated", spec);
    for (size_t i = tinylen; i < sizeof tiny; i++)
        check(tiny[i] == 0x5a, "nothing written past errlen", spec);

    if (rc < 0) {
        check(strncmp(err, "position ", 9) == 0, "error starts with 'position '", spec);
        pos = strtoul(err + 9, NULL, 10);
        check(pos >= 1 && pos <= len + 1, "position within the spec", spec);
        check(memcmp(&set, &before, sizeof set) == 0, "set unchanged on error", spec);
        return 0;
    }
    check(set.n > prior && set.n <= FAULT_MAX_RULES, "rules were added", spec);
    check(memcmp(set.rules, before.rules, (size_t)prior * sizeof set.rules[0]) == 0,
          "old rules untouched", spec);
    for (int i = prior; i < set.n; i++)
        check_round_trip(&set.rules[i], spec);
    return 0;
}
