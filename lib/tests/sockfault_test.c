/*
 * sock_fault_apply on real TCP connections over loopback: what the peer
 * sees (RST, FIN), what is left of the descriptor, and the error text when
 * a call fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "errfmt.h"
#include "net.h"
#include "sockfault.h"

/* A connected pair: ours (the side a fault strikes) and the peer's. */
struct pair {
    int ours, peer;
};

static struct pair connected_pair(void)
{
    char err[FL_ERRLEN], where[ADDR_TEXT_MAX], *port;
    struct pair p;
    int listener;

    listener = net_listen("127.0.0.1", 0, 1, err, sizeof err);
    if (listener < 0)
        fail_msg("net_listen: %s", err);
    assert_int_equal(local_addr_format(listener, where, sizeof where), 0);
    port = strrchr(where, ':');
    assert_non_null(port);
    p.peer = net_connect("127.0.0.1", parse_port(port + 1), err, sizeof err);
    if (p.peer < 0)
        fail_msg("net_connect: %s", err);
    p.ours = accept(listener, NULL, NULL);
    assert_true(p.ours >= 0);
    close(listener);
    return p;
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* The peer's recv() once what our side did has arrived: bytes, or -errno. */
static ssize_t peer_recv(int peer)
{
    char byte;
    ssize_t n = recv(peer, &byte, 1, 0);

    return n < 0 ? -errno : n;
}

static void rst_closes_and_the_peer_reads_a_reset(void **state)
{
    struct pair p = connected_pair();
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "";

    assert_int_equal(sock_fault_apply(p.ours, FA_RST, &effect, err, sizeof err), 0);
    assert_int_equal(effect, SOCK_FAULT_CLOSED);
    assert_false(is_open(p.ours));
    assert_int_equal(peer_recv(p.peer), -ECONNRESET);
    assert_string_equal(err, "");
    close(p.peer);
}

static void close_closes_and_the_peer_reads_eof(void **state)
{
    struct pair p = connected_pair();
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "";

    assert_int_equal(sock_fault_apply(p.ours, FA_CLOSE, &effect, err, sizeof err), 0);
    assert_int_equal(effect, SOCK_FAULT_CLOSED);
    assert_false(is_open(p.ours));
    assert_int_equal(peer_recv(p.peer), 0);
    close(p.peer);
}

static void shutdown_wr_sends_eof_and_keeps_reading(void **state)
{
    struct pair p = connected_pair();
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "", byte = 0;

    assert_int_equal(sock_fault_apply(p.ours, FA_SHUTDOWN_WR, &effect, err, sizeof err),
                     0);
    assert_int_equal(effect, SOCK_FAULT_SHUT);
    assert_int_equal(peer_recv(p.peer), 0);
    assert_int_equal(send(p.peer, "x", 1, 0), 1);
    assert_int_equal(recv(p.ours, &byte, 1, 0), 1);
    assert_int_equal(byte, 'x');
    close(p.ours);
    close(p.peer);
}

static void other_actions_leave_the_socket_alone(void **state)
{
    static const enum fault_action others[] = { FA_NONE, FA_SHORT, FA_DROP, FA_LEAK,
                                                FA_FORK_FAIL };
    struct pair p = connected_pair();
    char err[FL_ERRLEN] = "";

    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        enum sock_fault_effect effect = SOCK_FAULT_CLOSED;

        assert_int_equal(sock_fault_apply(p.ours, others[i], &effect, err, sizeof err),
                         0);
        assert_int_equal(effect, SOCK_FAULT_NONE);
    }
    assert_true(is_open(p.ours));
    assert_int_equal(send(p.ours, "x", 1, 0), 1);
    assert_int_equal(peer_recv(p.peer), 1);
    close(p.ours);
    close(p.peer);
}

static void rst_on_a_pipe_fails_names_the_call_and_still_closes(void **state)
{
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "", want[FL_ERRLEN];
    int fds[2];

    assert_int_equal(pipe(fds), 0);
    assert_int_equal(sock_fault_apply(fds[1], FA_RST, &effect, err, sizeof err), -1);
    assert_int_equal(errno, ENOTSOCK);
    assert_int_equal(effect, SOCK_FAULT_CLOSED);
    assert_false(is_open(fds[1]));
    snprintf(want, sizeof want, "setsockopt SO_LINGER(fd %d): %s", fds[1],
             strerror(ENOTSOCK));
    assert_string_equal(err, want);
    close(fds[0]);
}

static void close_of_a_closed_descriptor_fails_with_ebadf(void **state)
{
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "";
    int fds[2];

    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(sock_fault_apply(fds[1], FA_CLOSE, &effect, err, sizeof err), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(effect, SOCK_FAULT_CLOSED);
    assert_non_null(strstr(err, "close(fd "));
}

static void shutdown_wr_of_an_unconnected_socket_fails_with_enotconn(void **state)
{
    enum sock_fault_effect effect = SOCK_FAULT_NONE;
    char err[FL_ERRLEN] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(sock_fault_apply(fd, FA_SHUTDOWN_WR, &effect, err, sizeof err), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_int_equal(effect, SOCK_FAULT_SHUT);
    assert_true(is_open(fd));
    assert_non_null(strstr(err, "shutdown SHUT_WR(fd "));
    assert_non_null(strstr(err, strerror(ENOTCONN)));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rst_closes_and_the_peer_reads_a_reset),
        cmocka_unit_test(close_closes_and_the_peer_reads_eof),
        cmocka_unit_test(shutdown_wr_sends_eof_and_keeps_reading),
        cmocka_unit_test(other_actions_leave_the_socket_alone),
        cmocka_unit_test(rst_on_a_pipe_fails_names_the_call_and_still_closes),
        cmocka_unit_test(close_of_a_closed_descriptor_fails_with_ebadf),
        cmocka_unit_test(shutdown_wr_of_an_unconnected_socket_fails_with_enotconn),
    };

    return cmocka_run_group_tests_name("sockfault", tests, NULL, NULL);
}
