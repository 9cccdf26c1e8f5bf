/* parse_port and addr_format: pure functions, no sockets opened. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "net.h"

static void parse_port_accepts_zero(void **state)
{
    assert_int_equal(parse_port("0"), 0);
}

static void parse_port_accepts_65535(void **state)
{
    assert_int_equal(parse_port("65535"), 65535);
}

static void parse_port_accepts_a_common_port(void **state)
{
    assert_int_equal(parse_port("8080"), 8080);
}

static void parse_port_rejects_minus_one(void **state)
{
    assert_int_equal(parse_port("-1"), -1);
}

static void parse_port_rejects_a_negative_number(void **state)
{
    assert_int_equal(parse_port("-80"), -1);
}

static void parse_port_rejects_65536(void **state)
{
    assert_int_equal(parse_port("65536"), -1);
}

static void parse_port_rejects_a_number_beyond_long(void **state)
{
    assert_int_equal(parse_port("99999999999999999999999"), -1);
}

static void parse_port_rejects_empty_text(void **state)
{
    assert_int_equal(parse_port(""), -1);
}

static void parse_port_rejects_trailing_garbage(void **state)
{
    assert_int_equal(parse_port("12a"), -1);
}

static void parse_port_rejects_null(void **state)
{
    assert_int_equal(parse_port(NULL), -1);
}

static void addr_format_ipv4_as_address_colon_port(void **state)
{
    struct sockaddr_in in;
    char out[ADDR_TEXT_MAX];

    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &in.sin_addr), 1);
    addr_format((struct sockaddr *)&in, sizeof in, out, sizeof out);
    assert_string_equal(out, "127.0.0.1:40000");
}

static void addr_format_ipv6_in_brackets(void **state)
{
    struct sockaddr_in6 in6;
    char out[ADDR_TEXT_MAX];

    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(8080);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr), 1);
    addr_format((struct sockaddr *)&in6, sizeof in6, out, sizeof out);
    assert_string_equal(out, "[2001:db8::1]:8080");
}

static void addr_format_longest_ipv6_fits_addr_text_max(void **state)
{
    static const char host[] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    struct sockaddr_in6 in6;
    char out[ADDR_TEXT_MAX];

    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(65535);
    assert_int_equal(inet_pton(AF_INET6, host, &in6.sin6_addr), 1);
    addr_format((struct sockaddr *)&in6, sizeof in6, out, sizeof out);
    assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void addr_format_names_an_unknown_family(void **state)
{
    struct sockaddr_un un;
    char out[ADDR_TEXT_MAX];

    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    addr_format((struct sockaddr *)&un, sizeof un, out, sizeof out);
    assert_string_equal(out, "family-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_port_accepts_zero),
        cmocka_unit_test(parse_port_accepts_65535),
        cmocka_unit_test(parse_port_accepts_a_common_port),
        cmocka_unit_test(parse_port_rejects_minus_one),
        cmocka_unit_test(parse_port_rejects_a_negative_number),
        cmocka_unit_test(parse_port_rejects_65536),
        cmocka_unit_test(parse_port_rejects_a_number_beyond_long),
        cmocka_unit_test(parse_port_rejects_empty_text),
        cmocka_unit_test(parse_port_rejects_trailing_garbage),
        cmocka_unit_test(parse_port_rejects_null),
        cmocka_unit_test(addr_format_ipv4_as_address_colon_port),
        cmocka_unit_test(addr_format_ipv6_in_brackets),
        cmocka_unit_test(addr_format_longest_ipv6_fits_addr_text_max),
        cmocka_unit_test(addr_format_names_an_unknown_family),
    };

    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
