"""Forced resets. A RST instead of a FIN (SO_LINGER 0, then close) from
either end: the other side sees ECONNRESET where it expected end of file,
and nothing is left behind. The server forcing it (rst@before_close) is a
scenario file (fixtures/scenarios/rst-before-close.toml), run by
test_scenarios.py under this marker; this file is the client forcing it.

Expected packets, client side forcing it:
    client RST where its FIN would be, and no client FIN
"""

import pytest

from faultline import capture, tcpstate
from faultline.clients import start_client, talk
from faultline.echod import Echod

pytestmark = [pytest.mark.rst, pytest.mark.pcap]


def test_client_rst_ends_the_server_session_cleanly(host):
    pcap = host.workdir / "client-rst.pcap"
    with capture.Capture(host, pcap), Echod(host) as server:
        client = start_client(host, server.port, ["--fault", "rst@before_close"])
        talk(client, "bye")
        client.stdin.close()
        client.wait()
        assert server.reaped_event(1).get("exit") == 1, server.events()[-5:]
        server.wait_idle()
        assert server.zombies() == [], server.ps()
        assert not tcpstate.in_state(host.outer_pid, "CLOSE_WAIT", server.port), (
            tcpstate.table(host.outer_pid, server.port))
        end = server.events("session_end")[0]
        assert end["reason"] == "read" and end["error"] == "Connection reset by peer", end
    conn, = capture.conversations(capture.read_segments(pcap), server.port)
    assert conn.rsts_from("client") and not conn.fins_from("client"), conn.describe()
