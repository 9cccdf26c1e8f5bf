"""The seed experiments as functions that return what they observed. The
demo prints them, the tests assert on them: one engine, so the two cannot
drift apart."""

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import capture as cap
from . import faults, paths, procs, tcpstate
from .echod import Echod
from .waiting import wait_until

REAPER_DEFECTS = {
    "none": "no SIGCHLD handler (UNP server-v1)",
    "wait": "one wait() per SIGCHLD loses signals (UNP server-v2)",
    "waitpid": "waitpid(WNOHANG) loop (UNP server-v3)",
}


@dataclass
class CloseTogether:
    """UNP 5.8-5.10: N connections from one client (client-v2) close at the
    same moment, so N children exit together."""
    reap: str
    deterministic: bool
    children: list                      # the server's children before the close
    zombies: list                       # its zombie children afterwards
    client_status: int
    sigchld_events: list = field(default_factory=list)
    reaped_events: list = field(default_factory=list)
    ps_after: str = ""
    sockets_after: str = ""
    pcap: Path = None
    events: Path = None

    def evidence(self):
        return (f"reaper {self.reap}, {len(self.children)} children, "
                f"{len(self.zombies)} zombies, {len(self.sigchld_events)} SIGCHLD "
                f"handled, {len(self.reaped_events)} reaped\n"
                f"process table after the close:\n{self.ps_after}\n"
                f"TCP sockets:\n{self.sockets_after}\n"
                f"pcap: {self.pcap}\nevent log: {self.events}")


def start_client(host, port, conns=1, mode="block", name="echoc", extra=()):
    """echoc on a host with its stdin a pipe we write lines to."""
    argv = [paths.binary("echoc"), "--mode", mode, "--conns", conns, *extra,
            "127.0.0.1", port]
    return host.spawn(argv, name=name, stdin=subprocess.PIPE)


def talk(client, line="hello", wait_echo=True):
    """Send one line and (unless told not to) wait for its echo on the
    client's stdout."""
    before = client.stdout().count(line + "\n")
    client.stdin.write((line + "\n").encode())
    client.stdin.flush()
    if not wait_echo:
        return
    wait_until(lambda: client.stdout().count(line + "\n") > before, 5.0,
               f"the echo of {line!r} on {client.name}'s stdout",
               seen=lambda: f"stdout {client.stdout()[-500:]!r}, "
                            f"stderr {client.stderr()[-500:]!r}")


monotonic = time.monotonic


def all_exited(pids):
    """Every pid is a zombie or gone: the process has exited."""
    return all(procs.state(p) in (None, "Z") for p in pids)


def reaper_leaves(reap):
    """The faulty reapers leave zombies; the waitpid loop leaves none."""
    return () if reap == "waitpid" else {"zombies"}


def close_together(host, reap, clients=5, deterministic=True, capture=True,
                   server_args=()):
    """Run the experiment on host and return what was seen.

    deterministic: stop the server while the children exit, so that all
    their SIGCHLDs collapse into exactly one pending signal, then continue
    it. This is UNP's race made certain: without it, how many signals get
    lost depends on scheduling.
    """
    pcap = host.workdir / f"close-together-{reap}.pcap"
    capturer = cap.Capture(host, pcap).start() if capture else None
    try:
        with Echod(host, reap=reap, args=server_args, leaves=reaper_leaves(reap)) as server:
            client = start_client(host, server.port, conns=clients)
            talk(client)
            wait_until(lambda: len(server.children()) == clients, 5.0,
                       f"{clients} children of echod, one per connection",
                       seen=server.ps)
            children = server.children()
            if deterministic:
                server.stop()
            client.stdin.close()
            client_status = client.wait(5.0)
            wait_until(lambda: all_exited(c.pid for c in children), 5.0,
                       f"all {clients} children to exit after the client closed",
                       seen=server.ps)
            if deterministic:
                server.cont()
            server.wait_idle()
            result = CloseTogether(
                reap=reap, deterministic=deterministic, children=children,
                zombies=server.zombies(), client_status=client_status,
                sigchld_events=[e for e in server.events("signal")
                                if e.get("name") == "SIGCHLD"],
                reaped_events=server.events("reaped"),
                ps_after=server.ps(),
                sockets_after=tcpstate.table(host.outer_pid, server.port),
                pcap=pcap if capture else None, events=server.events_path)
    finally:
        if capturer:
            capturer.stop()
    return result


# --- the seed experiments beyond the reapers -------------------------------
#
# Each runs on a host it is given, returns what it observed as an Outcome,
# and judges nothing the caller cannot see: `holds` says whether the
# textbook phenomenon appeared, `verdict` says it in one line, `evidence`
# carries the process table, socket states and packets behind it.

@dataclass
class Outcome:
    name: str
    holds: bool
    verdict: str
    evidence: str = ""
    artifacts: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)


PREMATURE = "server terminated prematurely"


def client_end(host, port):
    """The client's socket of the one connection to port on the host."""
    def find():
        mine = [s for s in tcpstate.sockets(host.outer_pid, port) if s.remote[1] == port]
        return mine[0] if len(mine) == 1 else None
    return wait_until(find, 5.0, f"the client's socket to port {port}",
                      seen=lambda: tcpstate.table(host.outer_pid, port))


def premature_termination(host, mode="block", kill_with="outside"):
    """UNP 5.12: the child serving the client is killed while the client
    waits on stdin. kill_with: "outside" (SIGKILL found through the socket
    inode, works on any server) or "hook" (kill@before_read,nth=2)."""
    pcap = host.workdir / f"premature-{mode}-{kill_with}.pcap"
    server_faults = ["kill@before_read,nth=2"] if kill_with == "hook" else []
    facts = {}
    with cap.Capture(host, pcap), Echod(host, faults=server_faults) as server:
        client = start_client(host, server.port, mode=mode)
        talk(client, "first")
        mine = client_end(host, server.port)
        if kill_with == "outside":
            faults.kill_serving(host, mine.local)
        if mode == "select":
            # stdin stays open and silent: only the FIN can wake it
            facts["status"] = client.wait(5.0)
        else:
            wait_until(lambda: tcpstate.in_state(host.outer_pid, "CLOSE_WAIT",
                                                 server.port),
                       5.0, "the client's socket to reach CLOSE_WAIT",
                       seen=lambda: tcpstate.table(host.outer_pid, server.port))
            facts["close_wait"] = tcpstate.table(host.outer_pid, server.port)
            facts["alive_in_close_wait"] = client.alive()
            client.stdin.write(b"second\n")
            client.stdin.flush()
            facts["status"] = client.wait(5.0)
        facts["stderr"] = client.stderr()
    conn, = cap.conversations(cap.read_segments(pcap), server.port)
    fin, rst = conn.fins_from("server"), conn.rsts_from("server")
    data = [s for s in conn.segments if s.src == conn.client and s.length]
    facts["fin_data_rst"] = bool(fin and rst and data and
                                 fin[0].index < data[-1].index < rst[0].index)
    holds = facts["status"] == 4 and PREMATURE in facts["stderr"]
    if mode == "block":
        holds = holds and facts["alive_in_close_wait"] and facts["fin_data_rst"]
        verdict = ("block client sat in CLOSE_WAIT, next line drew a RST: "
                   f"exit {facts['status']} \"{PREMATURE}\"")
    else:
        verdict = f"select client noticed the FIN at once: exit {facts['status']}"
    return Outcome("premature", holds, verdict,
                   f"client stderr: {facts['stderr']!r}\n{conn.describe()}",
                   [pcap, server.events_path], facts)


def sigpipe_client(host, disposition="default"):
    """UNP 5.13: the client writes twice into a connection the server has
    reset. short=1@before_write makes one line several one-byte writes: the
    first draws the RST, the second meets it."""
    with Echod(host) as server:
        client = host.spawn([paths.binary("echoc"), "--sigpipe", disposition,
                             "--fault", "short=1@before_write", "127.0.0.1",
                             server.port], name="echoc", stdin=subprocess.PIPE)
        talk(client, "first")
        faults.kill_serving(host, client_end(host, server.port).local)
        wait_until(lambda: tcpstate.in_state(host.outer_pid, "CLOSE_WAIT", server.port),
                   5.0, "CLOSE_WAIT on the client")
        # 2,100 one-byte writes: room for a RST the kernel defers to
        # ksoftirqd on a loaded machine to land before the last of them.
        client.stdin.write(b"second-" * 300 + b"\n")
        client.stdin.flush()
        status = client.wait(5.0)
    expected = -signal.SIGPIPE if disposition == "default" else 6
    verdict = (f"client killed by signal {-status}" if status < 0
               else f"client exit {status}: {client.stderr().strip()}")
    return Outcome("sigpipe", status == expected, verdict, client.stderr(),
                   [server.events_path], {"status": status, "stderr": client.stderr()})


def server_rst(host):
    """rst@before_close: the server aborts instead of closing; the client,
    half-closed and reading to the end, sees ECONNRESET."""
    pcap = host.workdir / "server-rst.pcap"
    with cap.Capture(host, pcap), Echod(host, faults=["rst@before_close"]) as server:
        client = start_client(host, server.port, extra=["--half-close"])
        talk(client, "bye")
        client.stdin.close()
        status = client.wait(5.0)
    conn, = cap.conversations(cap.read_segments(pcap), server.port)
    holds = (status == 5 and bool(conn.rsts_from("server"))
             and not conn.fins_from("server"))
    return Outcome("rst", holds,
                   f"client exit {status} (reset by peer), server sent RST "
                   f"{'and no' if not conn.fins_from('server') else 'and a'} FIN",
                   conn.describe(), [pcap, server.events_path],
                   {"status": status, "conversation": conn, "stderr": client.stderr()})


def delayed_reads(host, delay_ms=200):
    """delay=T@before_read on connection 1 only: its echo takes at least T,
    connection 2's comes back first."""
    with Echod(host, faults=[f"delay={delay_ms}ms@before_read,conn=1"]) as server:
        start = monotonic()  # before the slow child, and its delay, exist
        slow = host.connect(server.port)
        fast = host.connect(server.port)
        slow.sendall(b"slow\n")
        fast.sendall(b"fast\n")
        fast_echo = fast.recv(16)
        fast_done = monotonic() - start
        slow_echo = slow.recv(16)
        slow_done = monotonic() - start
    holds = (fast_echo == b"fast\n" and slow_echo == b"slow\n"
             and slow_done >= delay_ms / 1000 and fast_done < slow_done)
    return Outcome("delay", holds,
                   f"delayed echo after {slow_done * 1000:.0f} ms, the other "
                   f"connection's after {fast_done * 1000:.0f} ms",
                   artifacts=[server.events_path],
                   facts={"slow": slow_done, "fast": fast_done,
                          "echoes": (slow_echo, fast_echo)})


def close_wait(host, leak=True, sessions=3):
    """The FreeBSD handbook's warning: a parent that keeps the accepted
    socket leaves it in CLOSE_WAIT after the client closes, one descriptor
    more per connection."""
    args = ["--leak-connfd"] if leak else []
    with Echod(host, args=args, leaves={"fds", "close_wait"} if leak else ()) as server:
        baseline = server.fd_count()
        for n in range(1, sessions + 1):
            sock = host.connect(server.port)
            sock.sendall(b"ping\n")
            sock.recv(16)
            sock.close()
            wait_until(lambda: len(server.events("child_exit")) == n, 5.0,
                       f"session {n} to end", seen=server.ps)
        server.wait_idle()
        stuck = tcpstate.in_state(host.outer_pid, "CLOSE_WAIT", server.port)
        held = {s.inode for s in stuck} <= procs.socket_inodes(server.pid)
        growth = server.fd_count() - baseline
        evidence = f"{tcpstate.table(host.outer_pid, server.port)}\n{server.fd_table()}"
    expect = sessions if leak else 0
    holds = len(stuck) == expect and growth == expect and held
    return Outcome("close_wait", holds,
                   f"{len(stuck)} sockets in CLOSE_WAIT, parent descriptors +{growth} "
                   f"after {sessions} closed sessions", evidence, [server.events_path],
                   {"close_wait": stuck, "growth": growth, "held_by_parent": held})


def sighup_reload(host):
    """The FreeBSD handbook's SIGHUP: max_conns = 1 re-read while a session
    is open; the open session goes on, a new one is refused; a broken file
    is refused and the old config stays."""
    with Echod(host, config="# empty\n") as server:
        open_session = host.connect(server.port)
        open_session.sendall(b"a\n")
        open_session.recv(16)
        applied = server.reload("max_conns = 1\n")
        open_session.sendall(b"b\n")
        still_open = open_session.recv(16) == b"b\n"
        refused = host.connect(server.port).recv(16) == b""
        broken = server.reload("max_conns = 1\nbogus = 3\n")
        kept = host.connect(server.port).recv(16) == b""
    holds = (applied["event"] == "reload" and still_open and refused
             and broken["event"] == "reload_failed" and kept)
    return Outcome("reload", holds,
                   f"open session {'kept' if still_open else 'LOST'}, new one "
                   f"{'refused' if refused else 'ACCEPTED'} at max_conns=1; broken "
                   f"file {'kept it' if kept else 'CHANGED it'} "
                   f"({Path(broken.get('error', '?')).name})",
                   artifacts=[server.events_path],
                   facts={"applied": applied, "broken": broken, "still_open": still_open,
                          "refused": refused, "kept": kept})


def sigterm_drain(host):
    """SIGTERM with a session open: the listener closes first, the session
    echoes the line already in its receive queue, the server exits 0."""
    # The child sleeps 1 s before its second read: ample time, even on a
    # loaded machine, to see the last line wait in its queue and send SIGTERM.
    server = Echod(host, faults=["delay=1s@before_read,nth=2"], drain_ms=3000).start()
    try:
        sock = host.connect(server.port)
        sock.sendall(b"first\n")
        sock.recv(16)
        sock.sendall(b"last line\n")
        wait_until(lambda: any(s.rx_queue == len(b"last line\n")
                               for s in tcpstate.sockets(host.outer_pid, server.port)),
                   5.0, "the last line to wait in the child's receive queue",
                   seen=lambda: tcpstate.table(host.outer_pid, server.port))
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: server.events("stop"), 5.0, "the listener to close")
        try:
            host.connect(server.port)
            refused = False
        except ConnectionRefusedError:
            refused = True
        last = sock.recv(16)
        eof = sock.recv(16) == b""
        status = server.proc.wait(5.0)
    finally:
        server.terminate(check=False)
    holds = refused and last == b"last line\n" and eof and status == 0
    return Outcome("shutdown", holds,
                   f"new connect {'refused' if refused else 'ACCEPTED'}, open "
                   f"session got {last!r} then {'EOF' if eof else 'more'}, exit {status}",
                   server.proc.stderr(), [server.events_path],
                   {"refused": refused, "last": last, "eof": eof, "status": status,
                    "ends": server.events("session_end")})


def eintr_survival(host, reap="waitpid", sessions=20):
    """Children exiting while the parent waits for connections: every
    SIGCHLD interrupts the wait (UNP 5.9); the server must keep serving."""
    with Echod(host, reap=reap, leaves=reaper_leaves(reap)) as server:
        socks = [host.connect(server.port) for _ in range(sessions)]
        wait_until(lambda: len(server.children()) == sessions, 5.0,
                   f"{sessions} children", seen=server.ps)
        children = server.children()
        for s in socks:
            s.close()
        wait_until(lambda: all_exited(c.pid for c in children), 5.0,
                   "every child to exit", seen=server.ps)
        server.wait_idle()
        interrupted = len([e for e in server.events("signal") if e["name"] == "SIGCHLD"])
        late = host.connect(server.port)
        late.sendall(b"still there?\n")
        answer = late.recv(64)
    holds = answer == b"still there?\n"
    return Outcome("eintr", holds,
                   f"{interrupted} SIGCHLD interrupted the wait; a new connection "
                   f"{'was served' if holds else 'was NOT served'}",
                   artifacts=[server.events_path],
                   facts={"interrupted": interrupted, "answer": answer})
