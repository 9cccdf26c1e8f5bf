"""Every fault action, point and filter of docs/FAULTS.md, each observed
from outside the process: the client's view, the kernel's socket table, the
capture, the parent's reaped event, the event log."""

import signal
import socket
import time

import pytest

from faultline import capture, paths, procs, tcpstate
from faultline.clients import echo
from faultline.echod import Echod
from faultline.waiting import wait_until

LINE = b"hello\n"


def fault_events(server, action):
    return [e for e in server.events("fault") if e.get("action") == action]


def server_socket(host, port, client_sock):
    """The server end of the connection client_sock makes."""
    peer = client_sock.getsockname()
    found = [s for s in tcpstate.sockets(host.outer_pid, port)
             if s.remote == peer and s.local[1] == port]
    return found[0] if found else None


# --- actions that end the serving process ----------------------------------

@pytest.mark.parametrize("spec, status", [
    ("kill@child_start", {"signal": signal.SIGKILL}),
    ("abort@child_start", {"signal": signal.SIGABRT}),
    ("exit=3@child_start", {"exit": 3}),
], ids=["kill", "abort", "exit"])
def test_process_fault_ends_the_child_with_the_status_it_names(host, spec, status):
    with Echod(host, faults=[spec]) as server:
        sock = host.connect(server.port)
        assert sock.recv(16) == b"", "the client should see the connection close"
        reaped = server.reaped_event(1)
        assert {k: reaped[k] for k in status} == status, (
            f"{spec}: parent saw {reaped}\n{server.ps()}")
        assert len(fault_events(server, spec.split("@")[0].split("=")[0])) == 1


def test_stall_leaves_the_child_alive_and_the_data_unread(host):
    # A stalled child ignores the drain's SIGTERM: keep the drain short.
    # It never reads the client's FIN either: its socket stays in CLOSE_WAIT.
    with Echod(host, drain_ms=100, faults=["stall@before_read"],
               leaves={"close_wait"}) as server:
        sock = host.connect(server.port)
        sock.sendall(LINE)
        child = server.child_of_conn(1)
        wait_until(lambda: (s := server_socket(host, server.port, sock))
                   and s.rx_queue == len(LINE), 5.0,
                   "the line to sit unread in the stalled child's receive queue",
                   seen=lambda: tcpstate.table(host.outer_pid, server.port))
        # The line can land before the child reaches the stall (under load
        # it may still be running towards it): wait for it to sleep there.
        wait_until(lambda: procs.state(child.pid) == "S", 5.0,
                   "the stalled child to sleep", seen=server.ps)
        assert server_socket(host, server.port, sock).rx_queue == len(LINE), (
            tcpstate.table(host.outer_pid, server.port))
        sock.close()


def test_delay_holds_each_read_back_at_least_that_long(host):
    with Echod(host, faults=["delay=150ms@before_read"]) as server:
        start = time.monotonic()  # the child, and its delay, come later
        sock = host.connect(server.port)
        assert echo(sock, LINE) == LINE
        assert time.monotonic() - start >= 0.150
        assert fault_events(server, "delay")


# --- actions the session carries out -----------------------------------------

def test_rst_before_close_resets_instead_of_fin(host):
    pcap = host.workdir / "rst.pcap"
    with capture.Capture(host, pcap), Echod(host, faults=["rst@before_close"]) as server:
        sock = host.connect(server.port)
        assert echo(sock, LINE) == LINE
        sock.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
    conn, = capture.conversations(capture.read_segments(pcap), server.port)
    assert conn.rsts_from("server") and not conn.fins_from("server"), conn.describe()


def test_close_after_read_ends_the_session_without_an_echo(host):
    with Echod(host, faults=["close@after_read"]) as server:
        sock = host.connect(server.port)
        sock.sendall(LINE)
        assert sock.recv(16) == b"", "expected EOF and no echo"
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end")
        assert end[0]["reason"] == "fault_close" and end[0]["bytes"] == len(LINE)


def test_shutdown_wr_sends_fin_but_keeps_reading(host):
    """After its own FIN the child still reads what the client sends; its
    echo then has nowhere to go (EPIPE, SIGPIPE ignored here)."""
    with Echod(host, args=["--sigpipe", "ignore"],
               faults=["shutdown_wr@child_start"]) as server:
        sock = host.connect(server.port)
        assert sock.recv(16) == b"", "the server's FIN should come first"
        sock.sendall(b"still heard\n")
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end",
                         seen=lambda: server.events()[-5:])[0]
        assert end["bytes"] == len(b"still heard\n"), end
        assert (end["reason"], end["error"]) == ("write", "Broken pipe"), end


def test_short_writes_put_one_byte_per_segment(host):
    pcap = host.workdir / "short.pcap"
    with capture.Capture(host, pcap), Echod(host, faults=["short=1@before_write"]) as server:
        sock = host.connect(server.port)
        assert echo(sock, LINE) == LINE
        sock.close()
    conn, = capture.conversations(capture.read_segments(pcap), server.port)
    sizes = [s.length for s in conn.segments if s.src == conn.server and s.length]
    # Nagle may merge the later one-byte writes while the first is unacked;
    # the first write always leaves alone.
    assert sizes[0] == 1 and len(sizes) > 1 and sum(sizes) == len(LINE), (
        f"server data segments {sizes}\n{conn.describe()}")


def test_drop_discards_what_was_read(host):
    with Echod(host, faults=["drop@after_read,count=1"]) as server:
        sock = host.connect(server.port)
        sock.sendall(b"lost\n")
        wait_until(lambda: fault_events(server, "drop"), 5.0, "the drop fault")
        assert echo(sock, b"kept\n") == b"kept\n", "only the second line echoes"


def test_fork_fail_at_accept_closes_the_connection_without_a_child(host):
    with Echod(host, faults=["fork_fail@accept"]) as server:
        sock = host.connect(server.port)
        assert sock.recv(16) == b""
        assert server.events("fork_error") and not server.events("fork")
        assert server.children() == [], server.ps()


def test_leak_at_accept_keeps_the_parent_holding_the_socket(host):
    with Echod(host, faults=["leak@accept,conn=1"],
               leaves={"fds", "close_wait"}) as server:
        baseline = server.fd_count()
        for _ in range(2):
            sock = host.connect(server.port)
            assert echo(sock, LINE) == LINE
            sock.close()
        wait_until(lambda: len(server.events("child_exit")) == 2, 5.0, "two sessions")
        assert server.fd_count() == baseline + 1, server.fd_table()
        assert tcpstate.in_state(host.outer_pid, "CLOSE_WAIT", server.port), (
            tcpstate.table(host.outer_pid, server.port))


# --- points -------------------------------------------------------------------

def test_after_write_point_fires_once_the_echo_is_out(host):
    with Echod(host, faults=["exit=4@after_write"]) as server:
        sock = host.connect(server.port)
        assert echo(sock, LINE) == LINE, "the echo is written before the fault"
        assert sock.recv(16) == b""
        assert server.reaped_event(1).get("exit") == 4


def test_client_connect_point_closes_before_a_byte_is_sent(host):
    with Echod(host) as server:
        client = host.spawn([paths.binary("echoc"), "--fault", "close@connect",
                             "127.0.0.1", server.port], name="echoc")
        client.wait()
        end = wait_until(lambda: server.events("session_end"), 5.0, "session_end")
        assert end[0]["reason"] == "eof" and end[0]["bytes"] == 0, end


# --- filters ------------------------------------------------------------------

def test_conn_filter_hits_only_that_connection(host):
    with Echod(host, faults=["kill@child_start,conn=2"]) as server:
        first = host.connect(server.port)
        second = host.connect(server.port)
        assert second.recv(16) == b""
        assert echo(first, LINE) == LINE, "connection 1 must be untouched"


def test_nth_filter_fires_on_the_nth_hit_only(host):
    with Echod(host, faults=["close@after_read,nth=2"]) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        sock.sendall(b"two\n")
        assert sock.recv(16) == b""


def test_after_bytes_filter_waits_for_that_many_bytes(host):
    with Echod(host, faults=["close@after_read,after_bytes=10"]) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"12345\n") == b"12345\n"     # 6 bytes read
        sock.sendall(b"67890\n")                             # 12 >= 10
        assert sock.recv(16) == b""


def test_count_filter_stops_after_count_firings(host):
    with Echod(host, faults=["drop@after_read,count=2"]) as server:
        sock = host.connect(server.port)
        for n in (1, 2):
            sock.sendall(b"x\n")
            wait_until(lambda: len(fault_events(server, "drop")) == n, 5.0,
                       f"drop number {n}")
        assert echo(sock, b"third\n") == b"third\n"


def _drop_pattern(host, seed, lines=40):
    """Send lines one at a time; each is either echoed or dropped before the
    next goes, so one read sees one line and the decisions line up."""
    with Echod(host, faults=[f"drop@after_read,prob=0.5,seed={seed}"],
               name=f"echod-seed{seed}") as server:
        sock = host.connect(server.port)
        sock.setblocking(False)
        echoed = b""
        for i in range(lines):
            sock.sendall(b"%d\n" % i)

            def settled():
                nonlocal echoed
                try:
                    echoed += sock.recv(4096)
                except BlockingIOError:
                    pass
                return echoed.count(b"\n") + len(fault_events(server, "drop")) == i + 1
            wait_until(settled, 5.0, f"line {i} to be echoed or dropped")
        return [int(x) for x in echoed.split()]


def test_prob_with_seed_replays_the_same_decisions(host):
    first = _drop_pattern(host, 7)
    again = _drop_pattern(host, 7)
    other = _drop_pattern(host, 8)
    assert first == again, f"seed 7 twice: {first} vs {again}"
    assert 0 < len(first) < 40, f"prob=0.5 over 40 lines kept {len(first)}"
    assert first != other, "a different seed should give a different pattern"
