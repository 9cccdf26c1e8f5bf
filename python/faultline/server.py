"""A server under test: any command that listens on a TCP port, run on a
host. Readiness is its LISTEN socket in the host's TCP table; the server's
pid is the process that holds that socket (a wrapper shell or a launcher
that forks is looked through). Everything the checks look at (children,
zombies, descriptors, threads, idleness) works on a server faultline did
not write. Echod (echod.py) is this plus echod's readiness line and
event log.
"""

import shlex
import signal

from . import procs, tcpstate
from .waiting import wait_until

SIGCHLD_BIT = 1 << (signal.SIGCHLD - 1)


class ServerCrashed(AssertionError):
    pass


class Server:
    def __init__(self, host, command, port, name="server", env=None):
        """command: an argv list, or a shell command line (run with sh -c
        only when it needs a shell)."""
        self.host = host
        self.port = port
        self.name = name
        self.env = env
        self.command = command
        self.proc = None      # what we spawned
        self.pid = None       # who holds the listening socket
        self._idle_syscall = None

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
        self.proc = self.host.spawn(self.argv(), name=self.name, env=self.env)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=5.0):
        """The LISTEN socket is there; its holder is the server's pid; the
        server sleeps waiting for connections (its idle syscall noted)."""
        def listening():
            if not self.proc.alive():
                said = self.proc.stderr().strip().splitlines()
                raise ServerCrashed(
                    f"{self.name} exited ({self.proc.returncode}) before listening "
                    f"on port {self.port}" + (f"; it said: {said[-1]}" if said else ""))
            for s in tcpstate.in_state(self.host.outer_pid, "LISTEN", self.port):
                holders = procs.socket_holders(
                    s.inode, procs.pids_in_netns(self.host.netns_inode))
                if holders:
                    # the outermost holder: a forking server's children
                    # inherit the listener too
                    return min(holders, key=lambda p: len(procs.ancestors(p)))
            return None
        self.pid = wait_until(listening, timeout,
                              f"{self.name} to listen on port {self.port}",
                              seen=lambda: tcpstate.table(self.host.outer_pid))
        self._idle_syscall, = wait_until(
            lambda: procs.state(self.pid) == "S" and (procs.current_syscall(self.pid),),
            timeout, f"{self.name} to block waiting for connections",
            seen=lambda: procs.describe(self.pid))

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.check_alive()
        self.terminate(check=False)

    def alive(self):
        i = procs.info(self.pid) if self.pid else None
        return i is not None and not i.dead

    def check_alive(self):
        if not self.alive():
            raise ServerCrashed(
                f"{self.name} (pid {self.pid}) died; exit status "
                f"{self.proc.returncode}; stderr:\n{self.proc.stderr()}")

    def terminate(self, check=True, timeout=5.0):
        """SIGTERM (after SIGCONT if stopped); returns the exit status."""
        if self.proc is None:
            return None
        if not self.proc.alive():
            return self.proc.returncode
        for pid in {self.pid, self.proc.pid} - {None}:
            if procs.state(pid) == "T":
                procs.cont(pid)
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        if check and code != 0:
            raise ServerCrashed(f"{self.name} exited {code} after SIGTERM; "
                                f"stderr:\n{self.proc.stderr()}")
        return code

    # --- what checks look at --------------------------------------------

    def children(self):
        return procs.children(self.pid)

    def zombies(self):
        return procs.zombies(self.pid)

    def descendants(self):
        """Children, grandchildren, ...: socat's `cat`s, say."""
        found, frontier = [], [self.pid]
        while frontier:
            kids = [c for p in frontier for c in procs.children(p)]
            found += kids
            frontier = [k.pid for k in kids if k.state != "Z"]
        return found

    def fd_count(self):
        return len(procs.open_fds(self.pid))

    def fd_table(self):
        return procs.fd_table(self.pid)

    def thread_count(self):
        return procs.thread_count(self.pid)

    def ps(self):
        root = procs.info(self.pid)
        return procs.ps_table(([root] if root else []) + self.descendants())

    def sockets(self):
        return tcpstate.table(self.host.outer_pid, self.port)

    def stop(self):
        procs.stop(self.pid)

    def cont(self):
        procs.cont(self.pid)

    def idle(self):
        """Asleep in the wait it sleeps in when idle, no SIGCHLD pending:
        any signal handler that was due has run to completion."""
        return (procs.state(self.pid) == "S"
                and procs.current_syscall(self.pid) == self._idle_syscall
                and not procs.pending_signals(self.pid) & SIGCHLD_BIT)

    def wait_idle(self, timeout=5.0):
        wait_until(self.idle, timeout,
                   f"{self.name} to be idle in its accept wait with no SIGCHLD pending",
                   seen=lambda: f"{procs.describe(self.pid)}, syscall "
                                f"{procs.current_syscall(self.pid)} (idle is "
                                f"{self._idle_syscall}), pending signals "
                                f"{procs.pending_signals(self.pid):#x}")

