"""The kernel's TCP sockets inside a host, read from /proc/PID/net/tcp{,6},
which shows the network namespace of PID: no `ss` process per look."""

import ctypes
import os
import socket
import struct
from dataclasses import dataclass

from . import procs

STATES = {
    0x01: "ESTABLISHED", 0x02: "SYN_SENT", 0x03: "SYN_RECV", 0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2", 0x06: "TIME_WAIT", 0x07: "CLOSE", 0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "NEW_SYN_RECV",
}


@dataclass(frozen=True)
class TcpSocket:
    state: str
    local: tuple   # (address, port)
    remote: tuple
    tx_queue: int
    rx_queue: int
    inode: int

    def row(self):
        return (f"{self.state:<12} {self.rx_queue:>6} {self.tx_queue:>6}  "
                f"{_fmt(self.local):<24} {_fmt(self.remote):<24} {self.inode}")


HEADER = f"{'STATE':<12} {'RECV-Q':>6} {'SEND-Q':>6}  {'LOCAL':<24} {'PEER':<24} INODE"


def _fmt(addr):
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _decode_addr(text, family):
    hexaddr, hexport = text.split(":")
    raw = bytes.fromhex(hexaddr)
    if family == socket.AF_INET:
        packed = struct.pack("<I", struct.unpack(">I", raw)[0])
    else:  # four host-order 32-bit words
        packed = b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i + 4])[0])
                          for i in range(0, 16, 4))
    return socket.inet_ntop(family, packed), int(hexport, 16)


def sockets(host_pid, port=None):
    """TCP sockets in the network namespace of host_pid (a Host's
    outer_pid, or any pid on it); port filters on either end."""
    found = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/{host_pid}/net/{name}") as f:
                lines = f.read().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue  # the host is closed, or has no IPv6
        for line in lines:
            fields = line.split()
            tx, rx = (int(x, 16) for x in fields[4].split(":"))
            s = TcpSocket(state=STATES.get(int(fields[3], 16), fields[3]),
                          local=_decode_addr(fields[1], family),
                          remote=_decode_addr(fields[2], family),
                          tx_queue=tx, rx_queue=rx, inode=int(fields[9]))
            if port is None or port in (s.local[1], s.remote[1]):
                found.append(s)
    return found


def in_state(host_pid, state, port=None):
    return [s for s in sockets(host_pid, port) if s.state == state]


def listening_on(host_pid, port):
    """The addresses port is listened on, as written in messages
    ('0.0.0.0:7', '[::1]:7'), sorted."""
    return sorted({f"[{s.local[0]}]:{s.local[1]}" if ":" in s.local[0] else
                   f"{s.local[0]}:{s.local[1]}" for s in in_state(host_pid, "LISTEN", port)})


def table(host_pid, port=None):
    rows = sockets(host_pid, port)
    if not rows:
        return HEADER + "\n    (no TCP sockets)"
    return "\n".join([HEADER] + [s.row() for s in rows])


# --- appended for faultline.faults: one connection by its two ends

def plain_addr(addr):
    """(address, port) with an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
    as a socket on a dual-stack listener shows its IPv4 peers) written as
    IPv4, so that either spelling finds the same socket."""
    host, port = addr
    if host.lower().startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(port)


def find(host_pid, local=None, remote=None, with_inode=False):
    """The TCP sockets of a host whose local and/or remote end match;
    with_inode: only those a process holds (not TIME_WAIT, not a connection
    still waiting in an accept queue)."""
    want_local = plain_addr(local) if local else None
    want_remote = plain_addr(remote) if remote else None
    return [s for s in sockets(host_pid)
            if (want_local is None or plain_addr(s.local) == want_local)
            and (want_remote is None or plain_addr(s.remote) == want_remote)
            and (not with_inode or s.inode)]


def counters(host_pid):
    """The host's TCP counters from /proc/PID/net/snmp and netstat, as
    {"Tcp": {"RetransSegs": n, ...}, "TcpExt": {...}, ...}: how many
    segments the stack retransmitted, resets it sent, and so on."""
    found = {}
    for name in ("snmp", "netstat"):
        try:
            with open(f"/proc/{host_pid}/net/{name}") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the host is closed, or has no IPv6
        for head, values in zip(lines[::2], lines[1::2]):
            group, _, keys = head.partition(":")
            numbers = values.partition(":")[2].split()
            found[group] = {k: int(v) for k, v in zip(keys.split(), numbers)}
    return found


_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture


def socket_options(pid, inode, options):
    """getsockopt(level, name) for each (level, name) of `options` on the
    socket `inode` as process pid holds it: its descriptor is copied with
    pidfd_getfd(2) (Linux 5.6, ptrace rights over pid), read, and closed.
    Returns the values in order; raises LookupError when pid holds no
    descriptor to that socket."""
    target = f"socket:[{inode}]"
    fds = [fd for fd, what in procs.open_fds(pid).items() if what == target]
    if not fds:
        raise LookupError(f"pid {pid} holds no descriptor to socket {inode}")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(fds[0]), 0)
        if copy < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"pidfd_getfd(pid {pid}, fd {fds[0]}): {os.strerror(err)}")
    finally:
        os.close(pidfd)
    with socket.socket(fileno=copy) as sock:
        return [sock.getsockopt(level, name) for level, name in options]
