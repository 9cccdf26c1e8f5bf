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
    def __init__(self, host, reap="waitpid", port=9877, args=(), faults=(),
                 config=None, env=None, name="echod"):
        self.host = host
        self.reap = reap
        self.port = port
        self.args = list(args)
        for spec in faults:
            self.args += ["--fault", spec]
        self.config_path = None
        if config is not None:
            self.config_path = host.workdir / f"{name}.conf"
            self.config_path.write_text(config)
            self.args += ["--config", self.config_path]
        self.env = env
        self.name = name
        # SIGTERM waits this long for open sessions; terminate() waits longer.
        self.drain_ms = 1000
        self.events_path = host.workdir / f"{name}.events.jsonl"
        self.proc = None
        self.addr = None
        self._idle_syscall = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=5.0):
        # A server's log starts empty, even when a same-named one ran before.
        self.events_path.unlink(missing_ok=True)
        argv = [paths.binary("echod"), "--port", self.port, "--reap", self.reap,
                "--drain-timeout", self.drain_ms, "--events", self.events_path,
                *self.args]
        self.proc = self.host.spawn(argv, name=self.name, env=self.env)
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

    def terminate(self, check=True, timeout=None):
        if not self.proc.alive():
            return self.proc.returncode
        if procs.state(self.pid) == "T":
            self.proc.cont()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout or self.drain_ms / 1000 + 5.0)
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

    def nspid_map(self):
        """{pid inside the host: ProcInfo} for the server and its children:
        the event log names processes by their pid inside the host."""
        rows = [procs.info(self.pid)] + self.children()
        return {r.nspid: r for r in rows if r is not None}

    def fork_event(self, conn, timeout=5.0):
        """The fork event of connection number conn (1-based); its "child"
        is the child's pid inside the host."""
        return wait_until(
            lambda: next((e for e in self.events("fork") if e["conn"] == conn), None),
            timeout, f"the fork of connection {conn}", seen=self.ps)

    def child_of_conn(self, conn, timeout=5.0):
        """The live child serving connection conn, as a ProcInfo with its
        global pid."""
        child = self.fork_event(conn, timeout)["child"]
        return wait_until(lambda: self.nspid_map().get(child), timeout,
                          f"child {child} (connection {conn}) in the process table",
                          seen=self.ps)

    def reaped_event(self, conn, timeout=5.0):
        """The parent's reaped event for connection conn's child:
        {"exit": N} or {"signal": N} among its fields."""
        child = self.fork_event(conn, timeout)["child"]
        return wait_until(
            lambda: next((e for e in self.events("reaped") if e["child"] == child), None),
            timeout, f"the parent to reap child {child} (connection {conn})",
            seen=lambda: f"{self.ps()}\n{self.events()[-6:]}")

    def reload(self, config_text, timeout=5.0):
        """Rewrite the --config file, SIGHUP, and wait for the reload or
        reload_failed event it causes; returns that event."""
        before = len(self.events("reload")) + len(self.events("reload_failed"))
        self.config_path.write_text(config_text)
        self.proc.send_signal(signal.SIGHUP)

        def answered():
            evs = [e for e in self.events() if e["event"] in ("reload", "reload_failed")]
            return evs[before] if len(evs) > before else None
        return wait_until(answered, timeout, f"{self.name} to answer SIGHUP",
                          seen=lambda: self.events()[-5:])

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
