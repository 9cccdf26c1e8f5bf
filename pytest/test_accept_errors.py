"""accept() errors (issue 11): none ends the server, and out of
descriptors need not stall the other sessions.

An error outside the expected list (EBADF, injected with strace at the
first accept4 of each process) used to kill fork, thread, poll and epoll
with every session in them; now it is an accept_error event and a 100 ms
back-off, and the connection waiting is served after it.

Out of descriptors at accept: by default (--emfile backoff)
echod logs accept_error and pauses 100 ms before it accepts again; poll and
epoll pause by leaving the listener out of their wait, not by sleeping,
which would pause every session with it (one thread serves them all).
--emfile reserve holds one descriptor back; at EMFILE it frees it, accepts
the waiting connection, closes it (a `refused` event with the error) and
takes the reserve back: the client is told at once, and nobody waits.

The limit is provoked with prlimit(2) on the running server, set to the
descriptors it holds with one session open: the next accept fails."""

import contextlib
import resource
import time

import pytest

from faultline import faults, paths, procs
from faultline.clients import echo
from faultline.echod import Echod, read_events
from faultline.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.models

EXTRA = 4
ECHOES = 10
# Ten round trips on loopback take well under a millisecond each; a loop
# that sleeps its 100 ms back-off at every wake-up takes at least 1 s for
# ten. Half a second separates the two on a loaded 2-core box.
ECHOES_WITHIN = 0.5


@contextlib.contextmanager
def at_the_limit(server):
    """Lower the server's RLIMIT_NOFILE to what it holds now (the next
    descriptor it asks for is refused with EMFILE), and give the old limit
    back at the end, so that it can take and close what still waits."""
    highest = max(procs.open_fds(server.pid))
    old = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    # The soft limit only: raising it back needs no privilege.
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (highest + 1, old[1]))
    try:
        yield
    finally:
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, old)


def echo_time(sock, count):
    start = time.monotonic()
    for _ in range(count):
        assert echo(sock, b"quick\n") == b"quick\n"
    return time.monotonic() - start


@pytest.mark.parametrize("model", ["thread", "poll", "epoll"])
def test_emfile_reserve_closes_at_once_the_connection_it_cannot_serve(host, model):
    with Echod(host, model=model, args=["--emfile", "reserve"]) as server:
        first = host.connect(server.port)
        assert echo(first) == b"ping\n"
        with at_the_limit(server):
            extras = [host.connect(server.port) for _ in range(EXTRA)]
            for i, sock in enumerate(extras):
                sock.settimeout(5.0)
                assert sock.recv(16) == b"", (
                    f"--model {model}: extra connection {i} not closed: "
                    f"{server.events()[-6:]}")
            refused = wait_until(lambda: len(server.events("refused")) >= EXTRA and
                                 server.events("refused"), 5.0, f"{EXTRA} refused events",
                                 seen=lambda: server.events()[-6:])
            assert all(e["error"] == "Too many open files" for e in refused), refused
            assert echo(first) == b"ping\n", "the open session goes on"
        for sock in extras:
            sock.close()


@pytest.mark.parametrize("args", [["--emfile", "reserve"], []],
                         ids=["reserve", "backoff"])
@pytest.mark.parametrize("model", ["poll", "epoll"])
def test_at_the_descriptor_limit_the_open_session_keeps_its_speed(host, model, args):
    """With the reserve the waiting connections are shed; with the default
    back-off they wait while the loop leaves the listener out of its wait
    for 100 ms at a time. Either way the open session keeps its speed.
    (main's build, whose back-off slept the whole loop, fails the backoff
    case: 10 echoes in over a second.)"""
    with Echod(host, model=model, args=args) as server:
        first = host.connect(server.port)
        first.settimeout(10.0)
        assert echo(first) == b"ping\n"
        with at_the_limit(server):
            extras = [host.connect(server.port) for _ in range(EXTRA)]
            wait_until(lambda: server.events("accept_error") or server.events("refused"),
                       5.0, "the server to meet EMFILE", seen=lambda: server.events()[-6:])
            took = echo_time(first, ECHOES)
            assert took <= ECHOES_WITHIN, (
                f"--model {model} {args}: {ECHOES} echoes took {took:.3f} s "
                f"at the descriptor limit (bound {ECHOES_WITHIN} s)")
        for sock in extras:
            sock.close()


@pytest.mark.parametrize("model", ["fork", "thread", "prefork", "poll", "epoll"])
def test_an_unexpected_accept_error_is_logged_and_survived(host, model):
    events = host.workdir / "echod.events.jsonl"
    traced = faults.strace_inject(
        host, [paths.binary("echod"), "--port", 9877, "--model", model,
               "--sigpipe", "ignore", "--events", events],
        syscall="accept4", nth=1, action="error=EBADF", name="echod")
    try:
        traced.proc.wait_for_output("listening on")
        sock = host.connect(9877)
        sock.settimeout(5.0)
        assert echo(sock) == b"ping\n", (
            f"--model {model}: no echo after an accept4 that failed with EBADF\n"
            f"{read_events(events)[-6:]}\nstrace:\n{traced.log_text()[-2000:]}")
        errors = [e for e in read_events(events) if e["event"] == "accept_error"]
        assert errors and errors[0]["error"] == "Bad file descriptor", errors
        sock.close()
    finally:
        status = traced.terminate()
    assert status == 0, f"--model {model}: echod ended with {status}"



# The table starts with room for 64 children and doubles: the first child
# finds it made, the 65th makes it grow.
@pytest.mark.parametrize("nth", [1, 65])
def test_a_child_reaped_before_its_parent_records_it_is_not_counted_live(host, nth):
    """strace holds the return of the parent's NTH fork while that child
    exits at its start: SIGCHLD's handler reaps it before the parent has
    put it in its child table (the others, nth - 1 of them, stay open and
    idle). The table must not keep it: SIGTERM's drain then ends as soon
    as the idle sessions do. A kept pid made the drain wait out its
    deadline for a child long gone: seen in a CI run under ASan and strace,
    for the first child (the ring the handler notes reaped pids in did not
    exist before the first fork); a table that grew dropped the ring's
    pids the same way."""
    events = host.workdir / "echod.events.jsonl"
    traced = faults.strace_inject(
        host, [paths.binary("echod"), "--port", 9877, "--events", events,
               "--fault", f"exit=0@child_start,conn={nth}", "--drain-timeout", "20000"],
        syscall="clone", nth=nth, action="delay_exit=300ms", name="echod")
    held = []
    try:
        traced.proc.wait_for_output("listening on")
        for _ in range(nth - 1):
            held.append(host.connect(9877))
            assert echo(held[-1]) == b"ping\n"
        sock = host.connect(9877)
        sock.settimeout(5.0)
        assert sock.recv(16) == b"", "the child exits at its start: EOF"
        sock.close()

        def forked():
            evs = read_events(events)
            return evs if sum(e["event"] == "fork" for e in evs) >= nth else None
        log = wait_until(forked, 5.0, f"the parent back from fork {nth}",
                         seen=lambda: read_events(events)[-6:])
        names = [e["event"] for e in log]
        forks = [i for i, n in enumerate(names) if n == "fork"]
        assert "reaped" in names and names.index("reaped") < forks[nth - 1], (
            f"child {nth} should be reaped before its parent is back from fork(): "
            f"{names[-8:]}")
    finally:
        try:
            status = traced.terminate(timeout=10.0)
        except WaitTimeout:
            status = "none: still running 10 s after SIGTERM"
        for s in held:
            s.close()
    names = [e["event"] for e in read_events(events)]
    assert status == 0 and "drain_timeout" not in names, (
        f"exit status {status}; the drain waited for a child already reaped: "
        f"{names[-8:]}")
