"""Checks that hold for any sound TCP echo server, including ones faultline
did not write. Each check gets a fresh host and a freshly started server
(so a hard-coded port is fine), drives it with clients made in the host's
network stack, and returns a Verdict that says what it saw.

The same checks run three ways: `./faultline check --server-cmd CMD`,
`pytest --server-cmd CMD --server-port P` (pytest/test_byo.py), and the
conformance suite over every echod model (pytest/test_conformance.py);
checkrun.py runs them, one fresh host and server each, turns whatever
happens (the server dying, a check raising) into a verdict, and reports.

The checks of process and socket hygiene need no echo (needs_echo=False):
they talk to the server through ctx.exchange(sock), which does what the
protocol asks (protocol.py), so they run on any TCP server.
"""

import hashlib
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .clients import recv_exactly, reset
from .evidence import Evidence, Table, Text
from .protocol import ECHO, WrongReply
from . import procs, tcpstate
from .waiting import WaitTimeout, wait_until

# How long a check gives the server to settle (a zombie to be reaped, a
# socket to be closed) before it counts what is left: above the 0.5 s that
# Python's ForkingMixIn takes between two reaps. `faultline check --settle`.
DEFAULT_SETTLE = 1.0


@dataclass
class Verdict:
    """passed: the server did what the check asks. error: the check could
    not say, by the harness's own fault (the traceback is in the
    artifacts). skipped: the check does not apply (an echo check on a
    server checked with --protocol none). evidence: a str, or sections
    (Text, Table, Evidence) that print bounded. notes: what the run
    noticed besides the verdict (a server that had to be SIGKILLed)."""
    passed: bool
    summary: str
    evidence: str = ""
    artifacts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    error: bool = False
    skipped: bool = False
    seconds: float = 0.0

    def __post_init__(self):
        self.evidence = Evidence(self.evidence)

    @property
    def status(self):
        """pass, FAIL, ERROR or skip: as the run prints it."""
        if self.error:
            return "ERROR"
        if self.skipped:
            return "skip"
        return "pass" if self.passed else "FAIL"

    @classmethod
    def harness_error(cls, summary, evidence=""):
        return cls(False, summary, evidence, error=True)

    @classmethod
    def skip(cls, reason):
        return cls(False, reason, skipped=True)


@dataclass
class Check:
    name: str
    title: str
    run: object
    capture: bool = True
    needs_echo: bool = True


CHECKS = []


def check(name, title, capture=True, needs_echo=True):
    """Register a check. needs_echo=False: it only connects, exchanges
    what the protocol says (ctx.exchange) and closes, so it runs on any
    TCP server."""
    def register(fn):
        CHECKS.append(Check(name, title, fn, capture, needs_echo))
        return fn
    return register


def by_name(names):
    known = {c.name: c for c in CHECKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown check {', '.join(unknown)} "
                       f"(checks: {', '.join(known)})")
    return [known[n] for n in names]


def fd_kind(row):
    """What a descriptor row points at: socket, pipe, anon_inode, /dev, file."""
    target = row.partition("-> ")[2]
    for kind in ("socket", "pipe", "anon_inode"):
        if target.startswith(kind + ":"):
            return kind
    return "/dev" if target.startswith("/dev/") else "file"


class Context:
    """What a check works with: the host, the running server, a folder,
    the protocol to speak and the settle window."""

    def __init__(self, host, server, workdir, protocol=ECHO, settle=DEFAULT_SETTLE):
        self.host = host
        self.server = server
        self.port = server.port
        self.workdir = Path(workdir)
        self.protocol = protocol
        self.settle = settle
        self.connections = 0
        self.doing = None

    def connect(self, timeout=5.0):
        self.connections += 1
        return self.host.connect(self.port, timeout=timeout)

    def step(self, what):
        """Say what the check is doing now ("5 clients closing together"):
        a server that dies then is reported as having died after it."""
        self.doing = what

    def exchange(self, sock):
        """The protocol's exchange on a connection the check made: the echo
        of a probe, a request and its reply, or, for --protocol none, only
        the proof that the server took the connection (accepted it and went
        back to its accept wait). Returns the reply; raises WrongReply."""
        if self.protocol.name == "none":
            self.wait_taken(sock)
            return b""
        return self.protocol.exchange(sock)

    def wait_taken(self, sock, timeout=5.0):
        """The server took this connection out of its accept queue (its end
        has a descriptor, or was already closed: a daytime server) and is
        back in its accept wait: any process it makes for it exists."""
        here = sock.getsockname()

        def taken():
            queued = any(end.state in ("SYN_RECV", "ESTABLISHED") and not end.inode
                         for end in tcpstate.find(self.host.outer_pid, remote=here))
            return not queued and self.server.idle()
        wait_until(taken, timeout, f"the server to accept the connection from "
                                   f"{here[0]}:{here[1]} and wait for the next",
                   seen=lambda: tcpstate.table(self.host.outer_pid, self.port))

    def evidence(self, *first):
        """Sections (text or tables) the check adds, then the process
        table, the TCP sockets on the port and the server's descriptors:
        structured, bounded on a terminal, whole in the artifacts. Never
        raises: what cannot be read (the server is gone) says so."""
        s = self.server
        return Evidence(*first, *server_tables(
            ("process table", lambda: Table.from_text("process table", s.ps(), "STAT")),
            (f"TCP sockets on port {self.port}", lambda: Table.from_text(
                f"TCP sockets on port {self.port}", s.sockets(), "STATE")),
            (f"descriptors of pid {s.pid}", lambda: Table.by(
                f"descriptors of pid {s.pid}", None, s.fd_table().splitlines(),
                fd_kind))))

    def served(self, data=None):
        """A new connection gets the protocol's reply (the echo of data):
        the server is alive and serving."""
        if not self.server.alive():
            return False
        try:
            with self.connect() as sock:
                if data is not None and self.protocol.echoes:
                    self.protocol.exchange(sock, data)
                else:
                    self.exchange(sock)
                return True
        except (OSError, WrongReply, WaitTimeout):
            return False


def server_tables(*named):
    """Each (title, make) made, or a line saying why it could not be."""
    for title, make in named:
        try:
            yield make()
        except (FileNotFoundError, ProcessLookupError):
            yield Text(f"{title}: none (the process is gone)")
        except Exception as e:  # evidence must never cost the verdict
            yield Text(f"{title}: could not be read ({type(e).__name__}: {e})")


# --- small client tools ------------------------------------------------------

def payload(size, seed):
    """Deterministic bytes with NULs in them."""
    data = bytearray(random.Random(seed).randbytes(size))
    data[::97] = bytes(len(data[::97]))
    return bytes(data)


def digest(data):
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def echo_through(ctx, data):
    """Send data while reading its echo (a sender thread, so a large
    payload cannot deadlock on full buffers); returns what came back."""
    sock = ctx.connect(timeout=20.0)
    sender = threading.Thread(target=sock.sendall, args=(data,))
    sender.start()
    try:
        return recv_exactly(sock, len(data))
    finally:
        sender.join(20.0)
        sock.close()


def new_children(ctx, before):
    """Children of the server that were not there before (pids)."""
    return [c for c in ctx.server.children() if c.pid not in before]


def wait_exited(ctx, pids, what):
    wait_until(lambda: all(procs.state(p) in (None, "Z") for p in pids), 5.0,
               what, seen=ctx.server.ps)


# --- echo correctness -----------------------------------------------------------

@check("binary-echo", "byte-exact echo of binary data with NULs, and of 8 MB")
def binary_echo(ctx):
    for size in (1, 4096, 65537, 8 << 20):
        data = payload(size, size)
        back = echo_through(ctx, data)
        if back != data:
            first = next((i for i, (a, b) in enumerate(zip(data, back)) if a != b),
                         min(len(data), len(back)))
            return Verdict(False, f"{size}-byte payload: sent {digest(data)}, got "
                                  f"{digest(back)}; first difference at byte {first}",
                           ctx.evidence())
    return Verdict(True, "1 B, 4 KiB, 64 KiB+1 and 8 MiB came back byte for byte")


@check("concurrent-clients", "100 concurrent clients with distinct payloads get "
                             "only their own bytes back")
def concurrent_clients(ctx, clients=100, size=20000):
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(clients):
        sock = ctx.connect()
        sock.setblocking(False)
        data = payload(size, 1000 + i)
        state[sock] = {"id": i, "out": memoryview(data), "want": data, "got": bytearray()}
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    try:
        def progress():
            for key, events in sel.select(timeout=0.05):
                st = state[key.fileobj]
                if events & selectors.EVENT_WRITE and st["out"]:
                    try:
                        n = key.fileobj.send(st["out"][:65536])
                        st["out"] = st["out"][n:]
                    except BlockingIOError:
                        pass
                    if not st["out"]:
                        sel.modify(key.fileobj, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    chunk = key.fileobj.recv(65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    st["got"] += chunk
            return all(len(st["got"]) >= size for st in state.values())
        try:
            wait_until(progress, 30.0, f"{clients} clients to get their echoes",
                       first_interval=0, max_interval=0)
        except WaitTimeout:
            pass
        wrong = [st["id"] for st in state.values() if bytes(st["got"]) != st["want"]]
    finally:
        for sock in state:
            sock.close()
        sel.close()
    if wrong:
        st = next(s for s in state.values() if s["id"] == wrong[0])
        return Verdict(False, f"{len(wrong)} of {clients} clients got wrong bytes; client "
                              f"{wrong[0]} got {digest(bytes(st['got']))}, "
                              f"expected {digest(st['want'])}", ctx.evidence())
    return Verdict(True, f"{clients} clients x {size} bytes, each got exactly its own")


@check("half-close", "after shutdown(SHUT_WR) the whole tail comes back, then EOF")
def half_close(ctx):
    data = payload(300000, 3)
    sock = ctx.connect(timeout=3.0)
    sender = threading.Thread(target=lambda: (sock.sendall(data),
                                              sock.shutdown(socket.SHUT_WR)))
    sender.start()
    back = bytearray()
    try:
        while chunk := sock.recv(65536):
            back += chunk
    except OSError as e:
        sender.join(5.0)
        evidence = ctx.evidence()
        sock.close()
        if bytes(back) == data:
            return Verdict(False, f"the whole echo came back but no EOF followed within "
                                  f"3 s ({type(e).__name__}): the server never closed its "
                                  f"end (a process still holds the socket?)", evidence)
        return Verdict(False, f"reading after the half-close: {e}; got "
                              f"{digest(bytes(back))} of {digest(data)}", evidence)
    sender.join(5.0)
    sock.close()
    if bytes(back) != data:
        return Verdict(False, f"half-close: sent {digest(data)}, got {digest(bytes(back))} "
                              f"before EOF", ctx.evidence())
    return Verdict(True, f"{len(data)} bytes then EOF after SHUT_WR")


# --- resets -----------------------------------------------------------------------

@check("early-rst", "a connection reset before accept() is survived", needs_echo=False)
def early_rst(ctx):
    holders = listener_holders(ctx)
    for pid in holders:
        procs.stop(pid)
    try:
        doomed = ctx.connect()
        reset(doomed)
    finally:
        for pid in holders:
            procs.cont(pid)
    if not ctx.served():
        return Verdict(False, "after a connection was reset in its accept queue the "
                              "server no longer serves", ctx.evidence())
    return Verdict(True, "reset in the accept queue; the next connection was served")


@check("rst-mid-session", "a RST in the middle of a transfer ends only that session")
def rst_mid_session(ctx):
    bystander = ctx.connect()
    bystander.sendall(b"before\n")
    if recv_exactly(bystander, 7) != b"before\n":
        return Verdict(False, "no echo before the reset", ctx.evidence())
    victim = ctx.connect()
    victim.setblocking(False)
    sent = 0
    try:
        while sent < 1 << 20:
            sent += victim.send(payload(65536, sent)[: (1 << 20) - sent])
    except BlockingIOError:
        pass
    reset(victim)
    bystander.sendall(b"after\n")
    answer = recv_exactly(bystander, 6)
    bystander.close()
    if answer != b"after\n":
        return Verdict(False, f"the other session got {answer!r} after the reset",
                       ctx.evidence())
    if not ctx.served():
        return Verdict(False, "the server stopped serving after a RST mid-transfer",
                       ctx.evidence())
    return Verdict(True, f"RST after {sent} bytes; the other session and new ones go on")


@check("dead-peer-write", "a client that makes the server write to a dead peer "
                          "does not kill the server")
def dead_peer_write(ctx):
    before = {c.pid for c in ctx.server.children()}
    sock = ctx.connect()
    victim = sock.getsockname()
    sock.setblocking(False)
    try:
        for i in range(64):
            sock.send(payload(65536, i))
    except BlockingIOError:
        pass
    sock.close()  # unread echo in our buffer: close sends RST
    kids = [c.pid for c in new_children(ctx, before)]
    wait_until(lambda: not tcpstate.find(ctx.host.outer_pid, remote=victim,
                                         with_inode=True),
               5.0, "the server to let go of the reset connection",
               seen=lambda: tcpstate.table(ctx.host.outer_pid, ctx.port))
    if kids:
        wait_exited(ctx, kids, "the session's process to end after the reset")
    if not ctx.served():
        return Verdict(False, "the server died or stopped serving after writing to a "
                              "reset connection (SIGPIPE?)", ctx.evidence())
    return Verdict(True, "the server wrote into a reset connection and still serves")


# --- processes and descriptors -------------------------------------------------

def close_together(ctx, stop_server):
    before = {c.pid for c in ctx.server.children()}
    socks = [ctx.connect() for _ in range(5)]
    for s in socks:
        ctx.exchange(s)
    kids = [c.pid for c in new_children(ctx, before)]
    if stop_server:
        ctx.server.stop()
    for s in socks:
        s.close()
    if kids:
        wait_exited(ctx, kids, f"the {len(kids)} serving processes to exit")
    if stop_server:
        ctx.server.cont()
    ctx.server.wait_idle()
    zombies = ctx.server.zombies()
    if zombies:
        return Verdict(False, f"{len(zombies)} zombie children after 5 clients closed "
                              f"together{' (one SIGCHLD for all)' if stop_server else ''}: "
                              f"the SIGCHLD handler does not reap every exited child",
                       ctx.evidence())
    kind = f"{len(kids)} children exited" if kids else "no child processes"
    return Verdict(True, f"{kind}, 0 zombies")


@check("zombies", "no zombies after 5 clients close together", needs_echo=False)
def zombies(ctx):
    return close_together(ctx, stop_server=False)


@check("lost-sigchld", "no zombies when 5 exits raise one SIGCHLD (server stopped "
                       "while its children exit)", needs_echo=False)
def lost_sigchld(ctx):
    return close_together(ctx, stop_server=True)


def sessions_in_turn(ctx, count):
    for _ in range(count):
        with ctx.connect() as sock:
            ctx.exchange(sock)


@check("close-wait", "no socket left in CLOSE_WAIT after the clients close",
       needs_echo=False)
def close_wait(ctx):
    sessions_in_turn(ctx, 3)
    try:
        wait_until(lambda: not tcpstate.in_state(ctx.host.outer_pid, "CLOSE_WAIT", ctx.port),
                   2.0, "the server to close its end of every closed connection")
    except WaitTimeout:
        stuck = tcpstate.in_state(ctx.host.outer_pid, "CLOSE_WAIT", ctx.port)
        holders = {p for s in stuck for p in procs.socket_holders(
            s.inode, procs.pids_in_netns(ctx.host.netns_inode))}
        return Verdict(False, f"{len(stuck)} sockets stay in CLOSE_WAIT after their "
                              f"clients closed, held by pid {sorted(holders)}: a process "
                              f"keeps the accepted socket open (the parent forgets to "
                              f"close connfd?)", ctx.evidence())
    return Verdict(True, "3 sessions closed, no CLOSE_WAIT left")


@check("descriptors", "the server's descriptor count does not grow per connection",
       needs_echo=False)
def descriptors(ctx):
    baseline = ctx.server.fd_count()
    sessions_in_turn(ctx, 5)
    try:
        wait_until(lambda: ctx.server.fd_count() <= baseline, 2.0,
                   "the descriptor count to return to its baseline")
    except WaitTimeout:
        grown = ctx.server.fd_count() - baseline
        return Verdict(False, f"pid {ctx.server.pid} holds {grown} more descriptors "
                              f"after 5 closed connections ({baseline} -> "
                              f"{baseline + grown}): one leaked per connection",
                       ctx.evidence())
    return Verdict(True, f"{baseline} descriptors before and after 5 connections")


@check("eintr", "children exiting while the server waits in accept(): it keeps serving",
       needs_echo=False)
def eintr(ctx):
    before = {c.pid for c in ctx.server.children()}
    socks = [ctx.connect() for _ in range(20)]
    for s in socks:
        ctx.exchange(s)
    kids = [c.pid for c in new_children(ctx, before)]
    for s in socks:
        s.close()
    if kids:
        wait_exited(ctx, kids, "20 serving processes to exit")
    ctx.server.wait_idle()
    if not ctx.served():
        return Verdict(False, "after 20 children exited during its wait the server "
                              "no longer serves (EINTR not handled?)", ctx.evidence())
    return Verdict(True, f"{len(kids)} children exited during the wait; still serving")


@check("churn", "2,000 connect-and-close cycles (at most 20 s) leave no zombie, "
                "descriptor, thread or CLOSE_WAIT behind", capture=False,
       needs_echo=False)
def churn(ctx, cycles=2000, seconds=20.0):
    server = ctx.server
    fds, threads = server.fd_count(), server.thread_count()
    before = {c.pid for c in server.children()}

    def loop():
        # Bounded in count and in time: a server with a tiny listen backlog
        # (socat's is 5) makes the kernel drop SYNs, each retried after 1 s.
        deadline = time.monotonic() + seconds
        done = 0
        while done < cycles and time.monotonic() < deadline:
            s = socket.socket()
            s.settimeout(5.0)
            s.connect(("127.0.0.1", ctx.port))
            s.close()
            done += 1
        return done
    wanted = cycles
    cycles = ctx.host.in_netns(loop)
    bound = (f" ({cycles} of {wanted} within the {seconds:g} s bound: slow accepts, "
             f"a small listen backlog?)" if cycles < wanted else "")

    def settled():
        extra = [c for c in server.children() if c.pid not in before]
        return (not extra and server.fd_count() <= fds
                and server.thread_count() <= threads
                and not tcpstate.in_state(ctx.host.outer_pid, "CLOSE_WAIT", ctx.port))
    try:
        wait_until(settled, 10.0, "the server to settle after the churn")
    except WaitTimeout:
        extra = [c for c in server.children() if c.pid not in before]
        z = [c for c in extra if c.state == "Z"]
        cw = tcpstate.in_state(ctx.host.outer_pid, "CLOSE_WAIT", ctx.port)
        return Verdict(False, f"after {cycles} cycles: {len(z)} zombies, "
                              f"{len(extra) - len(z)} live extra children, descriptors "
                              f"{fds} -> {server.fd_count()}, threads {threads} -> "
                              f"{server.thread_count()}, {len(cw)} CLOSE_WAIT",
                       ctx.evidence())
    if not ctx.served():
        return Verdict(False, f"the server stopped serving after {cycles} cycles",
                       ctx.evidence())
    return Verdict(True, f"{cycles} cycles; children, descriptors ({fds}), threads "
                         f"({threads}) back to baseline, no CLOSE_WAIT{bound}")


@check("slow-consumer", "a client that never reads does not stall the others")
def slow_consumer(ctx):
    hog = ctx.connect()
    hog.setblocking(False)
    pushed = 0
    try:
        while pushed < 64 << 20:  # until both directions' buffers are full
            pushed += hog.send(payload(65536, 9))
    except BlockingIOError:
        pass
    try:
        with ctx.connect(timeout=5.0) as other:
            other.sendall(b"am I stalled?\n")
            answer = recv_exactly(other, 14)
    except OSError as e:
        answer = repr(e).encode()
    hog.close()
    if answer != b"am I stalled?\n":
        return Verdict(False, f"with one client not reading ({pushed} bytes pushed), "
                              f"another got {answer!r}", ctx.evidence())
    return Verdict(True, f"a client sat on {pushed} unread bytes; another was served")


# --- helpers on processes ----------------------------------------------------

def listener_holders(ctx):
    """Every process holding the listening socket (a pre-forked pool's
    workers accept too)."""
    pids = set()
    for s in tcpstate.in_state(ctx.host.outer_pid, "LISTEN", ctx.port):
        pids |= set(procs.socket_holders(s.inode,
                                         procs.pids_in_netns(ctx.host.netns_inode)))
    return sorted(pids)
