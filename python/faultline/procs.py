"""The process table, read from /proc: children, zombies, descriptors,
pending signals. Pids are this machine's (global) pids; a process on a host
also has a pid inside the host, shown as `nspid`."""

import os
import signal
from dataclasses import dataclass

from .waiting import wait_until

STATE_NAMES = {
    "R": "running", "S": "sleeping", "D": "disk sleep", "T": "stopped",
    "t": "tracing stop", "Z": "zombie", "X": "dead", "I": "idle",
}


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    comm: str
    nspid: int
    flags: int = 0

    PF_EXITING = 0x4

    @property
    def dead(self):
        """Exited: a zombie, or past the point of no return in exit()."""
        return self.state in ("Z", "X") or bool(self.flags & self.PF_EXITING)

    def row(self):
        return f"{self.pid:>7} {self.ppid:>7} {self.nspid:>6}  {self.state:<4} {self.comm}" + (
            " <defunct>" if self.state == "Z" else "")


PS_HEADER = f"{'PID':>7} {'PPID':>7} {'NSPID':>6}  STAT COMMAND"


def info(pid):
    """ProcInfo for pid, or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: it ends at the last ')'.
    open_paren, close_paren = stat.index("("), stat.rindex(")")
    comm = stat[open_paren + 1:close_paren]
    fields = stat[close_paren + 2:].split()
    nspid = pid
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    nspid = int(line.split()[-1])
                    break
    except (FileNotFoundError, ProcessLookupError):
        return None  # it went away between the two reads
    return ProcInfo(pid=pid, ppid=int(fields[1]), state=fields[0], comm=comm,
                    nspid=nspid, flags=int(fields[6]))


def state(pid):
    """One-letter state (R S D T Z ...), or None when gone."""
    i = info(pid)
    return i.state if i else None


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _ppid(pid):
    """pid's parent from /proc/PID/stat alone, or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(b")") + 2:].split(maxsplit=2)[1])


def children(pid):
    """The direct children of pid, zombies included, by pid.
    (This kernel has no /proc/PID/task/TID/children, so scan /proc: one
    read of each stat, and the full info of the children only.)"""
    found = []
    for p in _all_pids():
        if _ppid(p) == pid:
            i = info(p)
            if i is not None and i.ppid == pid:
                found.append(i)
    return sorted(found, key=lambda i: i.pid)


def zombies(pid):
    return [c for c in children(pid) if c.state == "Z"]


def ps_table(rows):
    """ps-like text for failure messages."""
    rows = list(rows)
    if not rows:
        return PS_HEADER + "\n    (no processes)"
    return "\n".join([PS_HEADER] + [r.row() for r in rows])


def tree(pid):
    """pid and its children as a ps table."""
    root = info(pid)
    return ps_table(([root] if root else []) + children(pid))


def describe(pid):
    i = info(pid)
    if i is None:
        return f"pid {pid}: gone"
    return f"pid {pid} ({i.comm}) in state {i.state} ({STATE_NAMES.get(i.state, '?')})"


def open_fds(pid):
    """{fd: target} of pid's open descriptors ('socket:[123]', paths...)."""
    result = {}
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        try:
            result[int(name)] = os.readlink(f"{base}/{name}")
        except FileNotFoundError:
            pass  # closed while we looked
    return result


def socket_inodes(pid):
    """Inodes of the sockets pid holds, to match against TCP tables."""
    inodes = set()
    for target in open_fds(pid).values():
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def fd_table(pid):
    return "\n".join(f"  fd {fd:>4} -> {target}"
                     for fd, target in sorted(open_fds(pid).items()))


def pending_signals(pid):
    """Bitmask of signals pending for pid (thread and process-wide)."""
    mask = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("SigPnd:", "ShdPnd:")):
                mask |= int(line.split()[1], 16)
    return mask


def current_syscall(pid):
    """Number of the system call pid is blocked in, or None if running."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split()[0]
    except (FileNotFoundError, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() else None


# --- appended for faultline.faults: processes by network namespace and socket

def netns_inode(pid):
    """Inode of pid's network namespace, or None when pid is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pids_in_netns(inode):
    """Every process (thread-group leader) whose network namespace has this
    inode: the processes of one host, whatever their parentage."""
    return [p for p in _all_pids() if netns_inode(p) == inode]


def socket_holders(inode, pids):
    """The pids among pids that hold a descriptor to socket `inode`.
    A process that exits while we look simply does not hold it."""
    holders = []
    for pid in pids:
        try:
            if inode in socket_inodes(pid):
                holders.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return holders


def ancestors(pid, limit=64):
    """pid's parent, grandparent, ... up to the machine's init (bounded)."""
    chain = []
    i = info(pid)
    while i is not None and i.ppid > 0 and len(chain) < limit:
        chain.append(i.ppid)
        i = info(i.ppid)
    return chain


def thread_count(pid):
    """Threads of pid (1 for a single-threaded process), 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class NotOnHost(RuntimeError):
    """A signal was refused: the process is not where the caller said."""


def send_signal(pid, signo, netns=None):
    """Send signo to pid; False when pid has already gone, True otherwise.

    Through a pidfd, so that the process checked is the process signalled.
    netns: the inode of the network namespace pid must live in (a host's);
    any other process is refused with NotOnHost, never signalled. The one
    way to signal a process in faultline: Proc, Server and faults call it.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if netns is not None:
            where = netns_inode(pid)
            if where is None:
                return False  # it has exited: a zombie has no namespaces left
            if where != netns:
                raise NotOnHost(f"pid {pid} is not in network namespace {netns}: "
                                f"refusing to send it signal {signo}")
        try:
            signal.pidfd_send_signal(fd, signo)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(fd)


def stop(pid, timeout=5.0, netns=None):
    """SIGSTOP pid and return once the kernel shows it stopped (or gone)."""
    send_signal(pid, signal.SIGSTOP, netns)
    wait_until(lambda: state(pid) in ("T", None), timeout, f"pid {pid} to stop",
               seen=lambda: describe(pid))


def cont(pid, timeout=5.0, netns=None):
    """SIGCONT pid and return once the kernel no longer shows it stopped."""
    send_signal(pid, signal.SIGCONT, netns)
    wait_until(lambda: state(pid) != "T", timeout, f"pid {pid} to continue",
               seen=lambda: describe(pid))
