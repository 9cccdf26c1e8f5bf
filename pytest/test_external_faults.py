"""Faults injected from outside the server: no hook in its code, so they
work on any server. echod is the server under test; socat (a server
faultline did not build) shows that the process and socket faults need
nothing from the server.

    process   kill / stop the process serving one connection, found by its
              socket inode (faultline.faults.serving_process)
    socket    ss -K aborts one socket; a forged RST with the live seq
    strace    kill or delay each child at its Nth read, no recompiling
    link      nftables reject / drop on a host; tbf caps a veth's rate
    topology  two hosts joined by a veth pair in 198.18.0.0/15
"""

import contextlib
import os
import select
import signal
import socket
import time

import pytest

from faultline import capture, faults, link, paths, procs, tcpstate
from faultline.clients import echo, recv_exactly
from faultline.echod import Echod, read_events
from faultline.topology import TwoHosts
from faultline.waiting import wait_until

SOCAT_PORT = 9877
# echod's session reads with recv() (the recvfrom syscall); an earlier one
# used read(). Both, so the strace tests do not depend on which: strace
# counts each syscall of the list on its own.
READS = "read,recvfrom"


# --- helpers ----------------------------------------------------------------

def host_ps(host):
    return procs.ps_table(filter(None, map(procs.info,
                                           procs.pids_in_netns(host.netns_inode))))


def evidence(host, server=None, pcap=None, extra=""):
    """Everything a failure message should show."""
    parts = [f"processes on host {host.name}:\n{host_ps(host)}",
             f"TCP sockets:\n{tcpstate.table(host.outer_pid)}"]
    if server is not None:
        parts.append(f"event log: {server.events_path}")
    if pcap is not None and os.path.exists(pcap):
        parts.append(f"pcap {pcap}:\n{capture.describe(capture.read_segments(pcap))}")
    if extra:
        parts.append(extra)
    return "\n".join(parts)


def captured(pcap, what, predicate, timeout=5.0):
    """Wait until the pcap holds what the test needs, and return its
    segments. tcpdump writes each packet once it has read it (-U,
    --immediate-mode), but a plain SIGINT loses what it has received and
    not read yet ("4 packets received by filter, 0 packets captured"); a
    test that polls for its packets while tcpdump runs does not depend on
    how the capture is stopped."""
    def check():
        segments = capture.read_segments(pcap)
        return segments if predicate(segments) else None
    return wait_until(check, timeout, f"{what} in {pcap}",
                      seen=lambda: capture.describe(capture.read_segments(pcap)))


def bulk_echo(sock, nbytes, limit):
    """Send nbytes and read their echo at once (select, so neither side's
    buffers fill up and block the other); returns (bytes echoed, seconds).
    Bounded by `limit` seconds."""
    data = b"x" * nbytes
    sent = got = 0
    sock.setblocking(False)
    start = time.monotonic()
    try:
        while got < nbytes and time.monotonic() - start < limit:
            readable, writable, _ = select.select(
                [sock], [sock] if sent < nbytes else [], [], 0.2)
            if writable:
                sent += sock.send(data[sent:sent + 65536])
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
    finally:
        sock.setblocking(True)
    return got, time.monotonic() - start


def retransmissions(segments):
    """Data segments whose bytes their sender had already sent: each side's
    highest sequence end so far, compared modulo 2**32."""
    highest, again = {}, []
    for s in segments:
        if not s.length:
            continue
        end = (s.seq + s.length) % 2**32
        if s.src in highest and (highest[s.src] - end) % 2**32 < 2**31:
            again.append(s)
        else:
            highest[s.src] = end
    return again


def echoed(segments, port=9877):
    """Distinct payload bytes the server sent, retransmissions not counted."""
    highest = None
    for s in segments:
        if s.src[1] == port and s.length:
            end = (s.seq + s.length) % 2**32
            if highest is None:
                first, highest = s.seq, end
            elif (end - highest) % 2**32 < 2**31:
                highest = end
    return 0 if highest is None else (highest - first) % 2**32


def server_end(host, sock):
    """The server's socket of the client socket sock, on one host."""
    return tcpstate.find(host.outer_pid, local=sock.getpeername(),
                         remote=sock.getsockname())


def wait_event(server_or_path, name, count=1, timeout=5.0):
    """The event log's `name` events, once there are `count` of them."""
    def events():
        if isinstance(server_or_path, Echod):
            return server_or_path.events(name)
        return [e for e in read_events(server_or_path) if e.get("event") == name]

    def enough():
        found = events()
        return found if len(found) >= count else None
    return wait_until(enough, timeout, f"{count} {name!r} event(s) in the event log",
                      seen=lambda: str(events()))


@pytest.fixture
def socat(host):
    """socat TCP-LISTEN:9877,fork,reuseaddr EXEC:cat: a forking echo server
    faultline did not build."""
    proc = host.spawn(["socat", f"TCP-LISTEN:{SOCAT_PORT},fork,reuseaddr",
                       "EXEC:cat"], name="socat")
    wait_until(lambda: tcpstate.in_state(host.outer_pid, "LISTEN", SOCAT_PORT),
               5.0, f"socat to listen on {SOCAT_PORT}",
               seen=lambda: f"{procs.describe(proc.pid)}; stderr {proc.stderr()!r}")
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait()


# --- the process serving a connection --------------------------------------

@pytest.mark.premature
def test_kill_serving_kills_only_the_child_and_its_client_reads_eof(host):
    with Echod(host) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        child, = wait_until(server.children, 5.0, "the serving child", seen=server.ps)
        # The parent closes its copy just after fork(), maybe after the echo.
        wait_until(lambda: faults.serving_process(host, sock.getsockname()) == [child.pid],
                   5.0, f"the child {child.pid} to hold the connection alone",
                   seen=lambda: evidence(host, server))
        killed = faults.kill_serving(host, sock.getsockname())
        assert killed == [child.pid], evidence(host, server)
        assert sock.recv(16) == b"", (
            f"a killed child's kernel closes with FIN: EOF\n{evidence(host, server)}")
        reaped, = wait_event(server, "reaped")
        assert reaped.get("child") == child.nspid and reaped.get("signal") == 9, (
            f"the parent should reap its child killed by SIGKILL: {reaped}\n"
            f"{evidence(host, server)}")
        assert server.events("session_end") == [], evidence(host, server)


@pytest.mark.fd_leak
def test_leaked_connfd_makes_the_parent_a_second_holder_that_keeps_it_open(host):
    # The parent's copy outlives the child: a descriptor it leaks.
    with Echod(host, args=["--leak-connfd"], leaves={"fds"}) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        child, = wait_until(server.children, 5.0, "the serving child", seen=server.ps)
        holders = faults.serving_process(host, sock.getsockname())
        assert holders == [child.pid, server.pid], (
            f"the serving child first, then the parent that leaked connfd\n"
            f"{evidence(host, server)}\nparent's fds:\n{server.fd_table()}")
        assert faults.kill_serving(host, sock.getsockname()) == [child.pid], (
            f"kill_serving hits the serving child, not the parent\n{evidence(host, server)}")
        wait_event(server, "reaped")
        assert [s.state for s in server_end(host, sock)] == ["ESTABLISHED"], (
            f"the parent's leaked copy keeps the connection open after its child "
            f"died\n{evidence(host, server)}")


def test_stop_serving_freezes_one_connection_while_another_echoes(host):
    with Echod(host) as server:
        frozen, other = host.connect(server.port), host.connect(server.port)
        assert echo(frozen, b"a\n") == b"a\n" and echo(other, b"b\n") == b"b\n"
        stopped = faults.stop_serving(host, frozen.getsockname())
        assert [procs.state(p) for p in stopped] == ["T"], evidence(host, server)
        frozen.sendall(b"late\n")
        wait_until(lambda: [s.rx_queue for s in server_end(host, frozen)] == [5], 5.0,
                   "the 5 bytes to wait, unread, in the stopped child's socket",
                   seen=lambda: evidence(host, server))
        assert echo(other, b"still\n") == b"still\n", evidence(host, server)
        assert faults.cont(host, stopped) == stopped
        assert recv_exactly(frozen, 5) == b"late\n", evidence(host, server)


# --- sockets: ss -K and a forged RST ----------------------------------------

@pytest.mark.rst
@pytest.mark.pcap
def test_abort_socket_aborts_the_childs_read_and_resets_the_client(host):
    pcap = host.workdir / "abort.pcap"
    with capture.Capture(host, pcap), Echod(host) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        aborted = faults.abort_socket(host, sock.getpeername(), sock.getsockname())
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        end, = wait_event(server, "session_end")
        assert end.get("error") == "Software caused connection abort", (
            f"the child's read fails with ECONNABORTED: {end}\n{evidence(host, server)}")
        segments = captured(pcap, "a RST", lambda segs: any(x.has("R") for x in segs))
    conn, = capture.conversations(segments, server.port)
    assert conn.rsts_from("server") and not conn.fins_from("server"), (
        f"ss -K on {aborted.row()} sends a RST to the client\n"
        f"{evidence(host, server, pcap)}")


@pytest.mark.rst
@pytest.mark.pcap
def test_forged_rst_toward_server_ends_the_child_session_with_econnreset(host):
    pcap = host.workdir / "forged.pcap"
    with capture.Capture(host, pcap), Echod(host) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        forged = faults.forge_rst(host, sock.getsockname(), sock.getpeername())
        end, = wait_event(server, "session_end")
        assert end.get("reason") == "read" and end.get("error") == "Connection reset by peer", (
            f"the child should see ECONNRESET: {end}\n{forged.describe()}\n"
            f"{evidence(host, server)}")
        assert server_end(host, sock) == [], evidence(host, server)
        client_end = tcpstate.find(host.outer_pid, local=sock.getsockname())
        assert [s.state for s in client_end] == ["ESTABLISHED"], (
            f"the real client sent nothing and knows nothing\n{evidence(host, server)}")
        segments = captured(pcap, "the forged RST",
                            lambda segs: any(x.has("R") for x in segs))
    client, server_addr = forged.sender, forged.receiver
    message = (f"the server's challenge ACK to the probe SYN names its rcv_nxt "
               f"{forged.seq}; the one RST, from the client's address, carries "
               f"it\n{forged.describe()}\n{evidence(host, server, pcap)}")
    syns = [s for s in segments if s.src == client and s.flags == "S"]
    assert len(syns) == 2, f"the handshake's SYN and the probe\n{message}"
    challenge = [s for s in segments if s.index > syns[1].index
                 and s.src == server_addr and s.flags == "A" and s.ack == forged.seq]
    rsts = [s for s in segments if s.has("R")]
    assert challenge, message
    assert [(s.src, s.dst, s.seq) for s in rsts] == [(client, server_addr, forged.seq)], message


@pytest.mark.rst
def test_forged_rst_toward_client_resets_it_and_leaves_the_server_half_open(host):
    with Echod(host) as server:
        sock = host.connect(server.port)
        assert echo(sock, b"one\n") == b"one\n"
        client, server_addr = sock.getsockname(), sock.getpeername()
        forged = faults.forge_rst(host, client, server_addr, toward="client")
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        server_side = tcpstate.find(host.outer_pid, local=server_addr, remote=client)
        assert [s.state for s in server_side] == ["ESTABLISHED"], (
            f"the server never saw the RST: its end stays open\n{forged.describe()}\n"
            f"{evidence(host, server)}")


@pytest.mark.rst
def test_serving_process_and_abort_socket_work_on_socat_too(host, socat):
    """A server faultline did not build: the same inode scan finds socat's
    child, and ss -K aborts its socket (socat reports ECONNABORTED)."""
    sock = host.connect(SOCAT_PORT)
    assert echo(sock, b"one\n") == b"one\n"
    holder, = faults.serving_pids(host, sock.getsockname())
    assert procs.info(holder).ppid == socat.pid, (
        f"socat's forked child serves the connection\n{evidence(host)}")
    faults.abort_socket(host, sock.getpeername(), sock.getsockname())
    with pytest.raises(ConnectionResetError):
        sock.recv(16)
    socat.wait_for_output("Software caused connection abort", stream="stderr")
    assert socat.alive(), f"socat's listener lives on\n{evidence(host)}"


@pytest.mark.premature
def test_kill_serving_on_socat_closes_that_connection_and_socat_serves_on(host, socat):
    victim, other = host.connect(SOCAT_PORT), host.connect(SOCAT_PORT)
    assert echo(victim, b"a\n") == b"a\n" and echo(other, b"b\n") == b"b\n"
    killed, = faults.kill_serving(host, victim.getsockname())
    assert killed != socat.pid, f"the listener itself was hit\n{evidence(host)}"
    assert victim.recv(16) == b"", f"EOF after the kill\n{evidence(host)}"
    assert echo(other, b"still\n") == b"still\n", evidence(host)
    assert echo(host.connect(SOCAT_PORT), b"new\n") == b"new\n", evidence(host)
    assert socat.alive(), evidence(host)


# --- strace: at the Nth read, without recompiling ---------------------------

def echod_under_strace(host, nth, action):
    events = host.workdir / "echod.events.jsonl"
    traced = faults.strace_inject(
        host, [paths.binary("echod"), "--port", 9877, "--events", events],
        syscall=READS, nth=nth, action=action, name="echod")
    traced.proc.wait_for_output("listening on")
    return traced, events, traced.target_pid()


@pytest.mark.premature
def test_strace_kills_each_child_at_its_second_read_and_the_parent_survives(host):
    traced, events, parent = echod_under_strace(host, nth=2, action="kill")
    try:
        # Counts are per process: were they shared, the 2nd child would die
        # at its 1st read, before echoing.
        for n in (1, 2):
            sock = host.connect(9877)
            assert echo(sock, b"one\n") == b"one\n", traced.log_text()
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(16) == b"", (
                f"connection {n}: EOF, the child died at its read of the "
                f"client's FIN\n{traced.log_text()}\n{evidence(host)}")
            wait_event(events, "reaped", count=n)
        seen = read_events(events)
        summary = "\n".join(map(str, seen)) + f"\nstrace:\n{traced.log_text()}"
        starts = [e for e in seen if e["event"] == "child_start"]
        reaped = [e for e in seen if e["event"] == "reaped"]
        assert len(starts) == 2, summary
        assert [e["event"] for e in seen if e["event"] == "session_end"] == [], (
            f"no session ends: the children were killed inside it\n{summary}")
        assert [(e["child"], e.get("signal")) for e in reaped] == [
            (e["pid"], 9) for e in starts], summary
        assert procs.info(parent) is not None and not procs.info(parent).dead, (
            f"the parent survives: its one read() was ld.so's\n{summary}")
    finally:
        code = traced.terminate()
    assert code == 0, f"echod under strace exited {code}\n{traced.proc.stderr()}"


@pytest.mark.rst
def test_strace_kill_with_unread_data_resets_the_client(host):
    """The child is killed on entering its 2nd read with bytes still unread:
    the kernel closes a socket with unread data with RST, not FIN (RFC
    2525), and the client sees ECONNRESET. The client sends more at once
    than one read takes (16 KiB): its first segment on loopback is larger
    than that, so whatever the child's first read got, the rest of that
    segment is unread when the child enters its second (which it does at
    once: it blocks in recv(), it does not wait for data first)."""
    traced, events, _ = echod_under_strace(host, nth=2, action="kill")
    try:
        sock = host.connect(9877)
        sock.sendall(bytes(40000))
        echoed = 0
        with pytest.raises(ConnectionResetError):
            while data := sock.recv(65536):
                echoed += len(data)
            pytest.fail(f"EOF after {echoed} echoed bytes, no reset\n{traced.log_text()}")
        assert echoed <= 16384, f"{echoed} bytes echoed: more than the one read allowed"
        reaped, = wait_event(events, "reaped")
        assert reaped.get("signal") == 9, traced.log_text()
    finally:
        code = traced.terminate()
    assert code == 0, f"echod under strace exited {code}\n{traced.proc.stderr()}"


def test_strace_delays_each_childs_second_read(host):
    delay = 0.3
    traced, events, _ = echod_under_strace(host, nth=2, action=f"delay={delay * 1000:.0f}ms")
    try:
        sock = host.connect(9877)
        # The child enters its 2nd read once it has echoed the 1st line (it
        # may be before the echo reaches us), so after this instant: the
        # 2nd echo cannot come sooner than the delay after it.
        first = time.monotonic()
        assert echo(sock, b"one\n") == b"one\n"
        assert echo(sock, b"two\n") == b"two\n"
        waited = time.monotonic() - first
        assert waited >= delay - 0.001, (
            f"the 2nd echo came {waited * 1000:.0f} ms after the 1st line was sent, "
            f"expected >= {delay * 1000:.0f} ms of injected delay\n{traced.log_text()}")
    finally:
        code = traced.terminate()
    assert code == 0, f"echod under strace exited {code}\n{traced.proc.stderr()}"


# --- the link: nftables and tbf ---------------------------------------------

@pytest.mark.rst
@pytest.mark.pcap
def test_reject_with_rst_refuses_connect_with_a_rst_on_the_wire(host):
    pcap = host.workdir / "reject.pcap"
    with Echod(host) as server:
        rules = link.reject_with_rst(host, server.port)
        with capture.Capture(host, pcap):
            with pytest.raises(ConnectionRefusedError):
                host.connect(server.port)
            segments = captured(pcap, "a RST", lambda segs: any(x.has("R") for x in segs))
        assert rules.packets() == 1, f"{rules.describe()}\n{link.ruleset(host)}"
        assert server.events("accept") == [], evidence(host, server)
    assert [s.flags for s in segments] == ["S", "RA"], (
        f"a SYN answered by RST+ACK, no SYN-ACK\n{evidence(host, server, pcap)}")
    assert segments[1].src[1] == server.port, evidence(host, server, pcap)


@pytest.mark.pcap
def test_drop_syn_makes_connect_time_out(host):
    pcap = host.workdir / "drop-syn.pcap"
    with Echod(host) as server:
        rules = link.drop_syn(host, server.port)
        with capture.Capture(host, pcap):
            with pytest.raises(TimeoutError):
                host.connect(server.port, timeout=0.3)
            segments = captured(pcap, "the SYN", bool)
        assert rules.packets() >= 1, link.ruleset(host)
        assert server.events("accept") == [], evidence(host, server)
    assert segments and all(s.flags == "S" and s.dst[1] == server.port
                            for s in segments), (
        f"only the client's SYNs, never a SYN-ACK\n{evidence(host, server, pcap)}")


@pytest.mark.pcap
def test_drop_share_forces_retransmissions(host):
    pcap = host.workdir / "drop-share.pcap"
    percent, chunk, limit = 20, 64 * 1024, 5.0
    with Echod(host) as server:
        sock = host.connect(server.port)  # before the rule: no SYN is lost
        before = tcpstate.counters(host.outer_pid)["Tcp"]["RetransSegs"]
        rules = link.drop_share(host, server.port, percent)
        start, transfers, again = time.monotonic(), 0, []
        with capture.Capture(host, pcap):
            while not again and time.monotonic() - start < limit and transfers < 50:
                got, _ = bulk_echo(sock, chunk, limit)
                transfers += 1
                assert got == chunk, f"echo stalled at {got} bytes\n{evidence(host, server)}"
                # Wait for the transfer's packets to be in the file.
                segments = captured(pcap, f"{transfers} x {chunk} bytes echoed",
                                    lambda segs: echoed(segs) >= transfers * chunk)
                again = retransmissions(segments)
        dropped = rules.packets()
        rules.remove()
        after = tcpstate.counters(host.outer_pid)["Tcp"]["RetransSegs"]
    message = (f"{percent}% drop rule matched {dropped} packets in {transfers} "
               f"echoes of {chunk} bytes; the stack counted {after - before} "
               f"retransmitted segments\n{rules.describe()}\n"
               f"{evidence(host, server, pcap)}")
    assert dropped > 0, message
    assert again, f"no retransmitted data segment in the pcap\n{message}"


def test_rate_cap_holds_echo_throughput_under_the_cap(net):
    """tbf on the server's veth shapes what the server sends: the echo."""
    rate_bytes, nbytes = 1_000_000, 384 * 1024
    with Echod(net.server) as server:
        cap = link.rate_cap(net.server, net.server_iface, "8mbit", "32kb", "50ms")
        sock = net.client.connect(server.port, addr=net.server_addr)
        got, seconds = bulk_echo(sock, nbytes, 10.0)
        measured = got / seconds
        message = (f"{got} bytes echoed in {seconds:.3f} s = {measured / 1e6:.3f} MB/s "
                   f"under a cap of {rate_bytes / 1e6:.3f} MB/s (8mbit)\n{cap.stats()}")
        assert got == nbytes, message
        assert measured < 2 * rate_bytes, message


@pytest.mark.harness
def test_link_rules_are_removable_and_clear_empties_them(host):
    with Echod(host) as server:
        rules = link.reject_with_rst(host, server.port)
        with pytest.raises(ConnectionRefusedError):
            host.connect(server.port)
        rules.remove()
        assert echo(host.connect(server.port), b"a\n") == b"a\n", link.ruleset(host)
        link.drop_syn(host, server.port)
        link.drop_share(host, server.port, 100)
        link.rate_cap(host, "lo", "100mbit", "128kb", "50ms")
        link.clear(host)
        _, qdiscs, _ = host.run(["tc", "qdisc", "show", "dev", "lo"])
        assert link.TABLE not in link.ruleset(host) and "tbf" not in qdiscs, (
            f"{link.ruleset(host)}\n{qdiscs}")
        assert echo(host.connect(server.port), b"b\n") == b"b\n", link.ruleset(host)


# --- two hosts --------------------------------------------------------------

@pytest.mark.pcap
def test_two_hosts_echo_across_the_veth_and_the_server_veth_sees_it(net):
    pcap = net.server.workdir / "veth.pcap"
    with Echod(net.server) as server:
        with capture.Capture(net.server, pcap, iface=net.server_iface):
            sock = net.client.connect(server.port, addr=net.server_addr)
            assert echo(sock, b"across\n") == b"across\n", net.links()
            client = sock.getsockname()
            sock.close()
            wait_event(server, "session_end")
            segments = captured(pcap, "a FIN from each side", lambda segs: any(
                c.closed for c in capture.conversations(segs, server.port)))
    conn, = capture.conversations(segments, server.port)
    assert conn.client == client and conn.server == (net.server_addr, server.port), (
        f"{net.links()}\n{evidence(net.server, server, pcap)}")
    assert conn.handshake and conn.closed and conn.data_from("server") == 7, (
        f"{net.links()}\n{evidence(net.server, server, pcap)}")


@pytest.mark.harness
def test_two_hosts_close_leaves_no_namespace_and_no_interface(hosts_possible, artifact_dir):
    machine_links = set(os.listdir("/sys/class/net"))
    with contextlib.ExitStack() as pinned:
        with TwoHosts(artifact_dir) as net:
            pins = [pinned.enter_context(h.pin_netns()) for h in net.hosts]
            links = net.links()
            assert net.client_addr in links and net.server_addr in links, links
        wait_until(lambda: not any(p.pids() for p in pins), 5.0,
                   "no process left in either host's network namespace",
                   seen=lambda: str([p.pids() for p in pins]))
        held = namespace_descriptors([p.inode for p in pins],
                                     pins=[p.fileno() for p in pins])
        assert held == [], f"a descriptor keeps a namespace (and its veth) alive: {held}"
    assert set(os.listdir("/sys/class/net")) == machine_links, (
        "the machine's own interfaces changed")


def namespace_descriptors(inodes, pins):
    """Descriptors, in any process, open on one of these network namespaces
    (what would keep one, and its veth, alive with no process in it),
    besides this process's descriptors `pins`."""
    wanted = {f"net:[{i}]" for i in inodes}
    held = []
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        try:
            fds = procs.open_fds(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        held += [f"pid {pid} fd {fd}: {t}" for fd, t in fds.items()
                 if t in wanted and not (pid == os.getpid() and fd in pins)]
    return held


@pytest.mark.harness
def test_serving_process_names_the_connection_and_shows_the_table_when_none(host):
    with Echod(host):
        with pytest.raises(faults.NotServed) as raised:
            faults.serving_process(host, ("127.0.0.1", 1), timeout=0.05)
    text = str(raised.value)
    assert "127.0.0.1:1 " in text and "LISTEN" in text and "echod" in text, text
