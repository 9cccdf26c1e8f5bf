"""The process table, read from /proc: children, zombies, descriptors,
pending signals. Pids are this machine's (global) pids; a process on a host
also has a pid inside the host, shown as `nspid`.

A look at a host costs what the host holds, not what the machine runs:
ProcessTable.of_host() lists the host's PID namespace from the host's own
/proc (its init mounts one, see flhost.c) and maps each pid to this
machine's with one ioctl on the namespace (NS_GET_PID_FROM_PIDNS), instead
of reading every process of the machine. Build one table per look and ask
it many questions; children(), zombies(), descendants() and tree() build
one themselves, scoped to the host the pid belongs to. host_pids() and
pids_in_netns() list a host's pids without reading any process.
"""

import errno
import fcntl
import os
import platform
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from .waiting import wait_until

STATE_NAMES = {
    "R": "running", "S": "sleeping", "D": "disk sleep", "T": "stopped",
    "t": "tracing stop", "Z": "zombie", "X": "dead", "I": "idle",
}

# <linux/nsfs.h>, Linux 6.11: _IOR(0xb7, 0x6, int). On a descriptor of a PID
# namespace, turns a pid of that namespace into the caller's pid for it.
NS_GET_PID_FROM_PIDNS = 0x8004B706

# What a pid that vanished between two reads of it raises.
GONE = (FileNotFoundError, ProcessLookupError)


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


def _stat_fields(pid):
    """(comm, the fields after it) of /proc/PID/stat, or None when pid is
    gone (before the open, or between the open and the read)."""
    # os.open and one read, not open(): half the system calls, and this is
    # read once per process per look. The line is far shorter than the
    # buffer, and procfs hands it over whole in one read.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except GONE:
        return None
    try:
        stat = os.read(fd, 4096).decode(errors="replace")
    except GONE:
        return None
    finally:
        os.close(fd)
    if ")" not in stat:
        return None
    # comm may contain spaces and parentheses: it ends at the last ')'.
    open_paren, close_paren = stat.index("("), stat.rindex(")")
    return stat[open_paren + 1:close_paren], stat[close_paren + 2:].split()


def _nspid(pid):
    """pid as the innermost PID namespace it is in calls it, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except GONE:
        return None
    return pid


def info(pid, nspid=None):
    """ProcInfo for pid, or None when it no longer exists. nspid: its pid
    inside its host, when the caller knows it (saves a read)."""
    stat = _stat_fields(pid)
    if stat is None:
        return None
    if nspid is None:
        nspid = _nspid(pid)
        if nspid is None:
            return None  # it went away between the two reads
    comm, fields = stat
    return ProcInfo(pid=pid, ppid=int(fields[1]), state=fields[0], comm=comm,
                    nspid=nspid, flags=int(fields[6]))


def exit_status(pid):
    """How a zombie ended, as Proc.returncode says it (exit code, or -N
    when killed by signal N); None when pid is not a zombie (running, or
    already reaped)."""
    stat = _stat_fields(pid)
    if stat is None or stat[1][0] != "Z" or len(stat[1]) < 50:
        return None
    status = int(stat[1][49])  # field 52, exit_code: the raw wait status
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def state(pid):
    """One-letter state (R S D T Z ...), or None when gone."""
    stat = _stat_fields(pid)
    return stat[1][0] if stat else None


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def ps_table(rows):
    """ps-like text for failure messages."""
    rows = list(rows)
    if not rows:
        return PS_HEADER + "\n    (no processes)"
    return "\n".join([PS_HEADER] + [r.row() for r in rows])


class ProcessTable:
    """One look at a set of processes, built once and asked many questions:
    the processes of one host (its PID namespace), or of the whole machine.
    A process that exits while the table is built is simply not in it (or
    in it as the zombie it was); nothing here raises because a process
    went away.

        table = host.processes()
        table.children(server.pid), table.zombies(server.pid), table.ps()
    """

    def __init__(self, rows, scope):
        """rows: ProcInfo of every process looked at; scope: what they are
        (a host's PID namespace, the machine), for messages."""
        self.scope = scope
        self._rows = {r.pid: r for r in rows}
        self._children = {}
        for r in sorted(self._rows.values(), key=lambda r: r.pid):
            self._children.setdefault(r.ppid, []).append(r)
        self._fds = {}

    def __repr__(self):
        return f"<ProcessTable of {self.scope}: {len(self)} processes>"

    def __len__(self):
        return len(self._rows)

    def __iter__(self):
        return iter(sorted(self._rows.values(), key=lambda r: r.pid))

    def __contains__(self, pid):
        return pid in self._rows

    # --- how a table is made -------------------------------------------

    @classmethod
    def of_host(cls, init_pid):
        """The processes of the PID namespace whose init is init_pid (a
        Host's init_pid), zombies included; empty once that init is gone,
        since every process of the namespace died with it."""
        return _in_namespace_of(
            init_pid, lambda ns: cls._of_namespace(ns, init_pid),
            gone=cls([], f"the PID namespace of init {init_pid} (gone)"))

    @classmethod
    def around(cls, pid):
        """The table pid belongs in: its host's processes when pid is on a
        host (in a PID namespace other than ours), the machine's otherwise;
        empty when pid is gone."""
        def look(ns):
            if os.fstat(ns).st_ino == os.stat("/proc/self/ns/pid").st_ino:
                return cls.machine()
            try:
                init_pid = fcntl.ioctl(ns, NS_GET_PID_FROM_PIDNS, 1)
            except OSError as e:
                if e.errno not in (errno.ENOTTY, errno.EINVAL):
                    raise
                init_pid = None  # an older kernel: the scan will find them
            return cls._of_namespace(ns, init_pid)
        return _in_namespace_of(pid, look, gone=cls([], f"pid {pid} (gone)"))

    @classmethod
    def machine(cls):
        """Every process of the machine: a read of each one's /proc entry.
        What a look cost before hosts had a /proc of their own."""
        return cls(filter(None, map(info, _all_pids())), "the machine")

    @classmethod
    def _of_namespace(cls, ns, init_pid, scan=False):
        """The processes of the PID namespace open as descriptor ns.
        Through the namespace's own /proc (mounted by the init, flhost.c)
        and the kernel's pid translation when both are there: the cost of
        the host. Otherwise (scan=True, an older kernel, a host whose init
        could not mount its /proc) by reading every process of the
        machine."""
        listed, scanned = _namespace_pids(ns, init_pid, scan)
        scope = f"host PID namespace pid:[{os.fstat(ns).st_ino}]"
        if scanned:
            scope += " (scanned from the machine's /proc)"
        rows = []
        for pid, nspid in listed:
            row = info(pid, nspid)
            if row is not None and (nspid is None or _same_process(ns, nspid, pid)):
                rows.append(row)
        return cls(rows, scope)

    # --- questions ------------------------------------------------------

    def pids(self):
        return sorted(self._rows)

    def info(self, pid):
        """pid's ProcInfo as this look saw it, or None if it was not there."""
        return self._rows.get(pid)

    def children(self, pid):
        """The direct children of pid, zombies included, by pid."""
        return list(self._children.get(pid, ()))

    def zombies(self, pid):
        return [c for c in self.children(pid) if c.state == "Z"]

    def descendants(self, pid):
        """Children, grandchildren, ... of pid, each generation by pid."""
        found, frontier = [], [pid]
        while frontier:
            kids = [c for p in frontier for c in self._children.get(p, ())]
            found += kids
            frontier = [k.pid for k in kids]
        return found

    def ancestors(self, pid):
        """pid's parent, grandparent, ... as far as they are in the table."""
        chain, seen = [], {pid}
        row = self._rows.get(pid)
        while row is not None and row.ppid in self._rows and row.ppid not in seen:
            chain.append(row.ppid)
            seen.add(row.ppid)
            row = self._rows.get(row.ppid)
        return chain

    def tree(self, pid):
        """pid and its descendants as a ps table."""
        root = self._rows.get(pid)
        return ps_table(([root] if root else []) + self.descendants(pid))

    def ps(self):
        """Every process of the table as a ps table."""
        return ps_table(self)

    def open_fds(self, pid):
        """{fd: target} of pid's descriptors, read once per table; {} when
        pid has exited (a zombie holds none)."""
        if pid not in self._fds:
            try:
                self._fds[pid] = open_fds(pid)
            except (*GONE, PermissionError):
                self._fds[pid] = {}
        return self._fds[pid]

    def socket_holders(self, inode):
        """The pids of the table that hold a descriptor to socket `inode`."""
        target = f"socket:[{inode}]"
        return [pid for pid in self.pids() if target in self.open_fds(pid).values()]


def _in_namespace_of(pid, look, gone):
    """look(descriptor of pid's PID namespace), or `gone` when pid is."""
    try:
        ns = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except GONE:
        return gone
    try:
        return look(ns)
    finally:
        os.close(ns)


def host_pids(init_pid):
    """The pids (ours) of the processes in the PID namespace whose init is
    init_pid, zombies included, none of them read: the cheapest look, for
    a question that needs no process's state (pids_in_netns, holders)."""
    return _in_namespace_of(
        init_pid, lambda ns: sorted(p for p, _ in _namespace_pids(ns, init_pid)[0]),
        gone=[])


def _namespace_pids(ns, init_pid, scan=False):
    """([(pid, nspid)...], scanned) for the PID namespace open as ns.
    From the namespace's own /proc (mounted by its init, flhost.c), each
    pid turned into ours with one ioctl: the cost of the host. Otherwise
    (scan=True, an older kernel, an init that could not mount its /proc),
    from every process of the machine, nspid then unknown (None)."""
    if not scan and init_pid is not None:
        listed = _pids_from_host_proc(ns, init_pid)
        if listed is not None:
            return listed, False
    return [(pid, None) for pid in _pids_by_scan(os.fstat(ns).st_ino)], True


def _pids_from_host_proc(ns, init_pid):
    """[(pid, nspid)] of PID namespace ns, listed from its own /proc as its
    init sees it; None when that /proc is not there (the init could not
    mount it) or the kernel cannot translate pids."""
    procfs = f"/proc/{init_pid}/root/proc"
    try:
        if fcntl.ioctl(ns, NS_GET_PID_FROM_PIDNS, 1) != init_pid:
            return []  # init_pid is no longer that namespace's init
        if os.stat(f"{procfs}/1/ns/pid").st_ino != os.fstat(ns).st_ino:
            return None  # the machine's /proc: the init mounted none
        names = os.listdir(procfs)
    except GONE:
        return []  # the init is gone, and the namespace with it
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            return None  # a kernel without pid translation
        raise
    listed = []
    for name in names:
        if name.isdigit():
            try:
                listed.append((fcntl.ioctl(ns, NS_GET_PID_FROM_PIDNS, int(name)), int(name)))
            except OSError:
                pass  # reaped since the listing
    return listed


def _same_process(ns, nspid, pid):
    """nspid in namespace ns is still our pid: the process was not reaped,
    and its pid given to another, between the translation and a read."""
    try:
        return fcntl.ioctl(ns, NS_GET_PID_FROM_PIDNS, nspid) == pid
    except OSError:
        return False


def _pids_by_scan(ns_inode):
    """Every pid of the machine in the PID namespace with this inode."""
    found = []
    for pid in _all_pids():
        try:
            if os.stat(f"/proc/{pid}/ns/pid").st_ino == ns_inode:
                found.append(pid)
        except (*GONE, PermissionError):
            pass
    return found


def children(pid):
    """The direct children of pid, zombies included, by pid (one look at
    pid's host: ProcessTable.around)."""
    return ProcessTable.around(pid).children(pid)


def zombies(pid):
    return [c for c in children(pid) if c.state == "Z"]


def descendants(pid):
    """Children, grandchildren, ... of pid, from one look at its host."""
    return ProcessTable.around(pid).descendants(pid)


def tree(pid):
    """pid and its children as a ps table."""
    table = ProcessTable.around(pid)
    root = table.info(pid)
    return ps_table(([root] if root else []) + table.children(pid))


def describe(pid):
    i = info(pid)
    if i is None:
        return f"pid {pid}: gone"
    return f"pid {pid} ({i.comm}) in state {i.state} ({STATE_NAMES.get(i.state, '?')})"


def open_fds(pid):
    """{fd: target} of pid's open descriptors ('socket:[123]', paths...);
    {} for a zombie. Raises FileNotFoundError when pid is gone, so that a
    caller can tell a process that holds nothing from one that is not
    there (ProcessTable.open_fds and fd_table do not raise)."""
    result = {}
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except ProcessLookupError:
        raise FileNotFoundError(errno.ENOENT, f"pid {pid} is gone", base) from None
    for name in names:
        try:
            result[int(name)] = os.readlink(f"{base}/{name}")
        except GONE:
            pass  # closed while we looked, or the process exited
    return result


def socket_inodes(pid):
    """Inodes of the sockets pid holds, to match against TCP tables; none
    once pid has exited."""
    try:
        targets = open_fds(pid).values()
    except GONE:
        return set()
    return {int(t[8:-1]) for t in targets if t.startswith("socket:[")}


def fd_table(pid):
    """pid's descriptors, one a line, or a line saying why there are none."""
    try:
        fds = open_fds(pid)
    except GONE:
        return f"  (pid {pid} is gone)"
    if not fds:
        why = " (a zombie)" if state(pid) == "Z" else ""
        return f"  (pid {pid} holds no descriptors{why})"
    return "\n".join(f"  fd {fd:>4} -> {target}" for fd, target in sorted(fds.items()))


def pending_signals(pid):
    """Bitmask of signals pending for pid (thread and process-wide); 0 once
    pid is gone."""
    mask = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("SigPnd:", "ShdPnd:")):
                    mask |= int(line.split()[1], 16)
    except GONE:
        return 0
    return mask


def current_syscall(pid):
    """Number of the system call pid is blocked in, or None if running or
    gone."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split()[0]
    except (*GONE, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() else None


# --- appended for faultline.faults: processes by network namespace and socket

def netns_inode(pid):
    """Inode of pid's network namespace, or None when pid is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (*GONE, PermissionError):
        return None


# The open hosts: {network namespace inode: the host's init pid}. A Host
# registers itself so that pids_in_netns() looks at that host alone.
_HOST_INITS = {}


def register_host(netns, init_pid):
    _HOST_INITS[netns] = init_pid


def forget_host(netns):
    _HOST_INITS.pop(netns, None)


def pids_in_netns(inode):
    """Every process (thread-group leader) whose network namespace has this
    inode: the processes of one host, whatever their parentage. For an
    open host, its PID namespace's pids (host_pids): its zombies are
    counted, and the keeper, which is only in its network namespace and
    holds no socket, is not. For any other namespace
    (a host already closed, say), a look at every process.

    An inode names a namespace only while the namespace lives: the kernel
    hands a freed namespace's number to the next namespace made, of any
    kind (the spare host, made as a host closes, got it). Ask about a
    namespace that may be ending only while a NetnsPin holds it."""
    init_pid = _HOST_INITS.get(inode)
    if init_pid is not None:
        return host_pids(init_pid)
    return [p for p in _all_pids() if netns_inode(p) == inode]


class NetnsPin:
    """A network namespace held open, so that its inode goes on naming it
    alone after its last process is gone (see pids_in_netns). Use as a
    context manager around the end of a host and the look that follows."""

    def __init__(self, pid):
        """pid: a process in the namespace, alive now."""
        try:
            self._fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(e.errno, f"open /proc/{pid}/ns/net to hold the "
                                   f"namespace: {os.strerror(e.errno)}") from None
        self.inode = os.fstat(self._fd).st_ino

    def fileno(self):
        return self._fd

    def pids(self):
        """The processes in the namespace now (pids_in_netns)."""
        return pids_in_netns(self.inode)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def socket_holders(inode, pids):
    """The pids among pids that hold a descriptor to socket `inode`.
    A process that exits while we look simply does not hold it."""
    holders = []
    for pid in pids:
        try:
            if inode in socket_inodes(pid):
                holders.append(pid)
        except PermissionError:
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
    except GONE:
        pass
    return 0


class NotOnHost(RuntimeError):
    """A signal was refused: the process is not where the caller said."""


def send_signal(pid, signo, netns=None, pidfd=None):
    """Send signo to pid; False when pid has already gone, True otherwise.

    Through a pidfd, so that the process checked is the process signalled:
    the caller's (pidfd, held since before pid could exit, as a host's
    Proc does), or one opened here. netns: the inode of the network
    namespace pid must live in (a host's); any other process is refused
    with NotOnHost, never signalled. The one way to signal a process in
    faultline: Proc, Server and faults call it.
    """
    fd = pidfd
    if fd is None:
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
        if fd != pidfd:
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


def syscall_names():
    """{number: name} of this machine's system calls, from the kernel
    headers when they are installed (empty otherwise: numbers are shown)."""
    if not hasattr(syscall_names, "table"):
        table = {}
        machine = platform.machine()
        for header in (f"/usr/include/{machine}-linux-gnu/asm/unistd_64.h",
                       "/usr/include/asm-generic/unistd.h"):
            try:
                text = Path(header).read_text()
            except OSError:
                continue
            table = {int(n): name for name, n in
                     re.findall(r"#define __NR_(\w+)\s+(\d+)\s*$", text, re.M)}
            if table:
                break
        syscall_names.table = table
    return syscall_names.table


def blocked_in(pid):
    """'S in anon_pipe_write, syscall write': a process's state, the kernel
    function it sleeps in (/proc/PID/wchan) and its system call."""
    i = info(pid)
    if i is None:
        return "gone"
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        wchan = ""
    number = current_syscall(pid)
    call = syscall_names().get(number, f"#{number}") if number is not None else None
    where = f" in {wchan}" if wchan and wchan != "0" else ""
    return f"{i.state}{where}" + (f", syscall {call}" if call else "")
