"""The reference server on a host: a Server (server.py) that also prints a
readiness line and keeps an event log.

    with Echod(host, reap="none", leaves={"zombies"}) as server:
        ...
        server.zombies()

On exit it is the server fixture: the server must be alive and, once
settled, hold no zombie, descriptor or CLOSE_WAIT socket that `leaves`
does not name; then SIGTERM, and exit status 0; and every line of its
event log must be a valid event (eventschema). A test that ends the
server itself says `stopped_by_test=True` (server.py).
"""

import json
import re
import signal
from pathlib import Path

from . import eventschema, paths, procs
from .eventschema import EventLogError
from .server import STOP_GRACE, Server
from .waiting import wait_until

READY = re.compile(r"listening on (\S+):(\d+) ")


def read_events(path, program=None):
    """The JSON-lines event log as a list of dicts, each validated against
    eventschema (program: "echod" or "echoc" when known). A torn last line,
    from a process killed mid-write, is skipped; any other line that is not
    UTF-8, not JSON or not a valid event raises EventLogError naming the
    file and line."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    # The last item is the bytes after the final newline: empty, or torn.
    return [parse_event_line(raw, f"{path}:{number}", program)
            for number, raw in enumerate(lines[:-1], start=1)]


def parse_event_line(raw, where, program=None):
    """One line of an event log (bytes, without its newline) as a validated
    dict; where ("FILE:LINE") prefixes every error."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EventLogError(f"{where}: not UTF-8 ({e.reason} at byte {e.start}): "
                            f"{raw[:200]!r}") from None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as e:
        raise EventLogError(f"{where}: not JSON ({e.msg} at column {e.colno}): "
                            f"{text[:200]!r}") from None
    found = eventschema.problems(event, program)
    if found:
        raise EventLogError(f"{where}: {'; '.join(found)}: {text[:300]}")
    return event


class Echod(Server):
    def __init__(self, host, reap="waitpid", port=9877, args=(), faults=(),
                 config=None, env=None, model="fork", name="echod", drain_ms=1000,
                 leaves=(), stopped_by_test=False, exit_status=0):
        """drain_ms: --drain-timeout, how long SIGTERM waits for open
        sessions. leaves, stopped_by_test, exit_status: the check at exit
        (Server)."""
        super().__init__(host, command=None, port=port, name=name, env=env,
                         leaves=leaves, stopped_by_test=stopped_by_test,
                         exit_status=exit_status)
        self.reap = reap
        self.model = model
        self.args = list(args)
        for spec in faults:
            self.args += ["--fault", spec]
        self.config_path = None
        if config is not None:
            self.config_path = host.workdir / f"{name}.conf"
            self.config_path.write_text(config)
            self.args += ["--config", self.config_path]
        self.events_path = host.workdir / f"{name}.events.jsonl"
        self.addr = None
        self.drain_ms = drain_ms

    def argv(self):
        return [paths.binary("echod"), "--port", self.port, "--model", self.model,
                "--reap", self.reap, "--drain-timeout", self.drain_ms,
                "--events", self.events_path, *self.args]

    def start(self, timeout=5.0):
        # A server's log starts empty, even when a same-named one ran before.
        self.events_path.unlink(missing_ok=True)
        self.proc = self.host.spawn(self.argv(), name=self.name, env=self.env)
        self.proc.wait_for_output("listening on", timeout)
        match = READY.search(self.proc.stdout())
        self.addr = (match.group(1), int(match.group(2)))
        self.port = self.addr[1]
        # echod prints the line after listen(), from the process the host
        # spawned: no need to look for the LISTEN socket and its holder in
        # /proc (Server.wait_ready, for servers that print nothing).
        self.pid = self.proc.pid
        self.note_idle(timeout)
        return self

    def __exit__(self, exc_type, exc, tb):
        super().__exit__(exc_type, exc, tb)
        if exc_type is None:
            # The whole log holds the contract, events no test read included
            # (read_events raises EventLogError naming the line that does not).
            read_events(self.events_path, program=eventschema.ECHOD)

    def exit_timeout(self):
        # SIGTERM waits drain_ms for open sessions, then kills them.
        return self.drain_ms / 1000 + 5.0

    def stop_grace(self):
        # Its drain is what SIGTERM is documented to wait for: only a
        # server still running past it is slow to stop.
        return self.drain_ms / 1000 + STOP_GRACE

    # --- echod's own records --------------------------------------------

    def events(self, name=None):
        evs = read_events(self.events_path, program=eventschema.ECHOD)
        return [e for e in evs if name is None or e.get("event") == name]

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
        self.send_signal(signal.SIGHUP)

        def answered():
            evs = [e for e in self.events() if e["event"] in ("reload", "reload_failed")]
            return evs[before] if len(evs) > before else None
        return wait_until(answered, timeout, f"{self.name} to answer SIGHUP",
                          seen=lambda: self.events()[-5:])
