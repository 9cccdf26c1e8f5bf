"""The FreeBSD handbook's warning: the parent must close the accepted socket,
"otherwise it will run out of available file descriptors sooner or later"
and, since the connection then never closes, the client's close leaves the
server's socket in CLOSE_WAIT."""

import pytest

from faultline import tcpstate
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.fd_leak

CONNECTIONS = 5


def connect_and_close_in_turn(host, server, count):
    for n in range(1, count + 1):
        sock = host.connect(server.port)
        sock.sendall(b"ping\n")
        assert sock.recv(16) == b"ping\n"
        sock.close()
        wait_until(lambda: len(server.events("child_exit")) == n, 5.0,
                   f"child {n} to finish", seen=server.ps)
    server.wait_idle()


@pytest.mark.parametrize("leak, growth", [(True, CONNECTIONS), (False, 0)],
                         ids=["leak-connfd", "sound"])
def test_parent_descriptor_count_grows_one_per_connection_when_it_leaks(
        host, leak, growth):
    args = ["--leak-connfd"] if leak else []
    with Echod(host, args=args, leaves={"fds", "close_wait"} if leak else ()) as server:
        baseline = server.fd_count()
        connect_and_close_in_turn(host, server, CONNECTIONS)
        after = server.fd_count()
        assert after - baseline == growth, (
            f"{'--leak-connfd' if leak else 'the sound server'}: descriptors "
            f"{baseline} -> {after} after {CONNECTIONS} connections, expected "
            f"+{growth}\n{server.ps()}\n{server.fd_table()}"
            f"\n{tcpstate.table(host.outer_pid, server.port)}")
