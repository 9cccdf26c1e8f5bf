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

docs/SCENARIOS.md lists every step and expectation. Each step is a small
function below, named after its `do`; each expectation a function named
after its key. A scenario runs on a fresh host and writes its artifact
folder: the pcap, event logs, every process's output, ps and ss snapshots
after each step that changes them, and report.txt.
"""

import contextlib
import signal
import socket
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import capture as cap
from .clients import recv_exactly, reset
from . import faults, link, paths, procs, tcpstate
from .echod import Echod
from .experiments import talk
from .host import Host
from .topology import TwoHosts
from .server import Server
from .waiting import WaitTimeout, wait_until

SCENARIO_DIR = paths.REPO / "fixtures" / "scenarios"


class ScenarioError(Exception):
    """The file itself is wrong: unknown step, missing key, bad value."""


@dataclass
class Result:
    path: Path
    title: str
    passed: bool
    lines: list = field(default_factory=list)   # report lines, in order
    failures: list = field(default_factory=list)
    artifacts: Path = None

    def report(self):
        return "\n".join(self.lines)


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
    for key in spec.get("expect", {}):
        if key not in EXPECTATIONS:
            raise ScenarioError(f"{path}: unknown expectation '{key}' "
                                f"(expectations: {', '.join(sorted(EXPECTATIONS))})")
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
    """One scenario running: the host, the server, named clients."""

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
        self.lines = []
        self.failures = []

    def note(self, text):
        self.lines.append(text)

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

    def evidence(self):
        if self.server is None or self.server.pid is None:
            return ""
        return (f"process table:\n{self.server.ps()}\nTCP sockets:\n"
                f"{self.server.sockets()}")

    def snapshot(self, label):
        (self.workdir / "snapshots.txt").open("a").write(
            f"--- after {label}\n{self.evidence()}\n")

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
    """Read back `data` (default: the last sent) on every connection of `on`."""
    data = step["data"].encode()
    for s in run.group(step["on"]):
        got = recv_exactly(s, len(data))
        if got != data:
            raise Failed(f"'{step['on']}' got {got!r}, expected the echo {data!r}")
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
    argv = [paths.binary("echoc"), *step.get("args", []), run.server_addr, run.server.port]
    run.clients[step["as"]] = run.client_host.spawn(argv, name=f"echoc-{step['as']}",
                                             stdin=subprocess.PIPE)
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
    `stderr_has` are checked."""
    proc = run.client(step["of"])
    code = proc.wait(step.get("timeout", 5.0))
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


def step_wait_children_exited(run, step):
    """Every child the server has had so far has exited (zombie or gone)."""
    run.see_children()
    pids = list(run.children_seen)
    wait_until(lambda: all(procs.state(p) in (None, "Z") for p in pids), 5.0,
               f"all {len(pids)} children to exit", seen=run.server.ps)
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
    "reload" (default) or "reload_failed"."""
    event = run.server.reload(step["config"])
    want = step.get("result", "reload")
    if event["event"] != want:
        raise Failed(f"SIGHUP gave {event}, expected {want}")
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
    """The server exits, with `status` (default 0)."""
    code = run.server.proc.wait(step.get("timeout", 10.0))
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


# --- expectations (checked after the steps) -------------------------------

def expect_zombies(run, want):
    z = run.server.zombies()
    run.expect(len(z) == want, f"{len(z)} zombie children (expected {want})", run.evidence())


def expect_children(run, want):
    run.see_children()
    n = len(run.children_seen)
    run.expect(n == want, f"{n} children seen (expected {want})", run.evidence())


def _events(run, name):
    return run.server.events(name) if isinstance(run.server, Echod) else []


def expect_sigchld(run, want):
    n = len([e for e in _events(run, "signal") if e.get("name") == "SIGCHLD"])
    run.expect(n == want, f"{n} SIGCHLD handled (expected {want})", run.evidence())


def expect_reaped(run, want):
    n = len(_events(run, "reaped"))
    run.expect(n == want, f"{n} children reaped (expected {want})", run.evidence())


def expect_fd_growth(run, want):
    if run.fd_mark is None:
        raise ScenarioError("fd_growth needs a mark_fds step")
    grown = run.server.fd_count() - run.fd_mark
    run.expect(grown == want, f"descriptors grew by {grown} (expected {want})",
               run.server.fd_table())


def expect_close_wait(run, want):
    n = len(run.port_sockets("CLOSE_WAIT"))
    run.expect(n == want, f"{n} sockets in CLOSE_WAIT (expected {want})", run.evidence())


def expect_server_alive(run, want):
    alive = run.server.alive()
    run.expect(alive == want, f"server {'alive' if alive else 'gone'} (expected "
                              f"{'alive' if want else 'gone'})", run.evidence())


def expect_events(run, want):
    """{event name: count} in echod's log."""
    for name, count in want.items():
        n = len(_events(run, name))
        run.expect(n == count, f"{n} '{name}' events (expected {count})")


def _conversations(run):
    if run.pcap is None:
        raise ScenarioError("packet expectations need capture = true")
    return cap.conversations(cap.read_segments(run.pcap), run.server.port)


def expect_handshakes(run, want):
    conns = _conversations(run)
    n = sum(c.handshake for c in conns)
    run.expect(n == want, f"{n} handshakes in the pcap (expected {want})",
               "\n".join(c.describe() for c in conns))


def expect_closes(run, want):
    """Connections closed by a FIN from each side."""
    conns = _conversations(run)
    n = sum(c.closed for c in conns)
    run.expect(n == want, f"{n} orderly closes in the pcap (expected {want})",
               "\n".join(c.describe() for c in conns))


def expect_rst_from(run, want):
    """"server", "client", or "none": who sent RSTs (on any connection)."""
    conns = _conversations(run)
    senders = sorted({side for c in conns for side in ("client", "server")
                      if c.rsts_from(side)})
    got = ", ".join(senders) or "none"
    run.expect(got == want, f"RST from {got} (expected {want})",
               "\n".join(c.describe() for c in conns))


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


EXPECTATIONS = {name[7:]: fn for name, fn in globals().items()
                if name.startswith("expect_")}


# --- running ------------------------------------------------------------------

def make_server(spec, host):
    srv = spec.get("server", {})
    if "command" in srv:
        if srv.get("faults") or srv.get("config") is not None:
            raise ScenarioError("faults and config apply to echod only")
        return Server(host, srv["command"], srv.get("port", 9877))
    return Echod(host, args=srv.get("echod", []), faults=srv.get("faults", []),
                 config=srv.get("config"), port=srv.get("port", 9877),
                 model=srv.get("model", "fork"), reap=srv.get("reap", "waitpid"))


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
            state.pcap = workdir / f"{path.stem}.pcap"
            capturer = cap.Capture(host, state.pcap, iface=iface).start()
        state.server = make_server(spec, host)
        try:
            state.server.start()
            for i, step in enumerate(spec["step"], 1):
                try:
                    said = STEPS[step["do"]](state, step)
                except (Failed, WaitTimeout, OSError) as e:
                    state.note(f"  FAIL step {i} {step['do']}: {str(e).splitlines()[0]}")
                    state.failures.append(f"step {i} ({step['do']}): {e}\n{state.evidence()}")
                    break
                state.note(f"  step {i:>2} {step['do']:<22} {said}")
                state.snapshot(f"step {i} {step['do']}")
            else:
                if spec.get("expect") and capturer:
                    capturer.stop()
                for key, want in spec.get("expect", {}).items():
                    EXPECTATIONS[key](state, want)
        finally:
            state.server.terminate(check=False)
            if capturer:
                capturer.stop()
    result.lines, result.failures = state.lines, state.failures
    result.passed = not state.failures
    result.lines.append(f"{'PASS' if result.passed else 'FAIL'}: {path.stem}; "
                        f"artifacts in {workdir}/")
    (workdir / "report.txt").write_text(result.report() + "\n\n" +
                                        "\n\n".join(result.failures) + "\n")
    return result
