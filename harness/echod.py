"""The reference server on a host, as a context manager, and its event log.

    with Echod(host, reap="none") as server:
        ...
        server.zombies()

On exit it checks that the server is still alive (a crash fails the test,
with its stderr), then stops it with SIGTERM and expects exit status 0.
"""

import json
import re
import signal
from pathlib import Path

from . import paths, procs
from .waiting import wait_until

READY = re.compile(r"listening on (\S+):(\d+) ")
SIGCHLD_BIT = 1 << (signal.SIGCHLD - 1)


class ServerCrashed(AssertionError):
    pass


def read_events(path):
    """The JSON-lines event log as a list of dicts (a torn last line, from a
    process killed mid-write, is skipped)."""
    events = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return events
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events


class Echod:
    def __init__(self, host, reap="waitpid", port=9877, args=(), name="echod"):
        self.host = host
        self.reap = reap
        self.port = port
        self.args = list(args)
        self.name = name
        self.events_path = host.workdir / f"{name}.events.jsonl"
        self.proc = None
        self.addr = None
        self._idle_syscall = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=5.0):
        argv = [paths.binary("echod"), "--port", self.port, "--reap", self.reap,
                "--events", self.events_path, *self.args]
        self.proc = self.host.spawn(argv, name=self.name)
        self.proc.wait_for_output("listening on", timeout)
        match = READY.search(self.proc.stdout())
        self.addr = (match.group(1), int(match.group(2)))
        self.port = self.addr[1]
        # The syscall it sleeps in when idle (ppoll): wait_idle()'s reference.
        self._idle_syscall, = wait_until(
            lambda: procs.state(self.pid) == "S" and (procs.current_syscall(self.pid),),
            timeout, f"{self.name} to block waiting for connections",
            seen=lambda: procs.describe(self.pid))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.check_alive()
        self.terminate(check=exc_type is None)

    def check_alive(self):
        if not self.proc.alive():
            raise ServerCrashed(
                f"{self.name} (pid {self.pid}) died with status "
                f"{self.proc.returncode}; stderr:\n{self.proc.stderr()}"
                f"\nevent log: {self.events_path}")

    def terminate(self, check=True, timeout=5.0):
        if not self.proc.alive():
            return self.proc.returncode
        if procs.state(self.pid) == "T":
            self.proc.cont()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        if check and code != 0:
            raise ServerCrashed(f"{self.name} exited {code} after SIGTERM; "
                                f"stderr:\n{self.proc.stderr()}")
        return code

    # --- what the tests look at -------------------------------------------

    def children(self):
        return procs.children(self.pid)

    def zombies(self):
        return procs.zombies(self.pid)

    def fd_count(self):
        return len(procs.open_fds(self.pid))

    def fd_table(self):
        return procs.fd_table(self.pid)

    def events(self, name=None):
        evs = read_events(self.events_path)
        return [e for e in evs if name is None or e.get("event") == name]

    def ps(self):
        return procs.tree(self.pid)

    def stop(self):
        self.proc.stop()

    def cont(self):
        self.proc.cont()

    def idle(self):
        """Blocked in its accept wait with no SIGCHLD pending: any signal
        handler that was due has run to completion."""
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
