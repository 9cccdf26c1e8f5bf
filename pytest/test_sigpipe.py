"""SIGPIPE, UNP 5.13 and the UC3M lab's exercise 6: writing to a
connection the peer has reset raises SIGPIPE; its default action kills the
writer. The writer must write twice: the first write draws the RST, the
second meets it. short=1@before_write splits every write into one-byte
writes, so one line is several writes in a row. The client's side, dying
of SIGPIPE or (ignoring it) exiting with EPIPE, is a pair of scenario files
(fixtures/scenarios/unp-5.13-*), run by test_scenarios.py under this
marker; this file is the server child's side."""

import signal
import socket

import pytest

from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.sigpipe


def server_writing_to_a_reset_peer(host, sigpipe):
    """An echod whose children write one byte at a time."""
    return Echod(host, args=["--sigpipe", sigpipe], faults=["short=1@before_write"])


def send_a_line_and_close(host, server, line=b"hello\n"):
    """The client sends a line and closes at once; the server child writes
    the echo, a byte at a time, into the dead connection. Corked, the line
    and the FIN leave in one segment: the server's end is in CLOSE_WAIT
    before it writes a byte, so the RST its first write draws leaves EPIPE
    (not ECONNRESET, which raises no SIGPIPE) for the next one."""
    sock = host.connect(server.port)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    sock.sendall(line)
    sock.close()


@pytest.mark.parametrize("mode", ["handler", "ignore"])
def test_server_child_writing_to_a_reset_peer_survives_when_sigpipe_is_handled(
        host, mode):
    with server_writing_to_a_reset_peer(host, mode) as server:
        send_a_line_and_close(host, server)
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end",
                         seen=lambda: server.events()[-6:])[0]
        assert end["reason"] == "write" and end["error"] == "Broken pipe", end
        # The parent logs the fork after fork() returns: the child may have
        # logged its SIGPIPE first. Wait for it.
        child_pids = {server.fork_event(1)["child"]}
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


# --- every model: ignore survives, default dies --------------------------------

MODELS = ["fork", "thread", "prefork", "poll", "epoll"]
# 64 one-byte writes: once the RST is in, the next one meets EPIPE.
LONG_LINE = b"x" * 63 + b"\n"


@pytest.mark.parametrize("mode", ["ignore", "handler"])
@pytest.mark.parametrize("model", MODELS)
def test_sigpipe_handled_or_ignored_lets_every_model_survive_a_write_to_a_reset_peer(
        host, model, mode):
    with Echod(host, model=model, args=["--sigpipe", mode],
               faults=["short=1@before_write"]) as server:
        send_a_line_and_close(host, server, LONG_LINE)
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end",
                         seen=lambda: server.events()[-6:])[0]
        assert end["reason"] == "write" and end["error"] == "Broken pipe", (
            f"--model {model} --sigpipe {mode}: {end}")
        deaths = [e for e in server.events() if e["event"] in ("reaped", "worker_exit")
                  and e.get("signal") == signal.SIGPIPE]
        assert not deaths, f"--model {model} --sigpipe {mode}: {deaths}"
        handled = [e for e in server.events("signal") if e["name"] == "SIGPIPE"]
        assert len(handled) == (1 if mode == "handler" else 0), (
            f"--model {model} --sigpipe {mode}: SIGPIPE handled {len(handled)} times\n"
            f"{server.events()[-6:]}")
        # On exit the fixture fails the test if the server itself died.


@pytest.mark.parametrize("model", ["thread", "poll", "epoll"])
def test_sigpipe_default_kills_a_one_process_model_whole(host, model):
    with Echod(host, model=model, args=["--sigpipe", "default"],
               faults=["short=1@before_write"], stopped_by_test=True,
               exit_status=-signal.SIGPIPE) as server:
        send_a_line_and_close(host, server, LONG_LINE)
        status = server.proc.wait(10.0)
        assert status == -signal.SIGPIPE, (
            f"--model {model} --sigpipe default: the server should die of SIGPIPE, "
            f"exit {status}\n{server.events()[-6:]}")


def test_sigpipe_default_kills_a_prefork_worker_and_the_master_replaces_it(host):
    with Echod(host, model="prefork", args=["--sigpipe", "default"],
               faults=["short=1@before_write"]) as server:
        send_a_line_and_close(host, server, LONG_LINE)
        dead = wait_until(lambda: server.events("worker_exit"), 5.0, "worker_exit",
                          seen=lambda: server.events()[-6:])[0]
        assert dead.get("signal") == signal.SIGPIPE, dead
