/*
 * The fault engine: the grammar (every action, point and filter parses and
 * formats back; every error names its position and leaves the set alone),
 * the decisions fault_check() makes (conn, nth, after_bytes, count,
 * prob with seeds), the actions it carries out itself (kill, abort, exit
 * and stall in forked children, delay here), and the "fault" event.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "eventlog.h"
#include "fault.h"

/* --- helpers --------------------------------------------------------------- */

static struct fault_set parse_ok(const char *spec)
{
    struct fault_set set;
    char err[256] = "";

    fault_set_init(&set);
    if (fault_parse(&set, spec, err, sizeof err) != 0)
        fail_msg("'%s' should parse, got: %s", spec, err);
    return set;
}

static void activate(const char *spec, uint64_t seed)
{
    struct fault_set set = parse_ok(spec);

    fault_seed(&set, seed);
    fault_activate(&set);
}

static struct fault_hit at(enum fault_point point, long conn, long long bytes)
{
    struct fault_ctx ctx = { conn, bytes, -1 };

    return fault_check(point, &ctx);
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/* --- round trips ----------------------------------------------------------- */

struct round_trip {
    const char *spec;
    const char *canonical; /* NULL: the spec itself */
};

static void assert_round_trip(const struct round_trip *c)
{
    struct fault_set set = parse_ok(c->spec), again;
    char text[FAULT_FORMAT_MAX], text2[FAULT_FORMAT_MAX];
    const char *want = c->canonical ? c->canonical : c->spec;

    assert_int_equal(set.n, 1);
    fault_format(&set.rules[0], text, sizeof text);
    assert_string_equal(text, want);
    again = parse_ok(text);
    fault_format(&again.rules[0], text2, sizeof text2);
    assert_string_equal(text2, want);
    assert_int_equal(again.rules[0].action, set.rules[0].action);
    assert_int_equal(again.rules[0].point, set.rules[0].point);
    assert_int_equal(again.rules[0].arg, set.rules[0].arg);
    assert_true(again.rules[0].prob == set.rules[0].prob);
}

static void every_action_round_trips(void **state)
{
    static const struct round_trip cases[] = {
        { "kill@after_read", NULL },
        { "abort@child_start", NULL },
        { "exit=0@accept", NULL },
        { "exit=255@before_write", NULL },
        { "delay=200ms@before_read", NULL },
        { "rst@before_close", NULL },
        { "close@accept", NULL },
        { "shutdown_wr@after_write", NULL },
        { "stall@connect", NULL },
        { "short=1@before_write", NULL },
        { "drop@after_read", NULL },
        { "fork_fail@accept", NULL },
        { "leak@accept", NULL },
        { "leak@before_close", NULL },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_round_trip(&cases[i]);
}

static void every_point_round_trips(void **state)
{
    static const char *const points[] = {
        "accept", "child_start", "before_read", "after_read",
        "before_write", "after_write", "before_close", "connect",
    };
    char spec[64];

    assert_int_equal(sizeof points / sizeof points[0], FP_COUNT);
    for (int i = 0; i < FP_COUNT; i++) {
        struct round_trip c = { spec, NULL };
        struct fault_set set;

        snprintf(spec, sizeof spec, "kill@%s", points[i]);
        assert_round_trip(&c);
        set = parse_ok(spec);
        assert_int_equal(set.rules[0].point, i);
        assert_string_equal(fault_point_name((enum fault_point)i), points[i]);
    }
}

static void every_filter_round_trips(void **state)
{
    static const struct round_trip cases[] = {
        { "kill@after_read,conn=2", NULL },
        { "kill@after_read,nth=3", NULL },
        { "kill@after_read,after_bytes=0", NULL },
        { "kill@after_read,after_bytes=4096", NULL },
        { "kill@after_read,count=4", NULL },
        { "kill@after_read,prob=0.3", NULL },
        { "kill@after_read,prob=0", NULL },
        { "kill@after_read,prob=0.000000000000001", NULL },
        { "kill@after_read,prob=0.999999999999999", NULL },
        { "kill@after_read,seed=7", NULL },
        { "kill@after_read,seed=18446744073709551615", NULL },
        { "short=1@before_write,prob=0.3,seed=7", NULL },
        { "kill@after_read,conn=1,nth=2,after_bytes=3,count=4,prob=0.5,seed=6", NULL },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_round_trip(&cases[i]);
}

static void formatting_is_canonical(void **state)
{
    static const struct round_trip cases[] = {
        /* filters in the grammar's order */
        { "kill@after_read,seed=6,prob=0.5,count=4,after_bytes=3,nth=2,conn=1",
          "kill@after_read,conn=1,nth=2,after_bytes=3,count=4,prob=0.5,seed=6" },
        /* defaults left out */
        { "kill@after_read,prob=1", "kill@after_read" },
        { "kill@after_read,prob=1.000", "kill@after_read" },
        { "kill@after_read,prob=0.50", "kill@after_read,prob=0.5" },
        { "kill@after_read,prob=000.25", "kill@after_read,prob=0.25" },
        { "kill@after_read,prob=0.0", "kill@after_read,prob=0" },
        /* the largest exact unit */
        { "delay=1000ms@before_read", "delay=1s@before_read" },
        { "delay=1500ms@before_read", NULL },
        { "delay=2000us@before_read", "delay=2ms@before_read" },
        { "delay=500us@before_read", NULL },
        { "delay=0ms@before_read", "delay=0s@before_read" },
        { "delay=86400s@before_read", NULL },
        { "exit=007@accept", "exit=7@accept" },
        { "kill@after_read,conn=0002", "kill@after_read,conn=2" },
        /* blanks around tokens */
        { " kill @ after_read , conn = 2 ", "kill@after_read,conn=2" },
        { "\tdelay =\n200ms\r@before_read", "delay=200ms@before_read" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_round_trip(&cases[i]);
}

static void parse_fills_every_field(void **state)
{
    struct fault_set set =
        parse_ok("short=3@before_write,conn=2,nth=4,after_bytes=5,count=6,prob=0.25,seed=9");
    const struct fault_rule *r = &set.rules[0];

    assert_int_equal(r->action, FA_SHORT);
    assert_int_equal(r->point, FP_BEFORE_WRITE);
    assert_int_equal(r->arg, 3);
    assert_int_equal(r->conn, 2);
    assert_int_equal(r->nth, 4);
    assert_int_equal(r->after_bytes, 5);
    assert_int_equal(r->count, 6);
    assert_true(r->prob == 0.25);
    assert_int_equal(r->seed, 9);
    assert_int_equal(r->seed_given, 1);
}

static void parse_leaves_defaults(void **state)
{
    struct fault_set set = parse_ok("rst@before_close");
    const struct fault_rule *r = &set.rules[0];

    assert_int_equal(r->conn, 0);
    assert_int_equal(r->nth, 0);
    assert_int_equal(r->after_bytes, -1);
    assert_int_equal(r->count, 0);
    assert_true(r->prob == 1.0);
    assert_int_equal(r->seed_given, 0);
}

static void delay_is_stored_in_microseconds(void **state)
{
    assert_int_equal(parse_ok("delay=500us@before_read").rules[0].arg, 500);
    assert_int_equal(parse_ok("delay=200ms@before_read").rules[0].arg, 200000);
    assert_int_equal(parse_ok("delay=2s@before_read").rules[0].arg, 2000000);
    assert_int_equal(parse_ok("delay=86400s@before_read").rules[0].arg, 86400000000LL);
}

static void several_faults_append_in_order(void **state)
{
    struct fault_set set = parse_ok("kill@accept; rst@before_close;drop@after_read");
    char err[128];

    assert_int_equal(set.n, 3);
    assert_int_equal(set.rules[0].action, FA_KILL);
    assert_int_equal(set.rules[1].action, FA_RST);
    assert_int_equal(set.rules[2].action, FA_DROP);
    assert_int_equal(fault_parse(&set, "leak@accept", err, sizeof err), 0);
    assert_int_equal(set.n, 4);
    assert_int_equal(set.rules[3].action, FA_LEAK);
}

static void sixteen_faults_fit(void **state)
{
    char spec[16 * 16] = "";
    struct fault_set set;

    for (int i = 0; i < FAULT_MAX_RULES; i++)
        strcat(spec, i ? ";kill@accept" : "kill@accept");
    set = parse_ok(spec);
    assert_int_equal(set.n, FAULT_MAX_RULES);
}

static void action_and_point_names(void **state)
{
    assert_string_equal(fault_action_name(FA_NONE), "none");
    assert_string_equal(fault_action_name(FA_SHUTDOWN_WR), "shutdown_wr");
    assert_string_equal(fault_action_name(FA_FORK_FAIL), "fork_fail");
    assert_string_equal(fault_action_name(FA_COUNT), "?");
    assert_string_equal(fault_point_name(FP_CONNECT), "connect");
    assert_string_equal(fault_point_name(FP_COUNT), "?");
}

static void format_truncates_to_the_buffer(void **state)
{
    struct fault_set set = parse_ok("delay=200ms@before_read,conn=3");
    char small[8];

    memset(small, 'x', sizeof small);
    fault_format(&set.rules[0], small, sizeof small);
    assert_string_equal(small, "delay=2");
    fault_format(&set.rules[0], small, 0); /* writes nothing */
    assert_string_equal(small, "delay=2");
}

/* --- errors ---------------------------------------------------------------- */

struct parse_error {
    const char *spec;
    const char *message;
};

#define ACTIONS "(actions: kill, abort, exit=N, delay=T, rst, close, shutdown_wr, " \
                "stall, short=N, drop, fork_fail, leak)"
#define POINTS "(points: accept, child_start, before_read, after_read, " \
               "before_write, after_write, before_close, connect)"
#define FILTERS "(filters: conn=N, nth=N, after_bytes=N, count=N, prob=P, seed=S)"

static const struct parse_error errors[] = {
    /* the shape */
    { "", "position 1: no fault given (write ACTION@POINT, as in kill@after_read)" },
    { "   ", "position 4: no fault given (write ACTION@POINT, as in kill@after_read)" },
    { "kill", "position 5: expected '@' after the action" },
    { "kill after_read", "position 6: expected '@' after the action" },
    { "kill@", "position 6: expected a point after '@', not the end " POINTS },
    { "kill@,conn=1", "position 6: expected a point after '@', not ',' " POINTS },
    { "@accept", "position 1: expected an action, not '@' " ACTIONS },
    { "kill@accept;", "position 13: expected a fault after ';'" },
    { "kill@accept;;rst@accept", "position 13: expected a fault after ';'" },
    { ";kill@accept", "position 1: expected an action, not ';' " ACTIONS },
    { "kill@accept rst@accept", "position 13: expected ',' or ';' after the point, not 'rst'" },
    { "kill@accept@accept", "position 12: expected ',' or ';' after the point, not '@'" },
    { "kill@accept,conn=1 x", "position 20: expected ',' or ';' after a filter, not 'x'" },
    { "kill@accept,prob=0.5=1", "position 21: expected ',' or ';' after a filter, not '='" },
    { "kill@accept,", "position 13: expected a filter after ',', not the end " FILTERS },
    /* names */
    { "kil@accept", "position 1: unknown action 'kil' " ACTIONS },
    { "KILL@accept", "position 1: unknown action 'KILL' " ACTIONS },
    { "none@accept", "position 1: unknown action 'none' " ACTIONS },
    { "kill@acept", "position 6: unknown point 'acept' " POINTS },
    { "rst@before_close;kill@nowhere", "position 23: unknown point 'nowhere' " POINTS },
    { "kill@accept,con=2", "position 13: unknown filter 'con' " FILTERS },
    { "kill@\001x", "position 6: unknown point '?x' " POINTS },
    { "kill@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "position 6: unknown point 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' " POINTS },
    /* action arguments */
    { "kill=1@accept", "position 5: kill takes no value" },
    { "rst =1@accept", "position 5: rst takes no value" },
    { "exit@accept", "position 1: exit needs a value: exit=N, N from 0 to 255" },
    { "exit=@accept", "position 6: exit needs a value after '=': exit=N, N from 0 to 255" },
    { "exit=256@accept", "position 6: exit wants a whole number from 0 to 255, not '256'" },
    { "exit=-1@accept", "position 6: exit wants a whole number from 0 to 255, not '-1'" },
    { "exit=99999999999999999999@accept",
      "position 6: exit wants a whole number from 0 to 255, not '99999999999999999999'" },
    { "short@before_write", "position 1: short needs a value: short=N, N >= 1" },
    { "short=0@before_write", "position 7: short wants a whole number >= 1, not '0'" },
    { "short=x@before_write", "position 7: short wants a whole number >= 1, not 'x'" },
    { "short=+1@before_write", "position 7: short wants a whole number >= 1, not '+1'" },
    { "short=9223372036854775808@before_write",
      "position 7: short is too large: '9223372036854775808' (at most 9223372036854775807)" },
    { "delay@before_read", "position 1: delay needs a value: delay=T, as in delay=200ms" },
    { "delay=200@before_read", "position 7: delay needs a unit: us, ms or s" },
    { "delay=200 ms@before_read", "position 7: delay needs a unit: us, ms or s" },
    { "delay=200m@before_read",
      "position 7: delay wants a time such as 500us, 200ms or 2s, not '200m'" },
    { "delay=1.5s@before_read",
      "position 7: delay wants a time such as 500us, 200ms or 2s, not '1.5s'" },
    { "delay=ms@before_read",
      "position 7: delay wants a time such as 500us, 200ms or 2s, not 'ms'" },
    { "delay=86401s@before_read", "position 7: delay is too long: '86401s' (at most 86400s)" },
    { "delay=99999999999999999999us@before_read",
      "position 7: delay is too long: '99999999999999999999us' (at most 86400s)" },
    /* filters */
    { "kill@accept,conn=x", "position 18: conn wants a whole number >= 1, not 'x'" },
    { "kill@accept,conn=0", "position 18: conn wants a whole number >= 1, not '0'" },
    { "kill@accept,conn=", "position 18: conn wants a whole number >= 1, not the end" },
    { "kill@accept,conn", "position 13: conn needs a value: conn=N" },
    { "kill@accept,conn=1,conn=2", "position 20: conn given twice in one fault" },
    { "kill@accept,conn=9223372036854775808",
      "position 18: conn is too large: '9223372036854775808' (at most 9223372036854775807)" },
    { "kill@accept,nth=0", "position 17: nth wants a whole number >= 1, not '0'" },
    { "kill@accept,count=0", "position 19: count wants a whole number >= 1, not '0'" },
    { "kill@accept,after_bytes=-1",
      "position 25: after_bytes wants a whole number >= 0, not '-1'" },
    { "kill@accept,prob=1.5", "position 18: prob wants a decimal from 0 to 1, not '1.5'" },
    { "kill@accept,prob=2", "position 18: prob wants a decimal from 0 to 1, not '2'" },
    { "kill@accept,prob=.5", "position 18: prob wants a decimal from 0 to 1, not '.5'" },
    { "kill@accept,prob=0.", "position 18: prob wants a decimal from 0 to 1, not '0.'" },
    { "kill@accept,prob=1e-3", "position 18: prob wants a decimal from 0 to 1, not '1e-3'" },
    { "kill@accept,prob=nan", "position 18: prob wants a decimal from 0 to 1, not 'nan'" },
    { "kill@accept,prob=-0", "position 18: prob wants a decimal from 0 to 1, not '-0'" },
    { "kill@accept,prob=0.1234567890123456",
      "position 18: prob takes at most 15 decimals, not '0.1234567890123456'" },
    { "kill@accept,prob", "position 13: prob needs a value: prob=P" },
    { "kill@accept,seed=x",
      "position 18: seed wants a whole number from 0 to 18446744073709551615, not 'x'" },
    { "kill@accept,seed=18446744073709551616",
      "position 18: seed wants a whole number from 0 to 18446744073709551615, "
      "not '18446744073709551616'" },
    /* pairs that make no sense */
    { "fork_fail@before_read", "position 11: fork_fail does not apply at before_read (only at accept)" },
    { "short=1@after_read", "position 9: short does not apply at after_read (only at before_write)" },
    { "drop@before_read", "position 6: drop does not apply at before_read (only at after_read)" },
    { "leak@after_write",
      "position 6: leak does not apply at after_write (only at accept or before_close)" },
    { "shutdown_wr@accept",
      "position 13: shutdown_wr does not apply at accept (only at child_start, before_read, "
      "after_read, before_write, after_write, before_close or connect)" },
};

static void every_error_names_its_position(void **state)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        struct fault_set set = parse_ok("rst@before_close,prob=0.5"), before = set;
        char err[512] = "";

        if (fault_parse(&set, errors[i].spec, err, sizeof err) != -1)
            fail_msg("'%s' should be refused", errors[i].spec);
        if (strcmp(err, errors[i].message) != 0)
            fail_msg("'%s':\n  got  %s\n  want %s", errors[i].spec, err, errors[i].message);
        assert_memory_equal(&set, &before, sizeof set);
    }
}

static void too_many_faults_in_one_spec(void **state)
{
    char spec[17 * 16] = "", err[128];
    struct fault_set set, before;

    for (int i = 0; i < FAULT_MAX_RULES + 1; i++)
        strcat(spec, i ? ";kill@accept" : "kill@accept");
    fault_set_init(&set);
    before = set;
    assert_int_equal(fault_parse(&set, spec, err, sizeof err), -1);
    /* the 17th starts after 16 x "kill@accept;" */
    assert_string_equal(err, "position 193: too many faults (at most 16)");
    assert_memory_equal(&set, &before, sizeof set);
}

static void too_many_faults_across_specs(void **state)
{
    char spec[16 * 16] = "", err[128];
    struct fault_set set, before;

    for (int i = 0; i < FAULT_MAX_RULES - 1; i++)
        strcat(spec, i ? ";kill@accept" : "kill@accept");
    set = parse_ok(spec);
    before = set;
    assert_int_equal(fault_parse(&set, "rst@accept; close@accept", err, sizeof err), -1);
    assert_string_equal(err, "position 13: too many faults (at most 16)");
    assert_memory_equal(&set, &before, sizeof set);
}

static void a_later_error_keeps_the_earlier_faults_out(void **state)
{
    struct fault_set set, before;
    char err[128];

    fault_set_init(&set);
    before = set;
    assert_int_equal(fault_parse(&set, "kill@accept;rst@before_close;drop@nowhere", err,
                                 sizeof err), -1);
    assert_int_equal(set.n, 0);
    assert_memory_equal(&set, &before, sizeof set);
}

static void a_small_error_buffer_is_cut_and_terminated(void **state)
{
    struct fault_set set;
    char err[16];

    memset(err, 'x', sizeof err);
    fault_set_init(&set);
    assert_int_equal(fault_parse(&set, "kil@accept", err, 12), -1);
    assert_string_equal(err, "position 1:");
    assert_int_equal(err[12], 'x');
    assert_int_equal(fault_parse(&set, "kil@accept", NULL, 0), -1);
}

static void points_outside_the_program_are_refused(void **state)
{
    struct fault_set set, before;
    char err[256];

    fault_set_init(&set);
    before = set;
    assert_int_equal(fault_parse_points(&set, "rst@after_read;fork_fail@accept",
                                        FAULT_POINTS_CLIENT, "echoc", err, sizeof err), -1);
    assert_string_equal(err, "position 26: echoc never reaches accept (its points: "
                             "before_read, after_read, before_write, after_write, "
                             "before_close or connect)");
    assert_memory_equal(&set, &before, sizeof set);
    assert_int_equal(fault_parse_points(&set, "kill@connect", FAULT_POINTS_SERVER, "echod",
                                        err, sizeof err), -1);
    assert_string_equal(err, "position 6: echod never reaches connect (its points: accept, "
                             "child_start, before_read, after_read, before_write, "
                             "after_write or before_close)");
    assert_int_equal(fault_parse_points(&set, "kill@connect", FAULT_POINTS_CLIENT, "echoc",
                                        err, sizeof err), 0);
    assert_int_equal(set.n, 1);
}

/* --- seeds ----------------------------------------------------------------- */

static void seed_fills_rules_without_their_own(void **state)
{
    struct fault_set set = parse_ok("kill@accept,prob=0.5;kill@accept,prob=0.5,seed=3");

    assert_int_equal(fault_seed(&set, 99), 99);
    assert_int_equal(set.rules[0].seed, 99);
    assert_int_equal(set.rules[0].seed_given, 0);
    assert_int_equal(set.rules[1].seed, 3);
    assert_int_equal(set.rules[1].seed_given, 1);
}

static void seed_default_prefers_a_given_seed(void **state)
{
    struct fault_set set = parse_ok("kill@accept,prob=0.5;rst@accept,seed=42");
    int announce = -1;

    assert_int_equal(fault_seed_default(&set, 7, &announce), 42);
    assert_int_equal(announce, 0);
    assert_int_equal(set.rules[0].seed, 42);
}

static void seed_default_announces_only_with_prob(void **state)
{
    struct fault_set with = parse_ok("kill@accept,prob=0.5");
    struct fault_set without = parse_ok("kill@accept");
    int announce = -1;

    assert_int_equal(fault_seed_default(&with, 7, &announce), 7);
    assert_int_equal(announce, 1);
    assert_int_equal(fault_seed_default(&without, 7, &announce), 7);
    assert_int_equal(announce, 0);
    assert_int_equal(fault_uses_prob(&with), 1);
    assert_int_equal(fault_uses_prob(&without), 0);
}

/* --- decisions ------------------------------------------------------------- */

static int teardown_active(void **state)
{
    struct fault_set empty;

    fault_set_init(&empty);
    fault_activate(&empty);
    return 0;
}

static void nothing_active_means_nothing(void **state)
{
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(fault_check(FP_ACCEPT, NULL).action, FA_NONE);
}

/* The idle path: no rule, no bit, and FAULT_HOOK() never reaches the
 * engine (which would count the hit). */
static void armed_points_name_the_points_of_the_active_rules(void **state)
{
    struct fault_ctx ctx = { 1, 0, -1 };

    assert_int_equal(fault_armed_points, 0);
    assert_false(FAULT_ARMED());
    activate("rst@before_read,nth=2;delay=1us@after_write", 1);
    assert_int_equal(fault_armed_points,
                     FAULT_POINT_BIT(FP_BEFORE_READ) | FAULT_POINT_BIT(FP_AFTER_WRITE));
    assert_true(FAULT_ARMED());
    assert_int_equal(FAULT_HOOK(FP_AFTER_READ, &ctx).action, FA_NONE);
    assert_int_equal(FAULT_HOOK(FP_BEFORE_READ, &ctx).action, FA_NONE);
    assert_int_equal(fault_active()->rules[0].hits, 1);
    assert_int_equal(FAULT_HOOK(FP_BEFORE_READ, &ctx).action, FA_RST);
    teardown_active(state);
    assert_int_equal(fault_armed_points, 0);
}

static void a_rule_fires_only_at_its_point(void **state)
{
    activate("rst@before_read", 1);
    assert_int_equal(at(FP_AFTER_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_WRITE, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_RST);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_RST);
}

static void caller_actions_come_back_with_their_arg(void **state)
{
    struct fault_hit hit;

    activate("short=7@before_write;drop@after_read;fork_fail@accept;leak@before_close;"
             "close@after_write;shutdown_wr@child_start", 1);
    hit = at(FP_BEFORE_WRITE, 1, 0);
    assert_int_equal(hit.action, FA_SHORT);
    assert_int_equal(hit.arg, 7);
    assert_int_equal(at(FP_AFTER_READ, 1, 0).action, FA_DROP);
    assert_int_equal(fault_check(FP_ACCEPT, NULL).action, FA_FORK_FAIL);
    assert_int_equal(at(FP_BEFORE_CLOSE, 1, 0).action, FA_LEAK);
    assert_int_equal(at(FP_AFTER_WRITE, 1, 0).action, FA_CLOSE);
    assert_int_equal(at(FP_CHILD_START, 1, 0).action, FA_SHUTDOWN_WR);
}

static void conn_picks_one_connection(void **state)
{
    activate("rst@before_read,conn=2", 1);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 3, 0).action, FA_NONE);
    assert_int_equal(fault_check(FP_BEFORE_READ, NULL).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 2, 0).action, FA_RST);
}

static void nth_fires_on_the_nth_hit_only(void **state)
{
    activate("close@after_write,nth=3", 1);
    assert_int_equal(at(FP_AFTER_WRITE, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_AFTER_WRITE, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_AFTER_WRITE, 1, 0).action, FA_CLOSE);
    for (int i = 0; i < 10; i++)
        assert_int_equal(at(FP_AFTER_WRITE, 1, 0).action, FA_NONE);
}

static void nth_counts_only_hits_that_pass_conn(void **state)
{
    activate("rst@before_read,conn=2,nth=2", 1);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 2, 0).action, FA_NONE); /* hit 1 */
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 2, 0).action, FA_RST); /* hit 2 */
    assert_int_equal(fault_active()->rules[0].hits, 2);
}

static void after_bytes_waits_for_the_count(void **state)
{
    activate("drop@after_read,after_bytes=100", 1);
    assert_int_equal(at(FP_AFTER_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_AFTER_READ, 1, 99).action, FA_NONE);
    assert_int_equal(at(FP_AFTER_READ, 1, 100).action, FA_DROP);
    assert_int_equal(at(FP_AFTER_READ, 1, 5000).action, FA_DROP);
    assert_int_equal(fault_active()->rules[0].hits, 2);
}

static void after_bytes_then_nth(void **state)
{
    activate("drop@after_read,after_bytes=10,nth=2", 1);
    assert_int_equal(at(FP_AFTER_READ, 1, 5).action, FA_NONE);
    assert_int_equal(at(FP_AFTER_READ, 1, 10).action, FA_NONE); /* hit 1 */
    assert_int_equal(at(FP_AFTER_READ, 1, 20).action, FA_DROP);  /* hit 2 */
}

static void count_caps_the_firings(void **state)
{
    activate("rst@before_read,count=2", 1);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_RST);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_RST);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_int_equal(fault_active()->rules[0].fired, 2);
}

static void prob_zero_never_fires(void **state)
{
    activate("rst@before_read,prob=0", 1);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
}

/* 64 decisions of one prob rule, as bits. */
static uint64_t decisions(const char *spec, uint64_t seed, long conn)
{
    uint64_t bits = 0;

    activate(spec, seed);
    for (int i = 0; i < 64; i++)
        if (at(FP_BEFORE_WRITE, conn, 0).action == FA_SHORT)
            bits |= 1ULL << i;
    return bits;
}

static void same_seed_same_decisions(void **state)
{
    uint64_t a = decisions("short=1@before_write,prob=0.5", 7, 1);
    uint64_t b = decisions("short=1@before_write,prob=0.5", 7, 1);
    int fired = __builtin_popcountll(a);

    assert_true(a == b);
    assert_in_range(fired, 16, 48); /* about half */
}

static void different_seed_different_decisions(void **state)
{
    uint64_t a = decisions("short=1@before_write,prob=0.5", 7, 1);
    uint64_t b = decisions("short=1@before_write,prob=0.5", 8, 1);

    assert_true(a != b);
}

static void a_rules_own_seed_wins_over_the_process_seed(void **state)
{
    uint64_t a = decisions("short=1@before_write,prob=0.5,seed=5", 1, 1);
    uint64_t b = decisions("short=1@before_write,prob=0.5,seed=5", 2, 1);

    assert_true(a == b);
}

static void adding_the_announced_seed_replays_the_run(void **state)
{
    /* run 1: no seed given, the program picks 12345 and announces it */
    struct fault_set set = parse_ok("short=1@before_write,prob=0.3");
    uint64_t first = 0, replay = 0;
    int announce;

    fault_seed_default(&set, 12345, &announce);
    assert_int_equal(announce, 1);
    fault_activate(&set);
    for (int i = 0; i < 64; i++)
        if (at(FP_BEFORE_WRITE, 1, 0).action == FA_SHORT)
            first |= 1ULL << i;
    /* run 2: the user adds seed=12345; any fallback is then ignored */
    set = parse_ok("short=1@before_write,prob=0.3,seed=12345");
    fault_seed_default(&set, 999, &announce);
    assert_int_equal(announce, 0);
    fault_activate(&set);
    for (int i = 0; i < 64; i++)
        if (at(FP_BEFORE_WRITE, 1, 0).action == FA_SHORT)
            replay |= 1ULL << i;
    assert_true(first == replay);
}

static void connections_draw_independently(void **state)
{
    uint64_t a = decisions("short=1@before_write,prob=0.5", 7, 1);
    uint64_t b = decisions("short=1@before_write,prob=0.5", 7, 2);

    assert_true(a != b);
}

static void prob_is_drawn_after_count(void **state)
{
    /* The filters run in order: once count is spent, prob draws no more,
     * so a spent rule leaves its stream where it was. */
    struct fault_rule spent;

    activate("short=1@before_write,prob=0.999999999999999,count=1", 3);
    assert_int_equal(at(FP_BEFORE_WRITE, 1, 0).action, FA_SHORT);
    spent = fault_active()->rules[0];
    assert_int_equal(at(FP_BEFORE_WRITE, 1, 0).action, FA_NONE);
    assert_true(fault_active()->rules[0].rng == spent.rng);
}

static void the_first_caller_action_stops_evaluation(void **state)
{
    struct fault_hit hit;

    activate("rst@before_read;close@before_read", 1);
    hit = at(FP_BEFORE_READ, 1, 0);
    assert_int_equal(hit.action, FA_RST);
    assert_int_equal(fault_active()->rules[1].hits, 0);
}

static void a_delay_goes_on_to_the_next_rule(void **state)
{
    double t0 = now_seconds();
    struct fault_hit hit;

    activate("delay=20ms@before_write;short=5@before_write", 1);
    hit = at(FP_BEFORE_WRITE, 1, 0);
    assert_true(now_seconds() - t0 >= 0.020);
    assert_int_equal(hit.action, FA_SHORT);
    assert_int_equal(hit.arg, 5);
}

static void delay_sleeps_the_whole_time(void **state)
{
    double t0 = now_seconds();

    activate("delay=30ms@before_read", 1);
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    assert_true(now_seconds() - t0 >= 0.030);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    alarms++;
}

static void delay_resumes_after_a_signal(void **state)
{
    struct sigaction sa = { .sa_handler = on_alarm }, old;
    struct itimerval every_5ms = { { 0, 5000 }, { 0, 5000 } }, off = { { 0, 0 }, { 0, 0 } };
    double t0, elapsed;

    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the sleep sees EINTR */
    sigaction(SIGALRM, &sa, &old);
    alarms = 0;
    activate("delay=60ms@before_read", 1);
    setitimer(ITIMER_REAL, &every_5ms, NULL);
    t0 = now_seconds();
    assert_int_equal(at(FP_BEFORE_READ, 1, 0).action, FA_NONE);
    elapsed = now_seconds() - t0;
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    assert_true(alarms >= 2);
    assert_true(elapsed >= 0.060);
}

/* --- process-level actions, in forked children ------------------------------ */

static volatile sig_atomic_t usr1_seen;
static void on_usr1(int sig)
{
    usr1_seen = 1;
}

/* Fork a child that activates spec and reaches point; returns its pid. */
static pid_t child_at(const char *spec, enum fault_point point)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        struct sigaction sa = { .sa_handler = on_usr1 };

        setrlimit(RLIMIT_CORE, &no_core); /* abort() dumps nothing */
        signal(SIGABRT, SIG_DFL);
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
        activate(spec, 1);
        (void)at(point, 1, 0);
        _exit(100); /* the fault did not end us */
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

static void kill_dies_by_sigkill(void **state)
{
    int status = wait_status(child_at("kill@after_read", FP_AFTER_READ));

    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void abort_dies_by_sigabrt(void **state)
{
    int status = wait_status(child_at("abort@child_start", FP_CHILD_START));

    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void exit_exits_with_its_status(void **state)
{
    int status = wait_status(child_at("exit=7@before_close", FP_BEFORE_CLOSE));

    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
}

static void a_rule_that_does_not_fire_lets_the_child_go_on(void **state)
{
    int status = wait_status(child_at("kill@after_read,conn=2", FP_AFTER_READ));

    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 100);
}

/* Poll for 300 ms that pid stays alive. */
static void assert_stays_alive(pid_t pid)
{
    for (int i = 0; i < 30; i++) {
        int status;
        struct timespec ten_ms = { 0, 10 * 1000 * 1000 };

        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
        nanosleep(&ten_ms, NULL);
    }
}

static void stall_blocks_until_killed(void **state)
{
    pid_t pid = child_at("stall@before_write", FP_BEFORE_WRITE);
    int status;

    assert_stays_alive(pid);
    kill(pid, SIGUSR1); /* handled: the child stalls on */
    assert_stays_alive(pid);
    kill(pid, SIGKILL);
    status = wait_status(pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* --- events ---------------------------------------------------------------- */

static char tmpdir[] = "/tmp/fl-fault-test-XXXXXX";
static char log_path[PATH_MAX];

static int events_setup(void **state)
{
    char err[256];

    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(log_path, sizeof log_path, "%s/events.log", tmpdir);
    return event_log_open(log_path, err, sizeof err);
}

static int events_teardown(void **state)
{
    event_log_close();
    unlink(log_path);
    return rmdir(tmpdir);
}

static size_t slurp(char *buf, size_t size)
{
    FILE *f = fopen(log_path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static void a_firing_rule_is_an_event(void **state)
{
    char text[4096];

    assert_int_equal(truncate(log_path, 0), 0);
    activate("rst@before_read,conn=2;short=3@before_write;delay=1ms@after_write", 1);
    (void)at(FP_BEFORE_READ, 1, 0); /* no event: conn 1 */
    (void)at(FP_BEFORE_READ, 2, 0);
    (void)at(FP_BEFORE_WRITE, 2, 0);
    (void)at(FP_AFTER_WRITE, 2, 0);
    slurp(text, sizeof text);
    assert_non_null(strstr(text, "\"event\":\"fault\",\"action\":\"rst\",\"point\":\"before_read\","
                                 "\"conn\":2,\"rule\":0,\"hit\":1}\n"));
    assert_non_null(strstr(text, "\"event\":\"fault\",\"action\":\"short\",\"point\":\"before_write\","
                                 "\"conn\":2,\"arg\":3,\"rule\":1,\"hit\":1}\n"));
    assert_non_null(strstr(text, "\"event\":\"fault\",\"action\":\"delay\",\"point\":\"after_write\","
                                 "\"conn\":2,\"arg\":1000,\"rule\":2,\"hit\":1}\n"));
    /* three lines, one per firing */
    assert_non_null(strchr(text, '\n'));
    assert_int_equal(text[strlen(text) - 1], '\n');
    {
        int lines = 0;
        for (char *p = text; *p; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 3);
    }
}

static void a_fatal_fault_is_logged_before_it_strikes(void **state)
{
    char text[4096];
    int status;

    assert_int_equal(truncate(log_path, 0), 0);
    status = wait_status(child_at("exit=3@after_read", FP_AFTER_READ));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 3);
    slurp(text, sizeof text);
    assert_non_null(strstr(text, "\"action\":\"exit\",\"point\":\"after_read\",\"conn\":1,"
                                 "\"arg\":3,\"rule\":0,\"hit\":1}\n"));
}

int main(void)
{
    const struct CMUnitTest grammar[] = {
        cmocka_unit_test(every_action_round_trips),
        cmocka_unit_test(every_point_round_trips),
        cmocka_unit_test(every_filter_round_trips),
        cmocka_unit_test(formatting_is_canonical),
        cmocka_unit_test(parse_fills_every_field),
        cmocka_unit_test(parse_leaves_defaults),
        cmocka_unit_test(delay_is_stored_in_microseconds),
        cmocka_unit_test(several_faults_append_in_order),
        cmocka_unit_test(sixteen_faults_fit),
        cmocka_unit_test(action_and_point_names),
        cmocka_unit_test(format_truncates_to_the_buffer),
        cmocka_unit_test(every_error_names_its_position),
        cmocka_unit_test(too_many_faults_in_one_spec),
        cmocka_unit_test(too_many_faults_across_specs),
        cmocka_unit_test(a_later_error_keeps_the_earlier_faults_out),
        cmocka_unit_test(a_small_error_buffer_is_cut_and_terminated),
        cmocka_unit_test(points_outside_the_program_are_refused),
        cmocka_unit_test(seed_fills_rules_without_their_own),
        cmocka_unit_test(seed_default_prefers_a_given_seed),
        cmocka_unit_test(seed_default_announces_only_with_prob),
    };
    const struct CMUnitTest decisions_tests[] = {
        cmocka_unit_test_teardown(nothing_active_means_nothing, teardown_active),
        cmocka_unit_test_teardown(armed_points_name_the_points_of_the_active_rules,
                                  teardown_active),
        cmocka_unit_test_teardown(a_rule_fires_only_at_its_point, teardown_active),
        cmocka_unit_test_teardown(caller_actions_come_back_with_their_arg, teardown_active),
        cmocka_unit_test_teardown(conn_picks_one_connection, teardown_active),
        cmocka_unit_test_teardown(nth_fires_on_the_nth_hit_only, teardown_active),
        cmocka_unit_test_teardown(nth_counts_only_hits_that_pass_conn, teardown_active),
        cmocka_unit_test_teardown(after_bytes_waits_for_the_count, teardown_active),
        cmocka_unit_test_teardown(after_bytes_then_nth, teardown_active),
        cmocka_unit_test_teardown(count_caps_the_firings, teardown_active),
        cmocka_unit_test_teardown(prob_zero_never_fires, teardown_active),
        cmocka_unit_test_teardown(same_seed_same_decisions, teardown_active),
        cmocka_unit_test_teardown(different_seed_different_decisions, teardown_active),
        cmocka_unit_test_teardown(a_rules_own_seed_wins_over_the_process_seed, teardown_active),
        cmocka_unit_test_teardown(adding_the_announced_seed_replays_the_run, teardown_active),
        cmocka_unit_test_teardown(connections_draw_independently, teardown_active),
        cmocka_unit_test_teardown(prob_is_drawn_after_count, teardown_active),
        cmocka_unit_test_teardown(the_first_caller_action_stops_evaluation, teardown_active),
        cmocka_unit_test_teardown(a_delay_goes_on_to_the_next_rule, teardown_active),
        cmocka_unit_test_teardown(delay_sleeps_the_whole_time, teardown_active),
        cmocka_unit_test_teardown(delay_resumes_after_a_signal, teardown_active),
        cmocka_unit_test(kill_dies_by_sigkill),
        cmocka_unit_test(abort_dies_by_sigabrt),
        cmocka_unit_test(exit_exits_with_its_status),
        cmocka_unit_test(a_rule_that_does_not_fire_lets_the_child_go_on),
        cmocka_unit_test(stall_blocks_until_killed),
    };
    const struct CMUnitTest events[] = {
        cmocka_unit_test_teardown(a_firing_rule_is_an_event, teardown_active),
        cmocka_unit_test_teardown(a_fatal_fault_is_logged_before_it_strikes, teardown_active),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("fault grammar", grammar, NULL, NULL);
    failed += cmocka_run_group_tests_name("fault decisions", decisions_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("fault events", events, events_setup,
                                          events_teardown);
    return failed;
}
