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


# --- which RSTs reset a connection (the rst_from gauge) ---------------------
# The rows are the ones CI captured for one connection of unp-5.10-waitpid-loop
# (client 39618, server 9877), where the server's closed port reset the
# client's TIME_WAIT answer to a stray ACK.

def _segments(rows):
    segs = []
    for index, (sender, flags, seq, ack) in enumerate(rows):
        client, server = ("127.0.0.1", 39618), ("127.0.0.1", 9877)
        src, dst = (client, server) if sender == "client" else (server, client)
        segs.append(capture.Segment(index=index, time=float(index), src=src, dst=dst,
                                    flags=flags, seq=seq, ack=ack, length=0))
    conn, = capture.conversations(segs, 9877)
    return conn


HANDSHAKE = [("client", "S", 2116533503, 0), ("server", "SA", 719550095, 2116533504),
             ("client", "A", 2116533504, 719550096)]


def test_a_rst_after_both_fins_were_acknowledged_resets_nothing():
    conn = _segments(HANDSHAKE + [
        ("client", "FA", 2116533504, 719550096),
        ("server", "FA", 719550096, 2116533505),
        ("client", "A", 2116533505, 719550097),
        ("server", "A", 719550096, 2116533505),   # the stray ACK
        ("client", "A", 2116533505, 719550097),   # TIME_WAIT's answer
        ("server", "R", 719550097, 0)])
    assert conn.rsts_from("server") and not conn.resets_from("server"), conn.describe()


@pytest.mark.parametrize("after_handshake", [
    # A RST in place of the server's FIN.
    [("client", "FA", 2116533504, 719550096),
     ("server", "RA", 719550096, 2116533505)],
    # A RST before the server's FIN was acknowledged.
    [("client", "FA", 2116533504, 719550096),
     ("server", "FA", 719550096, 2116533505),
     ("server", "R", 719550097, 0)],
    # The server closed first and its FIN was acknowledged, but the
    # client's later FIN drew a RST: the close was not completed in order.
    [("server", "FA", 719550096, 2116533504),
     ("client", "A", 2116533504, 719550097),
     ("client", "FA", 2116533504, 719550097),
     ("server", "R", 719550097, 0)],
], ids=["in-place-of-the-fin", "before-its-fin-was-acked", "answering-the-clients-fin"])
def test_a_rst_before_the_close_completed_resets_the_connection(after_handshake):
    conn = _segments(HANDSHAKE + after_handshake)
    assert conn.resets_from("server"), conn.describe()
