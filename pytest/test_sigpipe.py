"""SIGPIPE, UNP 5.13 and the UC3M lab's exercise 6: writing to a
connection the peer has reset raises SIGPIPE; its default action kills the
writer. The writer must write twice: the first write draws the RST, the
second meets it. short=1@before_write splits every write into one-byte
writes, so one line is several writes in a row. The client's side, dying
of SIGPIPE or (ignoring it) exiting with EPIPE, is a pair of scenario files
(fixtures/scenarios/unp-5.13-*), run by test_scenarios.py under this
marker; this file is the server child's side."""

import signal

import pytest

from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.sigpipe


def server_writing_to_a_reset_peer(host, sigpipe):
    """An echod whose children write one byte at a time."""
    return Echod(host, args=["--sigpipe", sigpipe], faults=["short=1@before_write"])


def send_a_line_and_close(host, server):
    """The client sends a line and closes at once; the server child writes
    the echo, a byte at a time, into the dead connection."""
    sock = host.connect(server.port)
    sock.sendall(b"hello\n")
    sock.close()


@pytest.mark.parametrize("mode", ["handler", "ignore"])
def test_server_child_writing_to_a_reset_peer_survives_when_sigpipe_is_handled(
        host, mode):
    with server_writing_to_a_reset_peer(host, mode) as server:
        send_a_line_and_close(host, server)
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end",
                         seen=lambda: server.events()[-6:])[0]
        assert end["reason"] == "write" and end["error"] == "Broken pipe", end
        child_pids = {e["child"] for e in server.events("fork")}
        sigpipes = [e for e in server.events("signal")
                    if e["name"] == "SIGPIPE" and e["pid"] in child_pids]
        assert len(sigpipes) == (1 if mode == "handler" else 0), server.events()
        reaped = wait_until(lambda: server.events("reaped"), 5.0, "reaped")[0]
        assert reaped.get("exit") == 1, reaped


def test_server_child_with_default_sigpipe_dies_of_it(host):
    with server_writing_to_a_reset_peer(host, "default") as server:
        send_a_line_and_close(host, server)
        reaped = wait_until(lambda: server.events("reaped"), 5.0, "reaped",
                            seen=lambda: server.events()[-6:])[0]
        assert reaped.get("signal") == signal.SIGPIPE, (
            f"the parent should record its child killed by SIGPIPE: {reaped}")
