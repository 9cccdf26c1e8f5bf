"""Forced resets. A RST instead of a FIN (SO_LINGER 0, then close) from
either end: the other side sees ECONNRESET where it expected end of file,
and nothing is left behind.

Expected packets, server side forcing it:
    client FIN (half-close) ... server RST, and no server FIN
"""

import pytest

from faultline import capture, experiments, tcpstate
from faultline.echod import Echod

pytestmark = [pytest.mark.rst, pytest.mark.pcap]


def test_server_rst_before_close_gives_the_client_connection_reset(host):
    seen = experiments.server_rst(host)
    conn = seen.facts["conversation"]
    assert seen.facts["status"] == 5, seen.facts["stderr"]
    assert "connection reset by peer" in seen.facts["stderr"]
    assert conn.rsts_from("server"), conn.describe()
    assert not conn.fins_from("server"), f"a RST replaces the FIN\n{conn.describe()}"


def test_client_rst_ends_the_server_session_cleanly(host):
    pcap = host.workdir / "client-rst.pcap"
    with capture.Capture(host, pcap), Echod(host) as server:
        client = experiments.start_client(host, server.port,
                                          extra=["--fault", "rst@before_close"])
        experiments.talk(client, "bye")
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
