"""A server under test: any command that listens on a TCP port, run on a
host. Readiness is its LISTEN socket in the host's TCP table; the server's
pid is the process that holds that socket (a wrapper shell or a launcher
that forks is looked through). Everything the checks look at (children,
zombies, descriptors, threads, idleness) works on a server faultline did
not write. Echod (echod.py) is this plus echod's readiness line and
event log.

As a context manager it is the fixture of STYLE.md item 7:

    with Server(host, "socat ...", 9877) as server:   # or Echod(host, ...)
        ...

On exit, once the server has settled (asleep in its idle wait, no SIGCHLD
pending, no child running or half-way through exiting), the test fails if
the server crashed, or left zombie children, descriptors over the count it
had when it became ready, or sockets in CLOSE_WAIT on its port. A test of
a deliberately broken server names what it leaves:
`leaves={"zombies"}` (--reap none), `leaves={"close_wait", "fds"}`
(--leak-connfd). A test that ends the server itself (a SIGTERM drain,
closing its host) says `stopped_by_test=True`; the exit then checks the
server's exit status against `exit_status` instead.

Nothing it looks at raises because the server has died: ps(), fd_table(),
fd_count(), children(), zombies() and sockets() say so instead, and
terminate() escalates to SIGKILL and records how the server ended in
`ending`: a server that dies, or is slow to stop, is a finding to report.
"""

import os
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from . import procs, tcpstate
from .interrupts import cleanup
from .waiting import WaitTimeout, wait_until

SIGCHLD_BIT = 1 << (signal.SIGCHLD - 1)

# What a server can leave behind, as `leaves` names it.
LEFTOVERS = {
    "zombies": "zombie children",
    "fds": "descriptors over its baseline",
    "close_wait": "sockets in CLOSE_WAIT on its port",
}

# Rows of each table a failure message shows; the rest is in the snapshot.
SCREENFUL_ROWS = 10

# How long terminate() gives a server after SIGTERM before SIGKILL, and a
# process after SIGKILL before giving up on it (one in D state, say).
STOP_GRACE = 2.0
KILL_WAIT = 5.0


class ServerCheckFailed(AssertionError):
    """The server fixture's check at exit failed; the message says what it
    saw. An AssertionError: pytest shows it as a failed expectation."""


class ServerCrashed(ServerCheckFailed):
    """The server died, or exited with another status than expected."""


class ServerLeftBehind(ServerCheckFailed):
    """At exit the server held zombies, descriptors or CLOSE_WAIT sockets
    that the test did not declare with `leaves`."""


def signal_words(signo):
    """'signal 13 (SIGPIPE)'."""
    try:
        name = signal.Signals(signo).name
    except ValueError:
        name = "unknown"
    return f"signal {signo} ({name})"


def status_words(code):
    """An exit status as Proc.returncode gives it (-N: killed by signal N;
    None: not yet), in the words every verdict and failure uses."""
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal_words(-code)}"
    return f"exit status {code}"


@dataclass(frozen=True)
class Ending:
    """How a server ended when terminate() stopped it.
    status: as Proc.returncode (exit code, or -N killed by signal N), None
    when it did not end even after SIGKILL; seconds: from SIGTERM until it
    ended (or until terminate() gave up); killed: it was still running
    `grace` seconds after SIGTERM and got SIGKILL; already: it had ended
    before terminate() was called."""
    status: object
    seconds: float = 0.0
    killed: bool = False
    grace: float = 0.0
    already: bool = False

    def __str__(self):
        if self.already:
            return f"had already ended: {status_words(self.status)}"
        if self.killed:
            then = (status_words(self.status) if self.status is not None
                    else f"and still not gone {KILL_WAIT:g} s later")
            return (f"still running {self.grace:g} s after SIGTERM: sent SIGKILL, "
                    f"{then} ({self.seconds:.2f} s in all)")
        return f"{status_words(self.status)} {self.seconds:.2f} s after SIGTERM"


def first_rows(rows, where, limit=SCREENFUL_ROWS):
    """At most `limit` rows, and a line saying where the others are."""
    rows = list(rows)
    if len(rows) <= limit:
        return rows
    return rows[:limit] + [f"    ... {len(rows) - limit} more in {where}"]


def _socket_inode(target):
    return int(target[8:-1]) if target.startswith("socket:[") else None


class Server:
    # How long the check at exit waits for the server to settle.
    settle_timeout = 3.0

    def __init__(self, host, command, port, name="server", env=None, leaves=(),
                 stopped_by_test=False, exit_status=None, user=None):
        """command: an argv list, or a shell command line (run with sh -c
        only when it needs a shell).
        leaves: what the test expects the server to leave behind, among
        LEFTOVERS; the check at exit does not look for it.
        stopped_by_test: the test ends the server itself; the check at exit
        waits for that exit instead of looking for leftovers.
        exit_status: the status the server must end with, whoever stops it
        (None: any).
        user: run it as this user, with no capabilities (Host.spawn)."""
        unknown = set(leaves) - set(LEFTOVERS)
        if unknown:
            raise ValueError(f"leaves: unknown {sorted(unknown)}; a server can "
                             f"leave {sorted(LEFTOVERS)}")
        self.host = host
        self.port = port
        self.name = name
        self.env = env
        self.user = user
        self.command = command
        self.leaves = frozenset(leaves)
        self.stopped_by_test = stopped_by_test
        self.exit_status = exit_status
        self.proc = None      # what we spawned
        self.pid = None       # who holds the listening socket
        self.ending = None    # how terminate() found it end (an Ending)
        self._idle_syscall = None
        self._baseline_fds = {}

    def argv(self):
        if isinstance(self.command, (list, tuple)):
            return list(self.command)
        if any(c in self.command for c in "|&;<>()$`\\\"'*?[#~=%"):
            return ["/bin/sh", "-c", self.command]
        return shlex.split(self.command)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} pid={self.pid} port={self.port}>"

    # --- life -----------------------------------------------------------

    def start(self, timeout=5.0):
        self.proc = self.host.spawn(self.argv(), name=self.name, env=self.env,
                                    user=self.user)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=5.0):
        """The LISTEN socket is there; its holder is the server's pid; the
        server sleeps waiting for connections (its idle syscall noted, and
        its descriptors: the baseline of the check at exit)."""
        def listening():
            if not self.proc.alive():
                said = self.said()
                raise ServerCrashed(
                    f"{self.name} exited ({self.proc.returncode}) before listening "
                    f"on port {self.port}" + (f"; it said: {said}" if said else ""))
            for s in tcpstate.in_state(self.host.outer_pid, "LISTEN", self.port):
                holders = procs.socket_holders(s.inode, self.host.pids())
                if len(holders) > 1:
                    # the outermost holder: a forking server's children
                    # inherit the listener too
                    table = self.host.processes()
                    return min(holders, key=lambda p: len(table.ancestors(p)))
                if holders:
                    return holders[0]
            return None
        self.pid = wait_until(listening, timeout,
                              f"{self.name} to listen on port {self.port}",
                              seen=lambda: tcpstate.table(self.host.outer_pid))
        self.note_idle(timeout)

    def note_idle(self, timeout=5.0):
        """The server (self.pid) sleeps waiting for connections: its idle
        syscall noted, and its descriptors, the baseline of the check at
        exit."""
        self._idle_syscall, = wait_until(
            lambda: procs.state(self.pid) == "S" and (procs.current_syscall(self.pid),),
            timeout, f"{self.name} to block waiting for connections",
            seen=lambda: procs.describe(self.pid))
        self._baseline_fds = procs.open_fds(self.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # The test's own failure says more than anything found here.
            with cleanup(f"stopping {self.name}"):
                self.terminate(check=False)
        elif self.stopped_by_test:
            self.check_exit()
        else:
            try:
                self.check_left_nothing()
            except BaseException:
                with cleanup(f"stopping {self.name}"):
                    self.terminate(check=False)
                raise
            self.terminate()

    def alive(self):
        i = procs.info(self.pid) if self.pid else None
        return i is not None and not i.dead

    def final_status(self, wait=1.0):
        """The status the server ended with, as Proc.returncode gives it;
        None while it runs, or when nothing can tell any more (a server
        behind a wrapper, already reaped by it). Waits up to `wait` for the
        host's keeper to report a server it has just seen die."""
        if self.proc is None:
            return None
        if self.pid is None or self.pid == self.proc.pid:
            code = self.proc.returncode
            if code is None and self.pid is not None and not self.alive():
                try:  # dead, and its keeper about to report how
                    code = self.proc.wait(wait)
                except WaitTimeout:
                    pass
            return code
        return procs.exit_status(self.pid)

    def how_it_ended(self):
        """None while the server (the process holding its listening socket)
        lives; otherwise how it ended, in words: "killed by signal 13
        (SIGPIPE)". A server run by a shell is described by what the shell
        reports for it."""
        if self.proc is None or self.pid is None or self.alive():
            return None
        if self.pid == self.proc.pid:
            code = self.final_status(wait=2.0)
            if code is None:
                return "it is gone, and no exit status came within 2 s"
            return status_words(code)
        try:  # the command it ran under, about to end or ended
            code = self.proc.wait(2.0)
        except WaitTimeout:
            code = None
        shell = Path(self.proc.argv[0]).name in ("sh", "bash", "dash")
        if code is not None and shell and code > 128:
            return (f"killed by {signal_words(code - 128)}, as its shell reports it "
                    f"(exit status {code})")
        if code is not None:
            return f"pid {self.pid} is gone; the command it ran under ended: {status_words(code)}"
        return f"pid {self.pid} is gone (its exit status went to its own parent)"

    def stderr_lines(self, count=1, limit=65536):
        """The last count lines of the server's stderr, read from its end (a
        server may have written megabytes); [] when there is none."""
        if self.proc is None:
            return []
        try:
            with open(self.proc.stderr_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - limit))
                data = f.read()
        except OSError:
            return []
        return data.decode(errors="replace").rstrip().splitlines()[-count:]

    def said(self, limit=65536):
        """What the server wrote on stderr, for a one-line message: its one
        line; of a Python traceback, the last (the exception); otherwise
        the first, which is where a program says what went wrong before
        the usage text some print after it, and the last, with the file
        that holds them all. "" when it wrote nothing."""
        if self.proc is None:
            return ""
        try:
            with open(self.proc.stderr_path, "rb") as f:
                head = f.read(limit)
        except OSError:
            return ""
        first = [line.strip() for line in
                 head.decode(errors="replace").splitlines() if line.strip()]
        # Read its end again only when the head was not all of it.
        last = (first[-1:] if len(head) < limit else
                [line.strip() for line in self.stderr_lines(1, limit)])
        if not first:
            return ""
        if len(first) == 1:
            return first[0][:200]
        if not last:  # the end of a long output is all blank
            return first[0][:200]
        if first[0].startswith("Traceback "):
            return last[0][:200]
        more = f"{len(first)} lines" if len(head) < limit else "more"
        return (f"{first[0][:200]} ... {last[0][:200]} ({more} in "
                f"{self.proc.stderr_path})")

    def death(self):
        """None while the server lives; otherwise how it ended, with the
        last line of its stderr."""
        how = self.how_it_ended()
        if how is None:
            return None
        said = self.stderr_lines(1)
        return how + (f"; its stderr ends: {said[0][:200]!r}" if said else "")

    def ended(self):
        """None while the server runs; once it has exited, how, in words:
        "server pid 1234 has exited: killed by SIGPIPE"."""
        if self.proc is None:
            return f"{self.name} was never started"
        if self.pid is None:
            if self.proc.alive():
                return None
            return (f"{self.name} (pid {self.proc.pid}) exited before listening: "
                    f"{status_words(self.final_status())}")
        if self.alive():
            return None
        status = self.final_status()
        how = (status_words(status) if status is not None
               else "status unknown (its parent reaped it)")
        return f"server pid {self.pid} has exited: {how}"

    def check_alive(self):
        if not self.alive():
            status = self.final_status(wait=2.0)
            said = self.proc.stderr().strip().splitlines()[-SCREENFUL_ROWS:]
            raise ServerCrashed(
                f"{self.name} (pid {self.pid}) died during the test: "
                f"{status_words(status)}\nthe end of its stderr "
                f"({self.proc.stderr_path}):\n" + "\n".join(said or ["(empty)"]))

    def exit_timeout(self):
        """How long the server may take to exit once asked to."""
        return 5.0

    def stop_grace(self):
        """How long terminate() lets the server drain after SIGTERM before
        it sends SIGKILL."""
        return STOP_GRACE

    def terminate(self, check=True, kill_after=None, timeout=None):
        """SIGTERM (after SIGCONT if stopped), then SIGKILL if the server
        still runs kill_after seconds later (default stop_grace(); timeout
        is its older name). Returns the exit status (None if even SIGKILL
        did not end it within KILL_WAIT) and records how it ended in
        self.ending. A server slow to stop, or already dead, raises nothing
        here: self.ending says so.
        check: the status must be exit_status (when that is not None);
        ServerCrashed otherwise, with self.ending in the message."""
        if self.proc is None:
            return None
        grace = next((t for t in (kill_after, timeout) if t is not None),
                     self.stop_grace())
        if not self.proc.alive():
            self.ending = Ending(self.proc.returncode, already=True)
        else:
            started = time.monotonic()
            try:
                self._continue_if_stopped()
            except WaitTimeout:
                pass  # SIGKILL below ends a process that will not continue
            self.proc.send_signal(signal.SIGTERM)
            code, ended = self._wait_exit(grace)
            if ended:
                self.ending = Ending(code, time.monotonic() - started)
            else:
                code, _ = self._kill()
                self.ending = Ending(code, time.monotonic() - started,
                                     killed=True, grace=grace)
        if check:
            self._check_status(self.ending.status, "after SIGTERM")
        return self.ending.status

    def _wait_exit(self, timeout):
        """(exit status, True) once the spawned process has exited within
        timeout, (None, False) if it still runs."""
        try:
            return self.proc.wait(timeout), True
        except WaitTimeout:
            return None, False

    def _kill(self):
        """SIGKILL the server (and the process we spawned, a wrapper's
        case), then _wait_exit(KILL_WAIT)."""
        if self.pid is not None and self.pid != self.proc.pid:
            try:
                self.send_signal(signal.SIGKILL)
            except procs.NotOnHost:
                pass  # its pid is another process's now: it is long gone
        self.proc.send_signal(signal.SIGKILL)
        return self._wait_exit(KILL_WAIT)

    def _continue_if_stopped(self):
        for pid in {self.pid, self.proc.pid} - {None}:
            if procs.state(pid) == "T":
                procs.cont(pid)

    def _check_status(self, code, when):
        if self.exit_status is not None and code != self.exit_status:
            how = (f" ({self.ending})" if self.ending is not None
                   and (self.ending.killed or self.ending.already) else "")
            raise ServerCrashed(
                f"{self.name} ended with {status_words(code)} {when}{how}, expected "
                f"{status_words(self.exit_status)}; stderr:\n{self.proc.stderr()}")

    # --- the check at exit ----------------------------------------------

    def check_exit(self):
        """For a test that ends the server itself: the server exits within
        exit_timeout() and with exit_status."""
        code, ended = self._wait_exit(self.exit_timeout())
        if not ended:
            seen = self.ps()
            code, _ = self._kill()
            self.ending = Ending(code, self.exit_timeout(), killed=True,
                                 grace=self.exit_timeout())
            raise ServerCheckFailed(
                f"the test ends {self.name} itself (stopped_by_test), but it was "
                f"still running {self.exit_timeout():g}s after the test; killed "
                f"it\n{seen}")
        self._check_status(code, "when the test ended it")

    def check_left_nothing(self):
        """The check at exit: the server is alive and, once it has settled,
        holds nothing the test did not declare in `leaves`. Raises
        ServerCrashed or ServerLeftBehind with what it saw."""
        self._continue_if_stopped()  # a test that stopped it and forgot
        self.check_alive()
        found, how = self.settle()
        self.check_alive()
        if found:
            raise ServerLeftBehind(self._left_behind(found, how))

    def settle(self):
        """Wait, at most settle_timeout, for the server to settle: children
        still exiting and connections still closing when the test body
        ended are given the time to. Returns the leftovers seen last --
        none once settled; zombies as soon as they are certain (they
        outlived the server's idle wait, see unreaped()); whatever was
        still there when the time ran out -- and how it ended, in words."""
        last = {}

        def settled():
            if not self.alive():
                return True
            last.clear()
            table = self.processes()
            last.update(self.leftovers(table))
            if not last:
                # A child that became a zombie after the look above is done,
                # so quiescent() lets it pass: look again, the next round
                # counts it.
                return self.quiescent() and ("zombies" in self.leaves
                                             or not self.zombies())
            # The look leftovers() had is the one before the idle wait.
            return set(last) == {"zombies"} and bool(self.unreaped(table))
        try:
            wait_until(settled, self.settle_timeout, f"{self.name} to settle")
        except WaitTimeout:
            return last, f"still there {self.settle_timeout:g}s after the test body"
        return last, "with the server idle in its accept wait"

    def leftovers(self, table=None):
        """What the server holds now that the test did not declare:
        {leftover: (how many, in words; rows that show it)}. table: the
        look at the host to take its zombies from (a new one if None)."""
        found = {}
        if "zombies" not in self.leaves:
            if table is None:
                table = self.processes()
            zombies = table.zombies(self.pid)
            if zombies:
                found["zombies"] = (f"zombie children: {len(zombies)}",
                                    [z.row() for z in zombies])
        if "close_wait" not in self.leaves:
            stuck = self.close_wait_sockets()
            if stuck:
                found["close_wait"] = (
                    f"sockets in CLOSE_WAIT on port {self.port}: {len(stuck)}",
                    [s.row() for s in stuck])
        if "fds" not in self.leaves:
            over, diff = self.descriptors_over_baseline()
            if over > 0:
                found["fds"] = (f"descriptors over the {len(self._baseline_fds)} "
                                f"it held when ready: {over}", diff)
        return found

    def quiescent(self):
        """Nothing under way: the server asleep in its idle wait with no
        SIGCHLD pending, and no child running or half-way through exit."""
        # A FIN still in flight (its sender in FIN_WAIT1) has not reached
        # the serving process yet: under load the loopback softirq that
        # delivers it can run after the client's close() returned.
        return self.idle() and not any(
            c.state in ("R", "D") or (c.dead and c.state != "Z")
            for c in self.children()) and not tcpstate.in_state(
                self.host.outer_pid, "FIN_WAIT1", self.port)

    def unreaped(self, table=None):
        """Zombie children that a sound reaper would have reaped: seen
        before and after the server was seen idle. A child that exits
        leaves SIGCHLD pending before it shows as a zombie; idle means no
        SIGCHLD pending and any handler that was due has run to completion,
        so a zombie seen on both sides outlived its handler.
        table: a look at the host taken just now (a new one if None)."""
        if table is None:
            table = self.processes()
        before = {z.pid for z in table.zombies(self.pid)}
        if not before or not self.idle():
            return []
        return [z for z in self.zombies() if z.pid in before]

    def close_wait_sockets(self):
        """The server's ends of connections its peer has closed and it has
        not (a client's own end to this port is not counted)."""
        return [s for s in tcpstate.in_state(self.host.outer_pid, "CLOSE_WAIT", self.port)
                if s.local[1] == self.port]

    def descriptors_over_baseline(self):
        """(how many descriptors the server holds over its baseline, the
        table's diff). The sockets of connections still open are not
        counted: a thread or event-loop server rightly holds those."""
        try:
            now = procs.open_fds(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return 0, []
        open_conns = {s.inode for s in tcpstate.sockets(self.host.outer_pid, self.port)
                      if s.local[1] == self.port and s.inode
                      and s.state not in ("CLOSE_WAIT", "LISTEN")}
        held = {fd: t for fd, t in now.items() if _socket_inode(t) not in open_conns}
        base = self._baseline_fds
        diff = ([f"  - fd {fd:>4} -> {t}" for fd, t in sorted(base.items())
                 if held.get(fd) != t] +
                [f"  + fd {fd:>4} -> {t}" for fd, t in sorted(held.items())
                 if base.get(fd) != t])
        return len(held) - len(base), diff

    def _left_behind(self, found, how):
        """The failure message (bounded) and, in the host's folder, the
        whole snapshot it is cut from."""
        snapshot = self.host.workdir / f"{self.name}.at-exit.txt"
        where = snapshot.name
        parts = [f"{self.name} (pid {self.pid}) left behind what the test did not "
                 f"declare: {'; '.join(what for what, _ in found.values())} ({how})",
                 f"(a test that means the server to leave them says so: "
                 f"leaves={{{', '.join(map(repr, sorted(found)))}}})"]
        if "zombies" in found:
            parts += ["processes:", *first_rows(self.ps().splitlines(), where)]
        if "fds" in found:
            parts += ["descriptors (- at ready, + now; open connections not counted):",
                      *first_rows(found["fds"][1], where)]
        if "close_wait" in found or "fds" in found:
            parts += [f"sockets on port {self.port}:",
                      *first_rows(self.sockets().splitlines(), where)]
        parts.append(f"snapshot: {snapshot}")
        snapshot.write_text("\n".join([
            parts[0], "", "processes:", self.ps(), "",
            "descriptors when ready:", *(f"  fd {fd:>4} -> {t}" for fd, t in
                                          sorted(self._baseline_fds.items())),
            "descriptors now:", self.fd_table(), "",
            "TCP sockets on the host:", tcpstate.table(self.host.outer_pid), ""]))
        return "\n".join(parts)

    # --- what checks look at --------------------------------------------
    # Each builds one look at the host (procs.ProcessTable); a caller with
    # several questions builds one itself with processes() and asks it.
    # None of them raises because the server has died.

    def processes(self):
        """One look at the host's processes (procs.ProcessTable)."""
        return self.host.processes()

    def children(self):
        """The server's children, zombies included; [] once it is gone."""
        return self.processes().children(self.pid)

    def zombies(self):
        return self.processes().zombies(self.pid)

    def descendants(self):
        """Children, grandchildren, ...: socat's `cat`s, say."""
        return self.processes().descendants(self.pid)

    def fd_count(self):
        """Descriptors the server holds: 0 once it has exited (the runner
        learns that from ended(), not from here)."""
        try:
            return len(procs.open_fds(self.pid))
        except (FileNotFoundError, ProcessLookupError):
            return 0

    def fd_table(self):
        ended = self.ended()
        if ended is not None:
            return f"  ({ended})"
        return procs.fd_table(self.pid)

    def thread_count(self):
        return procs.thread_count(self.pid)

    def ps(self):
        """The server and its descendants as a ps table. Once the server is
        gone, a line saying how it ended, then every process left on the
        host (its orphaned children, say)."""
        table = self.processes()
        ended = self.ended()
        if table.info(self.pid) is not None:
            text = table.tree(self.pid)
        else:
            text = table.ps()
        return text if ended is None else f"({ended})\n{text}"

    def sockets(self):
        return tcpstate.table(self.host.outer_pid, self.port)

    # --- signals: thin over procs, and only ever to a process on the host

    def send_signal(self, signo):
        procs.send_signal(self.pid, signo, netns=self.host.netns_inode)

    def stop(self):
        procs.stop(self.pid, netns=self.host.netns_inode)

    def cont(self):
        procs.cont(self.pid, netns=self.host.netns_inode)

    def idle(self):
        """Asleep in the wait it sleeps in when idle, no SIGCHLD pending:
        any signal handler that was due has run to completion."""
        try:
            return (procs.state(self.pid) == "S"
                    and procs.current_syscall(self.pid) == self._idle_syscall
                    and not procs.pending_signals(self.pid) & SIGCHLD_BIT)
        except (FileNotFoundError, ProcessLookupError):
            return False  # gone while we looked

    def wait_idle(self, timeout=5.0):
        wait_until(self.idle, timeout,
                   f"{self.name} to be idle in its accept wait with no SIGCHLD pending",
                   seen=lambda: f"{procs.describe(self.pid)}, syscall "
                                f"{procs.current_syscall(self.pid)} (idle is "
                                f"{self._idle_syscall}), pending signals "
                                f"{procs.pending_signals(self.pid):#x}")
