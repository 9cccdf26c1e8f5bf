/*
 * The buffered line reader against a scripted read(2): each test lists the
 * results read() gives, in order, and checks what the caller sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_read.h"
#include "linereader.h"

static struct line_reader lr;

static int setup(void **state)
{
    line_reader_init(&lr, FAKE_FD);
    return 0;
}

static int teardown(void **state)
{
    fake_read_verify();
    return 0;
}

static void split_reads_assemble_one_line(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("hel"), READ_DATA("lo wo"), READ_DATA("rld\n"),
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 12);
    assert_string_equal(out, "hello world\n");
}

static void merged_read_serves_each_line_without_reading_again(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("one\ntwo\nthree\n"),
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 4);
    assert_string_equal(out, "one\n");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 4);
    assert_string_equal(out, "two\n");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 6);
    assert_string_equal(out, "three\n");
    assert_int_equal(fake_read_calls(), 1);
}

static void line_longer_than_out_comes_back_in_pieces(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("abcdefghijklmnop\n"),
    };
    char out[8]; /* room for 7 bytes and the NUL */

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 7);
    assert_string_equal(out, "abcdefg");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 7);
    assert_string_equal(out, "hijklmn");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 3);
    assert_string_equal(out, "op\n");
}

static void line_filling_out_exactly_leaves_newline_for_next_call(void **state)
{
    static const struct read_step reads[] = { READ_DATA("abc\n") };
    char out[4];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 1);
    assert_string_equal(out, "\n");
}

static void long_line_split_across_reads_comes_back_in_pieces(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("abcd"), READ_DATA("efgh"), READ_DATA("ij\n"),
    };
    char out[6];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 5);
    assert_string_equal(out, "abcde");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 5);
    assert_string_equal(out, "fghij");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 1);
    assert_string_equal(out, "\n");
}

static void last_line_without_newline_is_returned_at_eof(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ta"), READ_DATA("il"), READ_EOF, READ_EOF,
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 4);
    assert_string_equal(out, "tail");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 0);
}

static void eof_with_nothing_buffered_returns_zero_and_empty_string(void **state)
{
    static const struct read_step reads[] = { READ_EOF };
    char out[64];

    memset(out, 'X', sizeof out);
    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void eintr_mid_line_is_retried_without_losing_data(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("par"), READ_EINTR, READ_EINTR, READ_DATA("tial\n"),
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 8);
    assert_string_equal(out, "partial\n");
}

static void eintr_before_any_data_is_retried(void **state)
{
    static const struct read_step reads[] = {
        READ_EINTR, READ_DATA("x\n"),
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 2);
    assert_string_equal(out, "x\n");
}

static void readline_error_returns_minus_one_and_keeps_errno(void **state)
{
    static const struct read_step reads[] = { READ_FAIL(ECONNRESET) };
    char out[64];

    FAKE_READS(reads);
    errno = 0;
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), -1);
    assert_int_equal(errno, ECONNRESET);
}

static void readline_error_comes_after_the_lines_already_buffered(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("a\nb\n"), READ_FAIL(ECONNRESET),
    };
    char out[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 2);
    assert_string_equal(out, "a\n");
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 2);
    assert_string_equal(out, "b\n");
    errno = 0;
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), -1);
    assert_int_equal(errno, ECONNRESET);
}

static void reads_ask_for_the_whole_buffer(void **state)
{
    static const struct read_step reads[] = { READ_DATA("x\n") };
    char out[4];

    FAKE_READS(reads);
    line_reader_readline(&lr, out, sizeof out);
    assert_int_equal(fake_read_asked(0), LINE_READER_BUFSIZE);
}

static void buffered_is_zero_after_init_without_reading(void **state)
{
    fake_read_script(NULL, 0); /* any read() fails the test */
    assert_int_equal(line_reader_buffered(&lr), 0);
}

static void buffered_counts_bytes_left_after_each_line(void **state)
{
    static const struct read_step reads[] = { READ_DATA("ab\ncde\nf") };
    char out[64];

    FAKE_READS(reads);
    line_reader_readline(&lr, out, sizeof out);
    assert_int_equal(line_reader_buffered(&lr), 5);
    line_reader_readline(&lr, out, sizeof out);
    assert_int_equal(line_reader_buffered(&lr), 1);
}

static void buffered_counts_rest_of_a_line_cut_by_small_out(void **state)
{
    static const struct read_step reads[] = { READ_DATA("abcdef\n") };
    char out[3];

    FAKE_READS(reads);
    line_reader_readline(&lr, out, sizeof out);
    assert_int_equal(line_reader_buffered(&lr), 5);
}

static void buffered_is_zero_once_every_line_is_taken(void **state)
{
    static const struct read_step reads[] = { READ_DATA("ab\ncd\n") };
    char out[64];

    FAKE_READS(reads);
    line_reader_readline(&lr, out, sizeof out);
    line_reader_readline(&lr, out, sizeof out);
    assert_int_equal(line_reader_buffered(&lr), 0);
}

/* line_reader_read(), "raw" below: bytes with line boundaries ignored. */

static void raw_read_after_readline_returns_buffered_bytes_first(void **state)
{
    static const struct read_step reads[] = { READ_DATA("HEAD\nbody") };
    char line[64], raw[64];

    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, line, sizeof line), 5);
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), 4);
    assert_memory_equal(raw, "body", 4);
    assert_int_equal(fake_read_calls(), 1);
}

static void raw_read_takes_fresh_data_once_buffer_is_empty(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("HEAD\n"), READ_DATA("more"),
    };
    char line[64], raw[64];

    FAKE_READS(reads);
    line_reader_readline(&lr, line, sizeof line);
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), 4);
    assert_memory_equal(raw, "more", 4);
}

static void readline_after_short_read_continues_where_read_stopped(void **state)
{
    static const struct read_step reads[] = { READ_DATA("xyzline\nnext\n") };
    char line[64], raw[3];

    FAKE_READS(reads);
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), 3);
    assert_memory_equal(raw, "xyz", 3);
    assert_int_equal(line_reader_readline(&lr, line, sizeof line), 5);
    assert_string_equal(line, "line\n");
    assert_int_equal(line_reader_buffered(&lr), 5);
}

static void raw_read_returns_zero_at_eof(void **state)
{
    static const struct read_step reads[] = { READ_EOF };
    char raw[8];

    FAKE_READS(reads);
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), 0);
}

static void raw_read_retries_eintr(void **state)
{
    static const struct read_step reads[] = { READ_EINTR, READ_DATA("ok") };
    char raw[8];

    FAKE_READS(reads);
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), 2);
    assert_memory_equal(raw, "ok", 2);
}

static void raw_read_error_returns_minus_one_and_keeps_errno(void **state)
{
    static const struct read_step reads[] = { READ_FAIL(EBADF) };
    char raw[8];

    FAKE_READS(reads);
    errno = 0;
    assert_int_equal(line_reader_read(&lr, raw, sizeof raw), -1);
    assert_int_equal(errno, EBADF);
}

/* Regression: an error after a partial line used to leave out unterminated
 * and swallow the error; now the part is a string and the error follows. */
static void readline_error_after_partial_line_terminates_it(void **state)
{
    static const struct read_step reads[] = {
        READ_DATA("ab"), READ_FAIL(ECONNRESET),
    };
    char out[16];

    memset(out, 'X', sizeof out);
    FAKE_READS(reads);
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), 2);
    assert_int_equal(out[2], '\0');
    errno = 0;
    assert_int_equal(line_reader_readline(&lr, out, sizeof out), -1);
    assert_int_equal(errno, ECONNRESET);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(readline_error_after_partial_line_terminates_it),
        T(split_reads_assemble_one_line),
        T(merged_read_serves_each_line_without_reading_again),
        T(line_longer_than_out_comes_back_in_pieces),
        T(line_filling_out_exactly_leaves_newline_for_next_call),
        T(long_line_split_across_reads_comes_back_in_pieces),
        T(last_line_without_newline_is_returned_at_eof),
        T(eof_with_nothing_buffered_returns_zero_and_empty_string),
        T(eintr_mid_line_is_retried_without_losing_data),
        T(eintr_before_any_data_is_retried),
        T(readline_error_returns_minus_one_and_keeps_errno),
        T(readline_error_comes_after_the_lines_already_buffered),
        T(reads_ask_for_the_whole_buffer),
        T(buffered_is_zero_after_init_without_reading),
        T(buffered_counts_bytes_left_after_each_line),
        T(buffered_counts_rest_of_a_line_cut_by_small_out),
        T(buffered_is_zero_once_every_line_is_taken),
        T(raw_read_after_readline_returns_buffered_bytes_first),
        T(raw_read_takes_fresh_data_once_buffer_is_empty),
        T(readline_after_short_read_continues_where_read_stopped),
        T(raw_read_returns_zero_at_eof),
        T(raw_read_retries_eintr),
        T(raw_read_error_returns_minus_one_and_keeps_errno),
    };

    return cmocka_run_group_tests_name("linereader", tests, NULL, NULL);
}
