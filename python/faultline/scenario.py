"""Scenario files: an edge case as a declarative TOML file, run by one
engine for `./faultline run FILE`, `./faultline list` and the pytest suite
(pytest/test_scenarios.py), so a scenario and its test cannot drift apart.

    # Expected packets: client FIN x5, server FIN x5, no RST
    title = "UNP 5.10: five clients close together, no reaper"
    source = "UNP 5.10"
    marker = "zombie"
    capture = true

    [server]
    echod = ["--reap", "none"]        # or: command = "socat ...", port = 9877
    faults = []                       # echod --fault specs
    config = ""                       # initial --config file, if any

    [[step]]
    do = "connect"
    as = "c"
    count = 5
    ...

    [expect]
    zombies = 5

    verdict = "{zombies} zombies: no SIGCHLD handler (UNP server-v1)"

docs/SCENARIOS.md lists every step, measurement and expectation. Each step
is a small function below, named after its `do`; each measurement of the
finished run a gauge function named after it, which is also an
expectation (`zombies = 5`: the gauge reads 5); the other expectations are
functions named after their key. Everything a step or a gauge saw lands
in Result.measured, and the file's `verdict` is filled from it: that one
line is what `./faultline demo` prints. A scenario runs on a fresh host
and writes its artifact folder: the pcap, event logs, every process's
output, ps and ss snapshots after each step that waits or changes them,
report.txt and result.json (the verdict, for report.html).
"""

import contextlib
import json
import re
import signal
import socket
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import capture as cap
from .clients import all_exited, recv_exactly, reset, start_client, talk
from . import eventschema, faults, link, paths, procs, tcpstate
from .echod import Echod, EventLogError, read_events
from .host import Host
from .topology import TwoHosts
from .server import Server
from .interrupts import cleanup
from .waiting import WaitTimeout, wait_until

SCENARIO_DIR = paths.SCENARIO_DIR

# {name} or {name:format-spec} in a verdict; names may hold dots (c.status).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)(?::([^{}]*))?\}")


class ScenarioError(Exception):
    """The file itself is wrong: unknown step, missing key, bad value."""


class Unmeasured(ScenarioError):
    """A verdict or a bound names something the run did not measure."""


@dataclass
class Result:
    path: Path
    title: str
    passed: bool
    lines: list = field(default_factory=list)   # report lines, in order
    failures: list = field(default_factory=list)
    artifacts: Path = None
    measured: dict = field(default_factory=dict)  # measurement name -> value
    verdict: str = None      # the file's verdict, filled from measured
    pcap: Path = None
    events: Path = None      # echod's event log (None for a `command` server)

    def report(self):
        return "\n".join(self.lines)

    def reason(self):
        """Why it failed, in one line."""
        return self.failures[0].splitlines()[0] if self.failures else ""


def placeholders(template):
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def fill(template, value_of):
    """The template with each {name} or {name:spec} replaced by
    format(value_of(name), spec)."""
    return PLACEHOLDER.sub(lambda m: format(value_of(m.group(1)), m.group(2) or ""),
                           template)


# Expectations that read the packet capture: a file with one is a pcap test.
PCAP_EXPECTATIONS = {"handshakes", "closes", "rst_from", "no_fin_from", "sequence"}


def markers(spec):
    """The pytest markers of a scenario: its `marker` (a name or a list),
    and pcap when an expectation reads the capture."""
    marker = spec.get("marker", [])
    names = [marker] if isinstance(marker, str) else list(marker)
    if PCAP_EXPECTATIONS & set(spec.get("expect", {})) and "pcap" not in names:
        names.append("pcap")
    return names


def _check_measurement_name(path, where, name):
    # Dotted names (c.status, events.fault) are recorded by steps or are
    # event counts; a plain name must be a gauge.
    if "." not in name and name not in GAUGES:
        raise ScenarioError(f"{path}: {where} names '{name}', which nothing measures "
                            f"(gauges: {', '.join(sorted(GAUGES))}; steps record "
                            f"NAME.FIELD, e.g. c.status)")


DEMO_KEYS = {"order": int, "label": str, "table": bool}


def _check_demo(path, demo):
    if not isinstance(demo, dict) or "order" not in demo:
        raise ScenarioError(f"{path}: [demo] needs order = N (its place in the demo)")
    for key, value in demo.items():
        if key not in DEMO_KEYS or not isinstance(value, DEMO_KEYS[key]):
            raise ScenarioError(f"{path}: [demo] {key} = {value!r} (keys: order = N, "
                                f"label = \"...\", table = true|false)")


# [server]: key -> (type, what it is), for the one-line error a typo gets.
SERVER_KEYS = {
    "echod": (list, "echod's options, a list"),
    "command": (str, "any server's command line"),
    "port": (int, "the port it listens on"),
    "reap": (str, "echod --reap: waitpid, wait or none"),
    "faults": (list, "echod --fault specs, a list"),
    "config": (str, "echod's --config file"),
    "model": (str, "echod --model"),
    "drain_ms": (int, "echod --drain-timeout in ms"),
}


def _check_server(path, server):
    if not isinstance(server, dict):
        raise ScenarioError(f"{path}: [server] must be a table")
    for key, value in server.items():
        if key not in SERVER_KEYS:
            raise ScenarioError(f"{path}: [server] unknown key '{key}' "
                                f"(keys: {', '.join(SERVER_KEYS)})")
        kind, what = SERVER_KEYS[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ScenarioError(f"{path}: [server] {key} = {value!r}: wants {what}")


def load(path):
    path = Path(path)
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: {e}") from None
    for key in ("title", "step"):
        if key not in spec:
            raise ScenarioError(f"{path}: missing '{key}'")
    if spec.get("hosts", 1) not in (1, 2):
        raise ScenarioError(f"{path}: hosts = {spec['hosts']!r} (1, or 2: client and "
                            f"server joined by veth)")
    for i, step in enumerate(spec["step"], 1):
        if step.get("do") not in STEPS:
            raise ScenarioError(f"{path}: step {i}: unknown do = {step.get('do')!r} "
                                f"(steps: {', '.join(sorted(STEPS))})")
    for key, want in spec.get("expect", {}).items():
        if key not in EXPECTATIONS:
            raise ScenarioError(f"{path}: unknown expectation '{key}' "
                                f"(expectations: {', '.join(sorted(EXPECTATIONS))})")
        if key == "at_least":
            for name in want:
                _check_measurement_name(path, f"expect.{key}", name)
    if "verdict" in spec:
        for name in placeholders(spec["verdict"]):
            _check_measurement_name(path, "verdict", name)
    if "demo" in spec:
        _check_demo(path, spec["demo"])
        if "verdict" not in spec:
            raise ScenarioError(f"{path}: [demo] needs a verdict line to print")
    _check_server(path, spec.get("server", {}))
    first = path.read_text().lstrip().splitlines()[:1]
    if not first or not first[0].startswith("#"):
        raise ScenarioError(f"{path}: must open with a comment giving the packet "
                            f"sequence it expects")
    return spec


def all_scenarios():
    return sorted(SCENARIO_DIR.glob("*.toml"))


def summary_line(path):
    spec = load(path)
    return f"{Path(path).stem:<28}{spec.get('source', ''):<13}{spec['title']}"


class Failed(AssertionError):
    pass


class Run:
    """One scenario running: the host, the server, named clients, and what
    has been measured so far."""

    def __init__(self, spec, host, workdir, client_host=None, server_addr="127.0.0.1"):
        self.spec = spec
        self.host = host                          # the server's
        self.client_host = client_host or host    # where clients run
        self.server_addr = server_addr            # what clients connect to
        self.workdir = Path(workdir)
        self.server = None
        self.sockets = {}        # name -> [socket]
        self.clients = {}        # name -> echoc Proc
        self.children_seen = {}  # pid -> ProcInfo
        self.fd_mark = None
        self.pcap = None
        self.connected_at = {}   # group name -> monotonic time of its connect
        self.measured = {}
        self.lines = []
        self.failures = []

    def note(self, text):
        self.lines.append(text)

    def record(self, subject, what, value):
        """A step's measurement, named SUBJECT.WHAT (c.status, slow.echo_ms)."""
        self.measured[f"{subject}.{what}"] = value

    def measure(self, name):
        """A measurement: what a step recorded, or what its gauge reads now
        (read once: the verdict and the expectations see the same value)."""
        if name not in self.measured:
            if name in GAUGES:
                self.measured[name] = GAUGES[name].read(self)
            elif name.startswith("events."):
                self.measured[name] = len(_events(self, name[len("events."):]))
            else:
                raise Unmeasured(f"nothing measured '{name}' (measured: "
                                 f"{', '.join(sorted(self.measured)) or 'nothing'})")
        return self.measured[name]

    def hosts(self):
        return [self.host] if self.client_host is self.host else [self.host,
                                                                   self.client_host]

    def port_sockets(self, state=None):
        """Sockets on the server port, on every host of the scenario."""
        found = []
        for h in self.hosts():
            found += [s for s in tcpstate.sockets(h.outer_pid, self.server.port)
                      if state is None or s.state == state]
        return found

    def port_table(self):
        return "\n".join(f"host {h.name}:\n{tcpstate.table(h.outer_pid, self.server.port)}"
                         for h in self.hosts())

    def expect(self, ok, text, evidence=""):
        self.note(f"  {'ok  ' if ok else 'FAIL'} {text}")
        if not ok:
            self.failures.append(f"{text}\n{evidence}".rstrip())

    def fail_step(self, i, step, error):
        self.note(f"  FAIL step {i} {step['do']}: {str(error).splitlines()[0]}")
        self.failures.append(f"step {i} ({step['do']}): {error}\n{self.evidence()}")

    def evidence(self):
        if self.server is None or self.server.pid is None:
            return ""
        return (f"process table:\n{self.server.ps()}\nTCP sockets:\n"
                f"{self.server.sockets()}")

    def snapshot(self, label):
        # The time is the pcap's and the event log's clock (CLOCK_REALTIME),
        # taken once the tables are read: what they show was so by then,
        # which is where a ladder draws it.
        tables = self.evidence()
        with (self.workdir / "snapshots.txt").open("a") as f:
            f.write(f"--- after {label} at {time.time():.6f}\n{tables}\n")

    def group(self, name):
        if name not in self.sockets:
            raise ScenarioError(f"no connections named {name!r} (connect as = ... first)")
        return self.sockets[name]

    def client(self, name):
        if name not in self.clients:
            raise ScenarioError(f"no client named {name!r} (do = \"client\" first)")
        return self.clients[name]

    def see_children(self):
        for c in self.server.children():
            self.children_seen.setdefault(c.pid, c)


# --- steps ------------------------------------------------------------------

def step_connect(run, step):
    """Open `count` connections (default 1) named `as`."""
    run.connected_at.setdefault(step["as"], time.monotonic())
    socks = [run.client_host.connect(run.server.port, addr=run.server_addr,
                                     timeout=step.get("timeout", 5.0))
             for _ in range(step.get("count", 1))]
    run.sockets.setdefault(step["as"], []).extend(socks)
    return f"{len(socks)} connection(s) '{step['as']}'"


def step_send(run, step):
    """Send `data` on every connection of group `on`."""
    data = step["data"].encode()
    for s in run.group(step["on"]):
        s.sendall(data)
    return f"sent {data!r} on '{step['on']}'"


def step_expect_echo(run, step):
    """Read back exactly `data` on every connection of `on`; records
    ON.echo (the bytes) and ON.echo_ms (ms from the group's connect to the
    last echo)."""
    data = step["data"].encode()
    for s in run.group(step["on"]):
        got = recv_exactly(s, len(data))
        if got != data:
            raise Failed(f"'{step['on']}' got {got!r}, expected the echo {data!r}")
    run.record(step["on"], "echo_ms",
               (time.monotonic() - run.connected_at[step["on"]]) * 1000)
    run.record(step["on"], "echo", data)
    run.see_children()
    return f"echo of {data!r} on '{step['on']}'"


def step_expect_eof(run, step):
    """Every connection of `on` reads end of file (reset fails it)."""
    for s in run.group(step["on"]):
        s.settimeout(step.get("timeout", 5.0))
        got = s.recv(64)
        if got:
            raise Failed(f"'{step['on']}' expected EOF, got {got!r}")
    return f"EOF on '{step['on']}'"


def step_close(run, step):
    """Close every connection of `on` at once: how = fin (default), rst
    (SO_LINGER 0), or shutdown_wr (half-close, keep reading)."""
    how = step.get("how", "fin")
    for s in run.group(step["on"]):
        if how == "rst":
            reset(s)
        elif how == "shutdown_wr":
            s.shutdown(socket.SHUT_WR)
        elif how == "fin":
            s.close()
        else:
            raise ScenarioError(f"close: how = {how!r} (fin, rst or shutdown_wr)")
    return f"closed '{step['on']}' ({how})"


def step_client(run, step):
    """Start echoc named `as` with `args` before HOST PORT; stdin is ours."""
    run.clients[step["as"]] = start_client(run.client_host, run.server.port,
                                           step.get("args", []), f"echoc-{step['as']}",
                                           run.server_addr)
    return f"echoc '{step['as']}' {' '.join(step.get('args', []))}"


def step_type(run, step):
    """Type `line` (`repeat` times over, on one line) into client `into`;
    with wait_echo (default true) wait for it on the client's stdout."""
    line = step["line"] * step.get("repeat", 1)
    talk(run.client(step["into"]), line, wait_echo=step.get("wait_echo", True))
    run.see_children()
    return f"typed {line!r} into '{step['into']}'"


def step_end_input(run, step):
    """Close client `of`'s stdin (end of input)."""
    run.client(step["of"]).stdin.close()
    return f"end of input for '{step['of']}'"


def step_wait_exit(run, step):
    """Wait for client `of` to exit; `status` (or -N for signal N) and
    `stderr_has` are checked. Records OF.status, OF.signal (N, or 0 when
    it exited) and OF.stderr."""
    proc = run.client(step["of"])
    code = proc.wait(step.get("timeout", 5.0))
    run.record(step["of"], "status", code)
    run.record(step["of"], "signal", -code if code < 0 else 0)
    run.record(step["of"], "stderr", proc.stderr().strip())
    if "status" in step and code != step["status"]:
        raise Failed(f"client '{step['of']}' exited {code}, expected {step['status']}; "
                     f"stderr {proc.stderr()!r}")
    if "stderr_has" in step and step["stderr_has"] not in proc.stderr():
        raise Failed(f"client '{step['of']}' stderr {proc.stderr()!r} lacks "
                     f"{step['stderr_has']!r}")
    return f"client '{step['of']}' exited {code}"


def step_expect_running(run, step):
    """Client `of` has not exited (it has not noticed anything yet)."""
    proc = run.client(step["of"])
    if not proc.alive():
        raise Failed(f"client '{step['of']}' exited {proc.returncode}: {proc.stderr()!r}")
    return f"client '{step['of']}' still running"


def _client_addr(run, step):
    if "of" in step:  # an echoc client: its one connection
        proc = run.client(step["of"])
        mine = [s for s in tcpstate.sockets(run.client_host.outer_pid, run.server.port)
                if s.remote[1] == run.server.port and s.inode
                and s.inode in procs.socket_inodes(proc.pid)]
        if not mine:
            raise Failed(f"client '{step['of']}' has no connection")
        return mine[0].local
    return run.group(step["on"])[0].getsockname()


def step_kill_serving(run, step):
    """SIGKILL (or `signal`) the process serving client `of` / group `on`,
    found from outside through its socket inode."""
    sig = getattr(signal, step.get("signal", "SIGKILL"))
    pids = faults.kill_serving(run.host, _client_addr(run, step), sig)
    return f"{signal.Signals(sig).name} to serving pid {pids}"


def step_stop_server(run, step):
    """SIGSTOP the server (its main process)."""
    run.server.stop()
    return "server stopped"


def step_cont_server(run, step):
    """SIGCONT the server."""
    run.server.cont()
    return "server continued"


def step_wait_children(run, step):
    """The server has `count` live children (one per connection, say)."""
    n = step["count"]
    wait_until(lambda: len([c for c in run.server.children() if not c.dead]) == n,
               step.get("timeout", 5.0), f"{n} live children of the server",
               seen=run.server.ps)
    run.see_children()
    return f"{n} children"


def step_wait_children_exited(run, step):
    """Every child the server has had so far has exited (zombie or gone)."""
    run.see_children()
    pids = list(run.children_seen)
    wait_until(lambda: all_exited(pids), 5.0, f"all {len(pids)} children to exit",
               seen=run.server.ps)
    return f"{len(pids)} children exited"


def step_wait_idle(run, step):
    """The server sleeps in its accept wait with no SIGCHLD pending."""
    run.server.wait_idle()
    return "server idle"


def step_wait_state(run, step):
    """`count` (default >= 1) sockets on the server port in TCP `state`."""
    state, want = step["state"], step.get("count")

    def seen():
        n = len(run.port_sockets(state))
        return n == want if want is not None else n >= 1
    wait_until(seen, step.get("timeout", 5.0), f"sockets in {state}",
               seen=run.port_table)
    return f"socket(s) in {state}"


def step_wait_rx_queue(run, step):
    """A server-side socket holds `bytes` unread in its receive queue."""
    n = step["bytes"]
    wait_until(lambda: any(s.rx_queue == n and s.local[1] == run.server.port
                           for s in tcpstate.sockets(run.host.outer_pid, run.server.port)),
               5.0, f"{n} unread bytes in a server socket",
               seen=lambda: tcpstate.table(run.host.outer_pid, run.server.port))
    return f"{n} bytes wait unread"


def step_mark_fds(run, step):
    """Remember the server's descriptor count (for expect.fd_growth)."""
    run.fd_mark = run.server.fd_count()
    return f"server holds {run.fd_mark} descriptors"


def step_reload(run, step):
    """Rewrite the --config file with `config`, SIGHUP; `result` is
    "reload" (default) or "reload_failed", and `error_has` text the
    failure's error must contain. Records AS.event and AS.error (`as`
    defaults to "reload"; the error names the file without its folder)."""
    event = run.server.reload(step["config"])
    name = step.get("as", "reload")
    error = event.get("error", "").replace(f"{run.server.config_path.parent}/", "")
    run.record(name, "event", event["event"])
    run.record(name, "error", error)
    want = step.get("result", "reload")
    if event["event"] != want:
        raise Failed(f"SIGHUP gave {event}, expected {want}")
    if step.get("error_has", "") not in error:
        raise Failed(f"SIGHUP's error {error!r} does not say {step['error_has']!r}")
    return f"SIGHUP: {event['event']} {event.get('error', '')}".rstrip()


def step_sigterm(run, step):
    """SIGTERM the server and wait until it has closed its listener."""
    run.server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not tcpstate.in_state(run.host.outer_pid, "LISTEN", run.server.port),
               5.0, "the listener to close", seen=run.evidence)
    return "SIGTERM; listener closed"


def step_expect_refused(run, step):
    """A new connection is refused (RST to the SYN)."""
    try:
        run.client_host.connect(run.server.port, addr=run.server_addr).close()
    except ConnectionRefusedError:
        return "connect refused"
    raise Failed("a new connection was accepted")


def step_wait_server_exit(run, step):
    """The server exits, with `status` (default 0); records server.status."""
    code = run.server.proc.wait(step.get("timeout", 10.0))
    run.record("server", "status", code)
    if code != step.get("status", 0):
        raise Failed(f"server exited {code}, expected {step.get('status', 0)}; "
                     f"stderr {run.server.proc.stderr()!r}")
    return f"server exited {code}"


def step_link(run, step):
    """An nftables rule on the server's host (faultline.link): `rule` =
    reject_with_rst, drop_syn, or drop_share (with `percent`)."""
    rule = step["rule"]
    if rule == "drop_share":
        link.drop_share(run.host, run.server.port, step["percent"])
    elif rule in ("reject_with_rst", "drop_syn"):
        getattr(link, rule)(run.host, run.server.port)
    else:
        raise ScenarioError(f"link: rule = {rule!r} (reject_with_rst, drop_syn, "
                            f"drop_share)")
    return f"nftables {rule} on port {run.server.port}"


def step_expect_connect_timeout(run, step):
    """A new connection gets no answer within `timeout` (default 1 s): its
    SYNs are dropped."""
    try:
        run.client_host.connect(run.server.port, addr=run.server_addr,
                                timeout=step.get("timeout", 1.0)).close()
    except socket.timeout:
        return "connect timed out"
    raise Failed("a new connection got through")


STEPS = {name[5:]: fn for name, fn in globals().items() if name.startswith("step_")}


# --- gauges: what the finished run measures ---------------------------------
#
# Each reads one thing from the process table, the TCP table, echod's log or
# the pcap after the last step. `NAME = value` under [expect] says what it
# must read; a verdict's {NAME} prints what it read.

@dataclass
class Gauge:
    read: object          # run -> value
    says: str             # "{} zombie children": the value in a report line
    evidence: object      # run -> what to show when its expectation fails


GAUGES = {}


def _describe_conversations(run):
    return "\n".join(c.describe() for c in _conversations(run))


def gauge(says, evidence=lambda run: run.evidence()):
    def register(fn):
        GAUGES[fn.__name__[len("gauge_"):]] = Gauge(fn, says, evidence)
        return fn
    return register


def _events(run, name):
    return run.server.events(name) if isinstance(run.server, Echod) else []


@gauge("{} zombie children")
def gauge_zombies(run):
    return len(run.server.zombies())


@gauge("{} children seen")
def gauge_children(run):
    run.see_children()
    return len(run.children_seen)


@gauge("{} SIGCHLD handled")
def gauge_sigchld(run):
    return len([e for e in _events(run, "signal") if e.get("name") == "SIGCHLD"])


@gauge("{} children reaped")
def gauge_reaped(run):
    return len(_events(run, "reaped"))


@gauge("every child seen reaped: {}")
def gauge_reaped_every_child(run):
    run.see_children()
    reaped = sorted(e["child"] for e in _events(run, "reaped"))
    return bool(reaped) and reaped == sorted(c.nspid for c in run.children_seen.values())


@gauge("session_end reasons {}")
def gauge_session_ends(run):
    return [e.get("reason") for e in _events(run, "session_end")]


@gauge("descriptors grew by {}", evidence=lambda run: run.server.fd_table())
def gauge_fd_growth(run):
    if run.fd_mark is None:
        raise ScenarioError("fd_growth needs a mark_fds step")
    return run.server.fd_count() - run.fd_mark


@gauge("{} sockets in CLOSE_WAIT")
def gauge_close_wait(run):
    return len(run.port_sockets("CLOSE_WAIT"))


@gauge("{} CLOSE_WAIT sockets held by the server's main process",
       evidence=lambda run: f"{run.evidence()}\n{run.server.fd_table()}")
def gauge_close_wait_held(run):
    held = procs.socket_inodes(run.server.pid)
    return len([s for s in run.port_sockets("CLOSE_WAIT") if s.inode in held])


@gauge("server alive: {}")
def gauge_server_alive(run):
    return run.server.alive()


@gauge("{} handshakes in the pcap", evidence=_describe_conversations)
def gauge_handshakes(run):
    return sum(c.handshake for c in _conversations(run))


@gauge("{} orderly closes in the pcap", evidence=_describe_conversations)
def gauge_closes(run):
    """Connections closed by a FIN from each side."""
    return sum(c.closed for c in _conversations(run))


@gauge("RST from {}", evidence=_describe_conversations)
def gauge_rst_from(run):
    """"server", "client", "client, server" or "none": who reset a
    connection (Conversation.resets_from)."""
    senders = sorted({side for c in _conversations(run) for side in ("client", "server")
                      if c.resets_from(side)})
    return ", ".join(senders) or "none"


def _conversations(run):
    if run.pcap is None:
        raise ScenarioError("packet measurements need capture = true")
    return cap.conversations(cap.read_segments(run.pcap), run.server.port)


# --- expectations (checked after the steps) -------------------------------

def expect_gauge(run, name, want):
    """NAME = value: the gauge reads exactly that."""
    g = GAUGES[name]
    got = run.measure(name)
    run.expect(got == want, f"{g.says.format(got)} (expected {want})", g.evidence(run))


def expect_events(run, want):
    """{event name: count} in echod's log."""
    for name, count in want.items():
        n = run.measure(f"events.{name}")
        run.expect(n == count, f"{n} '{name}' events (expected {count})")


def expect_at_least(run, bounds):
    """{measurement: lowest value}, for what varies from run to run."""
    for name, low in bounds.items():
        got = run.measure(name)
        run.expect(got >= low, f"{name} = {got:g} (expected at least {low})",
                   run.evidence())


def expect_no_fin_from(run, side):
    conns = _conversations(run)
    fins = [c for c in conns if c.fins_from(side)]
    run.expect(not fins, f"{'a' if fins else 'no'} FIN from the {side} (expected none)",
               "\n".join(c.describe() for c in conns))


def expect_sequence(run, want):
    """Segments, in this order, on one connection: "server F", "client data",
    "server R", "client F" ... (flags by tcpdump letter, or "data")."""
    for conn in _conversations(run):
        at = 0
        for seg in conn.segments:
            if at == len(want):
                break
            side, what = want[at].split()
            sender = conn.client if side == "client" else conn.server
            if seg.src == sender and (seg.length > 0 if what == "data" else seg.has(what)):
                at += 1
        if at == len(want):
            run.expect(True, f"packets in order: {', '.join(want)}")
            return
    run.expect(False, f"no connection shows {', '.join(want)} in order",
               "\n".join(c.describe() for c in _conversations(run)))


EXPECTATIONS = {
    **{name: (lambda run, want, name=name: expect_gauge(run, name, want))
       for name in GAUGES},
    **{name[7:]: fn for name, fn in globals().items()
       if name.startswith("expect_") and name != "expect_gauge"},
}


# --- running ------------------------------------------------------------------

def make_server(spec, host):
    srv = spec.get("server", {})
    if "command" in srv:
        if srv.get("faults") or srv.get("config") is not None or "drain_ms" in srv:
            raise ScenarioError("faults, config and drain_ms apply to echod only")
        return Server(host, srv["command"], srv.get("port", 9877))
    return Echod(host, args=srv.get("echod", []), faults=srv.get("faults", []),
                 config=srv.get("config"), port=srv.get("port", 9877),
                 model=srv.get("model", "fork"), reap=srv.get("reap", "waitpid"),
                 drain_ms=srv.get("drain_ms", 1000))


# No snapshot after the steps that move bytes on raw connections: a
# snapshot scans /proc, and between a send and what it is timed against (an
# echo's latency, a fault's 1 s delay that the next line must fall inside)
# that scan, on a loaded machine, has taken longer than the delay. The next
# waiting step's snapshot shows their connections and children.
UNSNAPSHOTTED = {"connect", "send", "expect_echo"}


def judge(state, spec):
    """After the last step: check the expectations, then fill the verdict
    from what was measured."""
    try:
        for key, want in spec.get("expect", {}).items():
            EXPECTATIONS[key](state, want)
        if "verdict" in spec:
            verdict = fill(spec["verdict"], state.measure)
            state.note(f"  verdict: {verdict}")
            return verdict
    except ScenarioError as e:  # a verdict or gauge the run cannot serve
        state.expect(False, f"{e}")
    return None


def run(path, workdir):
    """Run a scenario on a fresh host; everything lands in workdir."""
    path, workdir = Path(path), Path(workdir)
    spec = load(path)
    result = Result(path, spec["title"], False, artifacts=workdir)
    with contextlib.ExitStack() as stack:
        if spec.get("hosts", 1) == 2:
            # Client and server on two hosts joined by veth: packets cross a
            # real link, captured on the server's end of it.
            net = stack.enter_context(TwoHosts(workdir))
            host, iface = net.server, net.server_iface
            state = Run(spec, host, workdir, client_host=net.client,
                        server_addr=net.server_addr)
        else:
            host, iface = stack.enter_context(Host(path.stem, workdir)), "lo"
            state = Run(spec, host, workdir)
        state.note(f"scenario {path.stem}: {spec['title']}")
        capturer = None
        if spec.get("capture"):
            state.pcap = result.pcap = workdir / f"{path.stem}.pcap"
            # A scenario moves a few lines: keep whole packets, so that the
            # ladder can show what each one carried.
            capturer = cap.Capture(host, state.pcap, iface=iface,
                                   snaplen=cap.WHOLE_FRAME).start()
        state.server = make_server(spec, host)
        if isinstance(state.server, Echod):
            result.events = state.server.events_path
        try:
            state.server.start()
            for i, step in enumerate(spec["step"], 1):
                try:
                    said = STEPS[step["do"]](state, step)
                except KeyError as e:
                    state.fail_step(i, step, f"the step needs '{e.args[0]}' "
                                             f"(docs/SCENARIOS.md)")
                    break
                except (Failed, WaitTimeout, OSError, ScenarioError) as e:
                    state.fail_step(i, step, e)
                    break
                state.note(f"  step {i:>2} {step['do']:<22} {said}")
                if step["do"] not in UNSNAPSHOTTED:
                    state.snapshot(f"step {i} {step['do']}")
            else:
                if capturer:
                    capturer.stop()
                result.verdict = judge(state, spec)
        finally:
            with cleanup(f"stopping {state.server.name}"):
                state.server.terminate(check=False)
            if capturer:
                with cleanup("stopping the packet capture"):
                    capturer.stop()
        if isinstance(state.server, Echod):
            # Every event of the run holds the contract, read by a step or not.
            try:
                read_events(state.server.events_path, program=eventschema.ECHOD)
            except EventLogError as e:
                state.expect(False, "the event log holds the contract (eventschema)", str(e))
    result.lines, result.failures = state.lines, state.failures
    result.measured = state.measured
    result.passed = not state.failures
    result.lines.append(f"{'PASS' if result.passed else 'FAIL'}: {path.stem}; "
                        f"artifacts in {workdir}/")
    (workdir / "report.txt").write_text(result.report() + "\n\n" +
                                        "\n\n".join(result.failures) + "\n")
    # What report.html shows as the verdict, read back by faultline report.
    (workdir / "result.json").write_text(json.dumps({
        "scenario": path.stem, "title": result.title, "passed": result.passed,
        "verdict": result.verdict, "failures": result.failures,
        "demo_order": spec.get("demo", {}).get("order")}, indent=2) + "\n")
    return result
