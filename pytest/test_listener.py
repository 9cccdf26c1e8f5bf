"""The listening socket's two classic traps (docs/FAILURE-MODES.md):
a restart while the last run's connections sit in TIME_WAIT, which only
SO_REUSEADDR lets bind at once, and connects beyond the listen backlog,
which wait in SYN_SENT until the server accepts again."""

import errno
import signal
import socket

import pytest

from faultline import procs, tcpstate
from faultline.clients import echo
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.models

PORT = 9877


def time_wait_on(host, port):
    return [s for s in tcpstate.in_state(host.outer_pid, "TIME_WAIT", port)
            if s.local[1] == port]


@pytest.mark.parametrize("reuseaddr", [True, False], ids=["echod", "no-reuseaddr"])
def test_a_restart_binds_beside_time_wait_only_with_reuseaddr(host, reuseaddr):
    """The server closes first (SIGTERM ends the session it serves), so its
    end of the connection waits out TIME_WAIT on the port. echod, which sets
    SO_REUSEADDR, listens there again at once; a listener without it gets
    EADDRINUSE for as long as the TIME_WAIT lasts."""
    with Echod(host, port=PORT, stopped_by_test=True, exit_status=0) as first:
        sock = host.connect(PORT)
        assert echo(sock) == b"ping\n"
        first.send_signal(signal.SIGTERM)
        first.proc.wait(10.0)
        sock.close()
    wait_until(lambda: time_wait_on(host, PORT), 5.0,
               f"the server's end in TIME_WAIT on port {PORT}",
               seen=lambda: tcpstate.table(host.outer_pid, PORT))
    if reuseaddr:
        with Echod(host, port=PORT) as second:
            with host.connect(PORT) as again:
                assert echo(again) == b"ping\n", tcpstate.table(host.outer_pid, PORT)
            assert time_wait_on(host, PORT), "TIME_WAIT was gone: the test proved nothing"
        return
    code, _, err = host.run(["/usr/bin/python3", "-c", (
        "import socket, sys\n"
        "s = socket.socket()\n"
        "try:\n"
        f"    s.bind(('0.0.0.0', {PORT}))\n"
        "except OSError as e:\n"
        "    sys.exit(e.errno)\n")], name="bind-no-reuseaddr")
    assert code == errno.EADDRINUSE, (
        f"a bind without SO_REUSEADDR beside TIME_WAIT exited {code}, want "
        f"EADDRINUSE ({errno.EADDRINUSE}): {err}\n{tcpstate.table(host.outer_pid, PORT)}")


def test_connects_beyond_the_backlog_wait_until_the_server_accepts(host):
    """echod --backlog 1, stopped: the kernel completes as many handshakes
    as the accept queue holds (backlog + 1) and leaves the other clients in
    SYN_SENT, retransmitting; once the server runs again every one of them
    is served."""
    clients = 5
    with Echod(host, port=PORT, args=["--backlog", "1"]) as server:
        procs.stop(server.pid)
        try:
            socks = []
            for _ in range(clients):
                s = host.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", PORT))
                socks.append(s)
            listener = lambda: tcpstate.in_state(host.outer_pid, "LISTEN", PORT)[0]  # noqa: E731
            wait_until(lambda: listener().rx_queue == 2, 5.0,
                       "the accept queue full at backlog + 1 = 2",
                       seen=lambda: tcpstate.table(host.outer_pid, PORT))
            waiting = tcpstate.in_state(host.outer_pid, "SYN_SENT", PORT)
            assert len(waiting) >= clients - 2, tcpstate.table(host.outer_pid, PORT)
        finally:
            procs.cont(server.pid)
        for s in socks:
            s.setblocking(True)
            s.settimeout(15.0)
            assert echo(s) == b"ping\n", tcpstate.table(host.outer_pid, PORT)
            s.close()
