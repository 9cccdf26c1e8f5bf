"""SIGTERM with a session open: the listener closes first (new connects are
refused), the open session echoes the line it already received, and the
server exits 0 within its drain deadline. That drain itself, in the fork
model, is a scenario file (fixtures/scenarios/sigterm-drain.toml), run by
test_scenarios.py under this marker; this file holds its edges."""

import signal

import pytest

from faultline import procs
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.shutdown


def test_drain_timeout_kills_the_stragglers_and_reaps_them(host):
    """A session that ignores the drain (stalled) is SIGKILLed at the
    deadline, and the parent waits to reap it before it exits."""
    with Echod(host, drain_ms=300, faults=["stall@before_read"],
               stopped_by_test=True) as server:
        host.connect(server.port)
        server.fork_event(1)
        server.send_signal(signal.SIGTERM)
        server.proc.wait(10.0)
        names = [e["event"] for e in server.events()]
        assert "drain_timeout" in names, names
        reaped = server.events("reaped")
        assert reaped and reaped[0].get("signal") == signal.SIGKILL, (
            f"the killed straggler should be reaped before exit: {names}")


def test_a_serving_child_ignores_sigint_and_goes_on(host):
    """Ctrl-C reaches a whole process group; the parent turns it into the
    SIGTERM drain, so a child must not die of it on its own."""
    with Echod(host) as server:
        sock = host.connect(server.port)
        sock.sendall(b"one\n")
        assert sock.recv(16) == b"one\n"
        child = server.child_of_conn(1)
        procs.send_signal(child.pid, signal.SIGINT)
        sock.sendall(b"two\n")
        assert sock.recv(16) == b"two\n", server.ps()


@pytest.mark.parametrize("model", ["poll", "epoll"])
def test_event_loop_drain_ends_a_session_whose_last_read_was_dropped(host, model):
    with Echod(host, model=model, drain_ms=5000,
               faults=["delay=1s@before_read,nth=2;drop@after_read,nth=2"],
               stopped_by_test=True) as server:
        # The drain's own read is the one dropped: SIGTERM first; the drain
        # reads, the delay fires before that read, and the line sent during
        # the delay is what the read gets and drops.
        sock = host.connect(server.port)
        sock.sendall(b"first\n")
        assert sock.recv(16) == b"first\n"
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: [e for e in server.events("fault") if e["action"] == "delay"],
                   5.0, "the drain's read to start its delay",
                   seen=lambda: server.events()[-5:])
        sock.sendall(b"dropped\n")
        server.proc.wait(10.0)
        names = [e["event"] for e in server.events()]
        assert "drain_timeout" not in names, (
            f"--model {model}: the drain should not wait out its deadline: {names}")
        ends = server.events("session_end")
        assert ends and ends[-1]["reason"] == "terminated", ends
