"""The event-loop models (poll, epoll) while their clients do not read,
and their SIGTERM drain of what has arrived unread.

Issue 12: with epoll never re-arming EPOLLOUT, a client that started
reading late got 4.2 of 32 MiB and echod spun at 100 % CPU, and no test
had a late reader or looked at the CPU. Here, in each event-loop model: a
late reader gets every byte back once it reads; a client that never reads,
and a client that sits idle, cost the server no CPU while they wait.

The CPU is the server's utime + stime from /proc/PID/stat over a window of
wall time: a measurement, taken only once the server has nothing it can do
(its end of the connection holds bytes it cannot send, or nothing at all).
"""

import os
import signal
import threading
import time

import pytest

from faultline import procs, tcpstate
from faultline.clients import echo
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.models

MODELS = ["poll", "epoll"]
# Far more than the socket buffers of both ends (autotuned, several MiB
# each) and the server's own buffer hold: the server must stop and wait
# for the client.
PUSH = 32 << 20
PUSH_LIMIT = 256 << 20
# A server that waits costs ~0; one that spins costs most of the window,
# even on a loaded machine.
CPU_WINDOW = 1.0
CPU_BOUND = 0.1


def cpu_seconds(server):
    """utime + stime of the server (all its threads), in seconds; a server
    that has ended fails the test, saying how."""
    try:
        with open(f"/proc/{server.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except FileNotFoundError:
        pytest.fail(f"the server ended while its CPU was measured: {server.death()}")
    # After the command: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over_window(server):
    """The CPU the server used over CPU_WINDOW seconds of wall time."""
    before = cpu_seconds(server)
    time.sleep(CPU_WINDOW)  # a measurement window, not a synchronisation
    return cpu_seconds(server) - before


def server_end(host, server, sock):
    """The server's end of sock's connection, from the host's TCP table."""
    mine = sock.getsockname()
    found = [s for s in tcpstate.sockets(host.outer_pid, server.port)
             if s.local[1] == server.port and s.remote == mine]
    return found[0] if found else None


def wait_server_stuck(host, server, sock, what):
    """Until the server's end holds bytes it cannot send (Send-Q) and bytes
    it has not read (Recv-Q): it has filled its buffer and stopped."""
    def stuck():
        end = server_end(host, server, sock)
        return end is not None and end.tx_queue > 0 and end.rx_queue > 0
    wait_until(stuck, 10.0, what,
               seen=lambda: tcpstate.table(host.outer_pid, server.port))


def pattern(n):
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


def push_until_the_server_stops(host, server, sock, what):
    """Send without blocking, again whenever the kernel takes more, until
    the server's end holds bytes it has not read (wait_server_stuck): the
    buffers between the two ends grow as they fill, so one burst may end
    with the server's end empty. Returns how many bytes went."""
    chunk = pattern(65536)
    sent = 0
    sock.setblocking(False)

    def stuck():
        nonlocal sent
        try:
            while sent < PUSH_LIMIT:
                sent += sock.send(chunk)
        except BlockingIOError:
            pass
        end = server_end(host, server, sock)
        return end is not None and end.tx_queue > 0 and end.rx_queue > 0
    wait_until(stuck, 20.0, what,
               seen=lambda: f"{sent:,} bytes sent\n"
                            f"{tcpstate.table(host.outer_pid, server.port)}")
    return sent


@pytest.mark.parametrize("model", MODELS)
def test_event_loop_late_reader_gets_every_byte_back(host, model):
    data = pattern(PUSH)
    with Echod(host, model=model, args=["--sigpipe", "ignore"]) as server:
        sock = host.connect(server.port, timeout=10.0)
        sender_error = []

        def send_all():
            try:
                sock.sendall(data)
            except OSError as e:  # reported by the reader's assertion
                sender_error.append(e)
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        wait_server_stuck(host, server, sock,
                          f"--model {model}: the server to stop, its buffer full, "
                          f"while the client does not read yet")
        got = bytearray()
        deadline = time.monotonic() + 30.0
        try:
            while len(got) < len(data) and time.monotonic() < deadline:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        sender.join(10.0)
        assert len(got) == len(data), (
            f"--model {model}: a client that starts reading late got {len(got):,} of "
            f"{len(data):,} bytes back (sender: {sender_error or 'ok'})\n"
            f"{tcpstate.table(host.outer_pid, server.port)}\n{server.events()[-5:]}")
        assert got == data, f"--model {model}: the echo differs from what was sent"
        sock.close()


@pytest.mark.parametrize("model", MODELS)
def test_event_loop_server_costs_no_cpu_while_a_client_never_reads(host, model):
    with Echod(host, model=model, args=["--sigpipe", "ignore"]) as server:
        hog = host.connect(server.port)
        pushed = push_until_the_server_stops(
            host, server, hog,
            f"--model {model}: the server to stop reading a client that never reads")
        used = cpu_over_window(server)
        assert used < CPU_BOUND, (
            f"--model {model}: the server used {used:.2f} s of CPU in {CPU_WINDOW:g} s "
            f"while its only client, {pushed:,} bytes pushed, read nothing "
            f"(spinning?)\n{tcpstate.table(host.outer_pid, server.port)}")
        hog.close()


@pytest.mark.parametrize("model", MODELS)
def test_event_loop_server_costs_no_cpu_while_its_client_is_idle(host, model):
    with Echod(host, model=model) as server:
        idle = host.connect(server.port)
        assert echo(idle) == b"ping\n"
        wait_until(lambda: (e := server_end(host, server, idle)) is not None
                   and e.tx_queue == 0 and e.rx_queue == 0, 5.0,
                   "the server's end of the idle connection to be empty",
                   seen=lambda: tcpstate.table(host.outer_pid, server.port))
        used = cpu_over_window(server)
        assert used < CPU_BOUND, (
            f"--model {model}: the server used {used:.2f} s of CPU in {CPU_WINDOW:g} s "
            f"with one idle connection open (spinning?)\n{server.ps()}")
        idle.close()


@pytest.mark.parametrize("model", MODELS)
def test_event_loop_server_costs_no_cpu_while_it_holds_a_leaked_connection(host, model):
    """--leak-connfd: the loop forgets the session but the descriptor stays
    open, its peer gone, readable for good. epoll leaves a closed socket's
    registration to close(); a leaked one must be unregistered by hand, or
    every wait reports it (with a pointer to a freed session)."""
    with Echod(host, model=model, args=["--leak-connfd"],
               leaves={"fds", "close_wait"}) as server:
        leaked = host.connect(server.port)
        assert echo(leaked) == b"ping\n"
        mine = leaked.getsockname()
        leaked.close()
        wait_until(lambda: any(s.remote == mine and s.state == "CLOSE_WAIT"
                               for s in tcpstate.sockets(host.outer_pid, server.port)),
                   5.0, "the leaked connection's server end in CLOSE_WAIT",
                   seen=lambda: f"{tcpstate.table(host.outer_pid, server.port)}\n"
                                f"{server.death() or 'the server runs'}")
        used = cpu_over_window(server)
        assert used < CPU_BOUND, (
            f"--model {model}: the server used {used:.2f} s of CPU in {CPU_WINDOW:g} s "
            f"holding one leaked connection whose peer closed (reported again "
            f"and again?)\n{server.ps()}\n{server.events()[-5:]}")
        after = host.connect(server.port)
        assert echo(after) == b"ping\n", f"--model {model}: no echo after the leak"
        after.close()


@pytest.mark.shutdown
@pytest.mark.parametrize("model", MODELS)
def test_event_loop_drain_echoes_the_line_that_arrived_while_it_was_stopped(host, model):
    """The line waits in the server's end, the server stopped (no delay to
    outlast), and SIGTERM is pending when it continues: only the drain
    (evconn_drain) can read and echo it. test_models' drain test cannot
    tell here: its delay holds the line inside the read, which echoes it
    whether or not the drain works."""
    with Echod(host, model=model, drain_ms=2000, stopped_by_test=True,
               exit_status=0) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"first\n") == b"first\n"
        # Stopped anywhere else, it would continue into ppoll/epoll_pwait
        # with SIGTERM pending and the line ready: the wait reports the line
        # first and the session, not the drain, echoes it.
        server.wait_idle()
        procs.stop(server.pid)
        sock.sendall(b"last line\n")
        wait_until(lambda: (e := server_end(host, server, sock)) is not None
                   and e.rx_queue == 10, 5.0,
                   "the last line to wait unread in the server's end",
                   seen=lambda: tcpstate.table(host.outer_pid, server.port))
        server.send_signal(signal.SIGTERM)
        procs.cont(server.pid)
        try:
            got = sock.recv(16)
        except ConnectionResetError:
            got = "a RST"
        assert got == b"last line\n", (
            f"--model {model}: the line that waited during SIGTERM should be echoed, "
            f"got {got!r}\n{server.events()[-6:]}")
        assert sock.recv(16) == b"", "then EOF"
        server.proc.wait(10.0)
