"""Faults injected from outside a server: they need no hook in its code, so
they work on any server, including ones faultline did not build.

    serving_process(host, client_addr)   who holds the server end of a connection
    serving_pids(host, client_addr)      those of them serving it (no ancestor)
    kill_serving / stop_serving / cont   signal that process (SIGKILL, SIGSTOP, SIGCONT)
    abort_socket(host, local, remote)    `ss -K`: the kernel aborts one socket
    forge_rst(host, client, server)      a RST with the live sequence number (scapy)
    strace_inject(host, argv, ...)       kill or delay a binary's processes at
                                         their Nth call of a syscall

Processes are found the way `ss -p` finds them: the connection's socket
inode in the host's TCP table, then a scan of /proc/*/fd of the processes
that live in the host's network namespace for "socket:[inode]". Only those
processes are ever signalled, through a pidfd checked against the host's
namespace, so a recycled pid cannot be hit.
"""

import os
import random
import re
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procs, tcpstate
from .waiting import WaitTimeout, wait_until


class FaultError(RuntimeError):
    """A fault could not be injected; the message says why and what was seen."""


class NotServed(FaultError):
    """No process holds the server end of the connection."""


def _fmt(addr):
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_ps(host):
    return procs.ps_table(filter(None, map(procs.info,
                                           procs.pids_in_netns(host.netns_inode))))


# --- who serves a connection ----------------------------------------------

def _leaked(holders):
    """Holders that are an ancestor of another holder: the process that was
    handed the socket (a forked child) is the one serving it; an ancestor
    that also holds it has leaked its copy."""
    return {a for p in holders for a in procs.ancestors(p) if a in holders}


def serving_process(host, client_addr, timeout=2.0):
    """Global pids of the processes that hold the server-side socket of the
    connection whose client end is client_addr=(ip, port).

    Normally one pid. Several when the descriptor is shared: a parent that
    leaked the accepted socket (echod --leak-connfd, the FreeBSD handbook's
    warning) holds it as well as the child that serves it; the list is then
    ordered serving processes first, their ancestors after.

    Polls up to `timeout` because a connection still waiting in the accept
    queue has no inode yet. Call it once the server has the connection in
    hand (after an echo, say): between accept() and fork() a forking
    server's parent alone holds the socket.
    Raises NotServed, with the socket table and the host's processes.
    """
    def holders():
        found = []
        for s in tcpstate.find(host.outer_pid, remote=client_addr, with_inode=True):
            found += procs.socket_holders(s.inode, procs.pids_in_netns(host.netns_inode))
        return sorted(set(found))

    try:
        found = wait_until(holders, timeout,
                           f"a process holding the server end of {_fmt(client_addr)}")
    except WaitTimeout:
        raise NotServed(
            f"no process on host {host.name} holds the server end of the "
            f"connection from {_fmt(client_addr)} (not accepted yet, closed, "
            f"or not on this host)\nTCP sockets:\n"
            f"{tcpstate.table(host.outer_pid)}\nprocesses:\n{_host_ps(host)}"
        ) from None
    leaked = _leaked(found)
    return [p for p in found if p not in leaked] + sorted(leaked)


def serving_pids(host, client_addr, timeout=2.0):
    """The processes serving the connection: serving_process() without an
    ancestor that holds a copy too, whether it leaked it or, a forking
    parent just back from fork(), has not closed it yet."""
    return _pick(serving_process(host, client_addr, timeout), every_holder=False)


def _signal(host, pid, signo):
    """procs.send_signal, refusing any process that is not on host: never
    anything outside the harness's hosts."""
    try:
        return procs.send_signal(pid, signo, netns=host.netns_inode)
    except procs.NotOnHost as e:
        raise FaultError(f"host {host.name}: {e}") from None


def _dead(pid):
    i = procs.info(pid)
    return i is None or i.dead


def _pick(holders, every_holder):
    if every_holder:
        return holders
    leaked = _leaked(holders)
    return [p for p in holders if p not in leaked]


def kill_serving(host, client_addr, sig=signal.SIGKILL, every_holder=False,
                 timeout=5.0):
    """Send sig to the process serving client_addr's connection; return the
    pids signalled. Only serving processes are hit, not an ancestor that
    merely leaked the descriptor, unless every_holder. After SIGKILL, waits
    (bounded) until they have exited."""
    pids = [p for p in _pick(serving_process(host, client_addr), every_holder)
            if _signal(host, p, sig)]
    if sig == signal.SIGKILL:
        wait_until(lambda: all(_dead(p) for p in pids), timeout,
                   f"pids {pids} serving {_fmt(client_addr)} to die of SIGKILL",
                   seen=lambda: _host_ps(host))
    return pids


def stop_serving(host, client_addr, every_holder=False, timeout=5.0):
    """SIGSTOP the process serving client_addr's connection, and return its
    pids once the kernel shows them stopped (state T)."""
    pids = [p for p in _pick(serving_process(host, client_addr), every_holder)
            if _signal(host, p, signal.SIGSTOP)]
    wait_until(lambda: all(procs.state(p) in ("T", None) for p in pids), timeout,
               f"pids {pids} serving {_fmt(client_addr)} to stop",
               seen=lambda: _host_ps(host))
    return pids


def cont(host, target, timeout=5.0):
    """SIGCONT what stop_serving stopped. target: the pids stop_serving
    returned, or the client address (ip, port) of the connection: then every
    holder is continued (SIGCONT does nothing to a running process).
    Returns the pids continued, once none is in state T."""
    if len(target) == 2 and isinstance(target[0], str):
        pids = serving_process(host, target)
    else:
        pids = list(target)
    pids = [p for p in pids if _signal(host, p, signal.SIGCONT)]
    wait_until(lambda: all(procs.state(p) != "T" for p in pids), timeout,
               f"pids {pids} to continue", seen=lambda: _host_ps(host))
    return pids


# --- the kernel aborts a socket -------------------------------------------

def abort_socket(host, local, remote, timeout=2.0):
    """Abort the socket local -> remote on host with `ss -K` (the kernel's
    INET_DIAG_DESTROY): it is closed at once, its owner's next call fails
    with ECONNABORTED and the peer receives a RST. Returns the TcpSocket
    that was aborted, once it is gone from the host's TCP table."""
    def live():
        return [s for s in tcpstate.find(host.outer_pid, local=local, remote=remote)
                if s.state != "TIME_WAIT"]

    found = live()
    if not found:
        raise FaultError(f"no TCP socket {_fmt(local)} -> {_fmt(remote)} on "
                         f"host {host.name}\n{tcpstate.table(host.outer_pid)}")
    victim = found[0]

    # The addresses exactly as the kernel holds them (an IPv4 peer of a
    # dual-stack listener is ::ffff:a.b.c.d there); ss reads "a:b:c" as
    # address "a:b" and port "c", so IPv6 goes in brackets.
    def ss_addr(ip):
        return f"[{ip}]" if ":" in ip else ip

    code, out, err = host.run(
        ["ss", "-K", "-t", "-n", "src", ss_addr(victim.local[0]), "sport", "=",
         str(victim.local[1]), "dst", ss_addr(victim.remote[0]), "dport", "=",
         str(victim.remote[1])], name="ss-K")
    if code != 0:
        raise FaultError(f"ss -K on host {host.name} failed ({code}): {err.strip()}")

    wait_until(lambda: not live(), timeout,
               f"socket {_fmt(local)} -> {_fmt(remote)} to disappear after ss -K "
               f"(does the kernel have INET_DIAG_DESTROY?)",
               seen=lambda: f"ss said: {out.strip()!r} {err.strip()!r}\n"
                            f"{tcpstate.table(host.outer_pid)}")
    return victim


# --- a forged RST with the live sequence number ---------------------------

@dataclass
class ForgedRst:
    """What forge_rst did: the receiver's rcv_nxt it learned, the RST it
    sent (seq = that rcv_nxt), and the segments it saw, for evidence."""
    sender: tuple
    receiver: tuple
    seq: int
    attempts: int
    evidence: list = field(default_factory=list)

    def describe(self):
        return "\n".join(self.evidence)


ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800


def _open_raw(iface):
    """In the host's netns: a raw IPv4 socket to send (IP_HDRINCL, what
    scapy's L3RawSocket uses) and a cooked packet socket that sees every
    packet on iface (None: all of the host's interfaces). ETH_P_ALL, not
    ETH_P_IP: only ETH_P_ALL taps see what the host sends, and when the
    forging host is the receiver's, its answer only goes out."""
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    if iface:
        sniff.bind((iface, ETH_P_ALL))
    sniff.setblocking(False)
    return send, sniff


def _drain(sock, limit=100000):
    for _ in range(limit):
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def _answer(sniff, src, dst, timeout):
    """The first TCP segment src -> dst with ACK (and neither SYN nor RST)
    seen within timeout, as a scapy packet, or None."""
    from scapy.layers.inet import IP, TCP

    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sniff], [], [], left)[0]:
            continue
        try:
            data, link = sniff.recvfrom(65535)
        except BlockingIOError:
            continue
        if link[1] != ETH_P_IP:
            continue
        pkt = IP(data)
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        flags = str(tcp.flags)
        if ((pkt.src, tcp.sport) == src and (pkt.dst, tcp.dport) == dst
                and "A" in flags and "S" not in flags and "R" not in flags):
            return pkt
    return None


def forge_rst(host, client_addr, server_addr, toward="server", iface=None,
              receiver_host=None, timeout=1.0, attempts=3):
    """Send a RST that the receiver accepts, as if its peer had sent it.

    toward="server": from client_addr to server_addr (the server's socket
    dies, the real client knows nothing); toward="client": the other way.
    The packets are built by scapy and sent on a raw socket made inside the
    host's network namespace, so they enter that host's stack.

    How the live sequence number is learned, with no help from either end:
    Linux accepts a RST only if its seq is exactly the receiver's rcv_nxt
    (RFC 5961; an in-window but inexact one only draws a challenge ACK). So
    the receiver is asked: a SYN with the peer's 4-tuple and any seq reaches
    the established socket, which never resets for it but answers with a
    challenge ACK (RFC 5961 4.2) carrying ack = rcv_nxt, the exact seq a RST
    needs. That ACK goes to the real peer, which takes it for a duplicate
    ACK; we read it off a packet socket opened (and drained) before the probe.
    Any segment the receiver sends after the probe carries the same ack.

    Robustness: the kernel answers at most one out-of-window segment per
    socket every net.ipv4.tcp_invalid_ratelimit (500 ms), and data the real
    peer sends in between moves rcv_nxt; so the socket's disappearance from
    receiver_host's TCP table (default host) is verified, and the probe
    repeated up to `attempts` times, `timeout` seconds each.
    IPv4 only (an IPv4-mapped ::ffff:a.b.c.d is taken as IPv4). Returns a
    ForgedRst; its describe() shows the probe, the answer and the RST.
    """
    from scapy.layers.inet import IP, TCP  # slow import: only when forging

    if toward not in ("server", "client"):
        raise ValueError(f"toward must be 'server' or 'client', not {toward!r}")
    client_addr = tcpstate.plain_addr(client_addr)
    server_addr = tcpstate.plain_addr(server_addr)
    if ":" in client_addr[0] or ":" in server_addr[0]:
        raise ValueError("forge_rst speaks IPv4 only, not "
                         f"{_fmt(client_addr)} -> {_fmt(server_addr)}")
    sender, receiver = ((client_addr, server_addr) if toward == "server"
                        else (server_addr, client_addr))
    check = receiver_host or host

    def victims():
        return tcpstate.find(check.outer_pid, local=receiver, remote=sender)

    if not victims():
        raise FaultError(f"no TCP socket {_fmt(receiver)} -> {_fmt(sender)} on "
                         f"host {check.name} to reset\n{tcpstate.table(check.outer_pid)}")
    send, sniff = host.in_netns(_open_raw, iface)
    evidence = []
    try:
        for attempt in range(1, attempts + 1):
            _drain(sniff)
            probe = (IP(src=sender[0], dst=receiver[0])
                     / TCP(sport=sender[1], dport=receiver[1], flags="S",
                           seq=random.getrandbits(32), window=0))
            send.sendto(bytes(probe), (receiver[0], 0))
            evidence.append(f"attempt {attempt}: probe {probe.summary()} seq={probe.seq}")
            answer = _answer(sniff, receiver, sender, timeout)
            if answer is None:
                evidence.append("  no ACK from the receiver (rate-limited?)")
                continue
            seq = answer[TCP].ack
            evidence.append(f"  answer {answer.summary()} seq={answer[TCP].seq} "
                            f"ack={seq}")
            rst = (IP(src=sender[0], dst=receiver[0])
                   / TCP(sport=sender[1], dport=receiver[1], flags="R", seq=seq,
                         window=0))
            send.sendto(bytes(rst), (receiver[0], 0))
            evidence.append(f"  sent {rst.summary()} seq={seq}")
            try:
                wait_until(lambda: not victims(), timeout,
                           f"{_fmt(receiver)} -> {_fmt(sender)} to go")
            except WaitTimeout:
                evidence.append("  the socket is still there (rcv_nxt moved?)")
                continue
            return ForgedRst(sender=sender, receiver=receiver, seq=seq,
                             attempts=attempt, evidence=evidence)
    finally:
        send.close()
        sniff.close()
    raise FaultError(
        f"the receiver {_fmt(receiver)} did not accept a forged RST after "
        f"{attempts} attempts\n" + "\n".join(evidence)
        + f"\n{tcpstate.table(check.outer_pid)}")


# --- strace: faults at the Nth system call, no recompiling -----------------

_DELAY = re.compile(r"^\d+(\.\d+)?(s|ms|us|ns)?$")
_WHEN = re.compile(r"^\d+(\.\.\d+)?(\+\d*)?$")


def _inject_action(action):
    """kill | signal=SIG | delay=T (strace time: 200ms, 1.5s, 300us) |
    delay_exit=T (the call is made, its return held back) | error=ERRNO
    ->  strace's inject= tokens."""
    if action == "kill":
        return "signal=SIGKILL"
    kind, _, value = action.partition("=")
    if kind == "signal" and re.match(r"^(SIG)?[A-Z0-9]+$", value):
        return f"signal={value}"
    if kind == "delay" and _DELAY.match(value):
        return f"delay_enter={value}"
    if kind == "delay_exit" and _DELAY.match(value):
        return f"delay_exit={value}"
    if kind == "error" and re.match(r"^E[A-Z0-9]+$", value):
        return f"error={value}"
    raise ValueError(f"unknown strace action {action!r}: want kill, "
                     f"signal=SIGNAME, delay=TIME (e.g. 200ms), delay_exit=TIME "
                     f"or error=ERRNO")


@dataclass
class Traced:
    """A command running under strace with an injection. proc is strace
    (the command's stdout and stderr go to proc's files); log is strace's
    output, pids in it as the host sees them."""
    proc: object
    log: Path
    expression: str

    def target_pid(self, timeout=5.0):
        """Global pid of the traced command (strace's child)."""
        return wait_until(
            lambda: next((c.pid for c in procs.children(self.proc.pid)
                          if not c.dead), None),
            timeout, f"the command strace runs ({self.proc.name})",
            seen=lambda: procs.tree(self.proc.pid))

    def terminate(self, signo=signal.SIGTERM, timeout=5.0):
        """Signal the traced command (not strace), and return strace's exit
        status, which is the command's."""
        if self.proc.alive():
            pid = next((c.pid for c in procs.children(self.proc.pid)
                        if not c.dead), None)
            if pid is not None:
                _signal(self.proc.host, pid, signo)
        return self.proc.wait(timeout)

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def strace_inject(host, argv, syscall="read", nth=1, action="kill", name=None):
    """Start argv on host under
        strace -f -qq -o LOG -e trace=SYSCALL -e inject=SYSCALL:ACTION:when=NTH
    so that each of its processes, the forked ones included, is killed,
    delayed or failed at its NTH call of SYSCALL, without recompiling it.

    SYSCALL may be a list ("read,recvfrom": a read of either flavour).
    ACTION: kill (SIGKILL), signal=SIGNAME, delay=TIME (delay_enter: 200ms,
    1.5s, 300us), delay_exit=TIME (made at once, its return held back) or
    error=ERRNO.

    How when= counts (strace 6.1; its man page leaves it unsaid, its source
    and echod show it): per tracee and per syscall. Each traced process
    (each thread, in fact: one strace tcb each) gets its own copy of the
    counters at its first traced call, each starting at 1; a forked child
    does not inherit its parent's count, and each syscall of a list counts
    on its own. Calls strace's own child makes before it exec()s the
    command are not counted; the dynamic loader's calls are: a dynamically
    linked program's first read() is ld.so reading libc's ELF header. So
    echod's parent makes exactly one read() (then it only waits in ppoll()
    and accept()): nth=1 on read kills the parent at start-up, nth >= 2
    leaves it alone and hits each child at its own NTH read. echod polls
    before it recv()s, so the read it dies entering always has something
    waiting: if that is data, the kernel closes the orphaned socket with
    RST (unread data, RFC 2525); if it is only the peer's FIN, with FIN.
    Injection happens only on traced calls, hence -e trace=SYSCALL.
    nth may be any strace when= expression too ("2+", "3..5").

    Returns a Traced; the command's stdout and stderr are in traced.proc's
    files; traced.terminate() stops it.
    """
    if not re.match(r"^[a-z0-9_]+(,[a-z0-9_]+)*$", syscall):
        raise ValueError(f"not a syscall name or comma-separated list: {syscall!r}")
    when = str(nth)
    if not _WHEN.match(when) or when.startswith("0"):
        raise ValueError(f"not a strace when= expression: {when!r}")
    name = name or f"strace-{Path(str(argv[0])).name}"
    log = host.workdir / f"{name}.strace"
    expression = f"inject={syscall}:{_inject_action(action)}:when={when}"
    # LeakSanitizer cannot run under ptrace: a sanitizer build (.ci/run)
    # would end in its error instead of the program's own status.
    env = dict(os.environ, ASAN_OPTIONS=":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"])))
    proc = host.spawn(["strace", "-f", "-qq", "-o", log, "-e", f"trace={syscall}",
                       "-e", expression, "--", *argv], name=name, env=env)
    return Traced(proc=proc, log=log, expression=expression)
