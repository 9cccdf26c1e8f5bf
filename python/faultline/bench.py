"""`faultline bench`: every echod model side by side with a minimal C server
of its kind (bench/minimal/), socat fork (PIPE and EXEC:cat) and
openbsd-inetd's internal echo, under one C load client (bench/loadgen.c).

Every server runs on a fresh host of its own (host.py: network and PID
namespaces), the load client on the same host, over its loopback: nothing
touches the machine's network. The rounds are interleaved: each round
starts every server once, in turn (the order reversed every other round),
so that noise on a shared machine hits them alike; the figures are medians
over the rounds with their spread (min to max), and a ratio is the median
of the per-round ratios of two servers measured in the same round.

Per server and round:
  conn/s      connect, echo --msg bytes, close, with 1, 4 and 16 client
              threads (--client-workers), --seconds each; the latency of
              the whole cycle (p50, p99, max) from the client's histogram
  MB/s        echoed bytes per second on 1 and on 64 connections
              (--stream-conns), each keeping --window bytes in flight
  server CPU  utime + stime of the server's process tree from /proc, the
              children it reaped included (cutime, cstime), before and
              after the connection runs (per connection) and the stream
              runs (per GB echoed)
Once per server: syscalls per connection (strace -f -c attached to the
server's processes, --strace-conns connections from one client thread).
Once per server that scales: epoll and poll (echod's and the minimal ones)
to --scale-conns concurrent connections, RLIMIT_NOFILE raised; fork to
--scale-children children, and the zombies left once they are closed. The
client opens them 64 at a time, each echoing a byte, within
--scale-seconds (what is held by then is reported).

The harness itself, once: a host + echod ready as a test meets it (Host()
with the spare host up, then Echod.start() returning at echod's readiness
line), and the same with the host made on demand, --harness-rounds of each
interleaved; with --suite, the wall time of the whole test suite
(`faultline test`) and of `pytest -k zombie` run twice (the second warm).

Nothing here is asserted: the figures go to a table (ratios against the
minimal server of each kind), bench.json and bench.png in the output
folder. validate() checks that a report is whole and well-formed; the
test suite runs --quick and checks that, never a timing.
"""

import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import paths, procs
from .host import Host
from .server import Server
from .waiting import WaitTimeout, wait_until

MODELS = ("fork", "thread", "prefork", "poll", "epoll")
PORT = 9877
# openbsd-inetd's internal echo listens on the echo service's port.
INETD_PORT = 7
INETD_CONF = "echo stream tcp nowait root internal\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FD_SLACK = 256  # descriptors beyond the connections: the server's own


class BenchError(RuntimeError):
    """A server or the load client failed: one line, with what it said."""


@dataclass
class Settings:
    rounds: int = 5
    seconds: float = 0.5
    client_workers: tuple = (1, 4, 16)
    stream_conns: tuple = (1, 64)
    msg: int = 64
    window: int = 256 * 1024
    prefork_workers: int = 8
    scale_conns: int = 10_000
    scale_children: int = 1_000
    scale_in_flight: int = 64     # connections the client opens at once
    scale_seconds: float = 120.0  # to open them; as long again to hold them
    strace_conns: int = 200
    harness_rounds: int = 50
    suite: bool = False
    events: bool = False
    only: tuple = ()
    quick: bool = False

    def describe(self):
        return (f"{self.rounds} interleaved round(s), {self.seconds:g} s per run, "
                f"client workers {'/'.join(map(str, self.client_workers))}, "
                f"streams on {'/'.join(map(str, self.stream_conns))} connection(s)")


# What --quick changes: a smoke run that exercises every step, seconds long.
QUICK = dict(rounds=1, seconds=0.05, scale_conns=200, scale_children=20,
             strace_conns=10, harness_rounds=3)


@dataclass(frozen=True)
class Subject:
    name: str      # echod-fork, min-fork, socat-pipe, inetd-echo
    family: str    # echod, minimal, peer
    kind: str      # the model whose minimal server it is compared with
    argv: tuple
    port: int = PORT
    program: str = ""   # what must be installed for it to run
    config: str = ""    # a file it reads (its path replaces {config} in argv)


def bench_binary(name):
    return paths.BUILD_DIR / "bench" / name


def subjects(settings):
    echod = str(paths.binary("echod"))
    model_args = {"prefork": ("--workers", str(settings.prefork_workers)),
                  "poll": ("--sigpipe", "ignore"), "epoll": ("--sigpipe", "ignore")}
    found = []
    for model in MODELS:
        found.append(Subject(f"echod-{model}", "echod", model,
                             (echod, "--port", str(PORT), "--model", model,
                              "--reap", "waitpid", *model_args.get(model, ()))))
    if settings.events:
        # The same servers with their event log on: what --events costs.
        for model in MODELS:
            found.append(Subject(f"echod-{model}+events", "echod", model,
                                 (echod, "--port", str(PORT), "--model", model,
                                  "--reap", "waitpid", *model_args.get(model, ()),
                                  "--events", "{events}")))
    for model in MODELS:
        extra = ("--workers", str(settings.prefork_workers)) if model == "prefork" else ()
        found.append(Subject(f"min-{model}", "minimal", model,
                             (str(bench_binary(f"min_{model}")), "--port", str(PORT),
                              *extra)))
    listen = f"TCP-LISTEN:{PORT},fork,reuseaddr,backlog=1024"
    found += [
        Subject("socat-pipe", "peer", "fork", ("socat", listen, "PIPE"), program="socat"),
        Subject("socat-cat", "peer", "fork", ("socat", listen, "EXEC:cat"),
                program="socat"),
        Subject("inetd-echo", "peer", "fork",
                ("/usr/sbin/inetd", "-i", "-q", "1024", "-R", "1000000", "{config}"),
                port=INETD_PORT, program="/usr/sbin/inetd", config=INETD_CONF),
    ]
    if settings.only:
        unknown = set(settings.only) - {s.name for s in found}
        if unknown:
            raise ValueError(f"--only: no server named {', '.join(sorted(unknown))} "
                             f"(the servers: {', '.join(s.name for s in found)})")
        found = [s for s in found if s.name in settings.only]
    return found


def missing_program(subject):
    if subject.program and shutil.which(subject.program) is None:
        return subject.program
    return None


# --- one server on its host ---------------------------------------------------

def start(subject, host, nofile=None):
    """The subject's server on host, ready (listening, asleep in its wait)."""
    argv = list(subject.argv)
    if subject.config:
        config = host.workdir / f"{subject.name}.conf"
        config.write_text(subject.config)
        argv = [str(config) if a == "{config}" else a for a in argv]
    events = host.workdir / f"{subject.name}.events.jsonl"
    argv = [str(events) if a == "{events}" else a for a in argv]
    if nofile:
        argv = ["prlimit", f"--nofile={nofile[0]}:{nofile[1]}", "--", *argv]
    server = Server(host, argv, subject.port, name=subject.name)
    try:
        return server.start(timeout=15.0)
    except (AssertionError, WaitTimeout) as e:
        said = server.proc.stderr().strip().splitlines()[-3:] if server.proc else []
        raise BenchError(f"{subject.name} did not come up: {str(e).splitlines()[0]}"
                         + (f"; it said: {' | '.join(said)}" if said else "")) from None


def loadgen(host, mode, port, timeout, **options):
    """One loadgen run on host; its JSON."""
    argv = [bench_binary("loadgen"), mode, "--port", port]
    for key, value in options.items():
        argv += [f"--{key}", value]
    code, out, err = host.run(argv, timeout=timeout, name=f"loadgen-{mode}")
    lines = out.strip().splitlines()
    if code != 0 or not lines:
        raise BenchError(f"loadgen {mode} on {host.name} exited {code}: "
                         f"{err.strip() or out.strip() or 'nothing said'}")
    return json.loads(lines[-1])


def _stat(pid):
    """(ppid, state, cpu ticks with reaped children's) of a pid, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is stat's 3rd field (state): utime..cstime are 14th..17th
    return int(fields[1]), fields[0], sum(int(x) for x in fields[11:15])


def process_tree(host, root):
    """{pid: (ppid, state, ticks)} of root and its descendants on host."""
    rows = {pid: row for pid in host.pids() if (row := _stat(pid)) is not None}
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in rows and pid not in tree:
            tree[pid] = rows[pid]
            frontier += [p for p, r in rows.items() if r[0] == pid]
    return tree


def tree_cpu_seconds(host, root):
    """CPU the server's tree has used: the live processes' own, plus what
    the children each has reaped used (a fork server's finished children)."""
    return sum(r[2] for r in process_tree(host, root).values()) / CLK_TCK


def children_of(host, root):
    """(live children, zombie children) of root."""
    tree = process_tree(host, root)
    kids = [r for p, r in tree.items() if r[0] == root]
    return (sum(1 for r in kids if r[1] != "Z"), sum(1 for r in kids if r[1] == "Z"))


def measure_round(subject, host, server, settings, progress):
    """One round of one server: its metrics, flat {name: value}."""
    out, errors = {}, 0
    timeout = settings.seconds + 60
    cpu_before = tree_cpu_seconds(host, server.pid)
    conns = 0
    for workers in settings.client_workers:
        progress.step(f"{subject.name}: connect-echo-close, {workers} client worker(s)")
        r = loadgen(host, "cycle", subject.port, timeout, workers=workers,
                    seconds=settings.seconds, msg=settings.msg)
        out[f"conn_per_s_w{workers}"] = r["conn_per_s"]
        for q in ("p50", "p99", "max"):
            out[f"{q}_us_w{workers}"] = r["latency_us"][q]
        conns += r["connections"]
        errors += sum(v for k, v in r["errors"].items() if k != "first")
    cpu_conns = tree_cpu_seconds(host, server.pid) - cpu_before
    out["cpu_us_per_conn"] = cpu_conns / conns * 1e6 if conns else None
    echoed = 0
    cpu_before = tree_cpu_seconds(host, server.pid)
    for n in settings.stream_conns:
        progress.step(f"{subject.name}: echo stream on {n} connection(s)")
        r = loadgen(host, "stream", subject.port, timeout, conns=n,
                    seconds=settings.seconds, window=settings.window)
        out[f"mb_per_s_c{n}"] = r["mb_per_s"]
        echoed += r["total_bytes"]
        errors += sum(v for k, v in r["errors"].items() if k != "first")
    cpu_stream = tree_cpu_seconds(host, server.pid) - cpu_before
    out["cpu_s_per_gb"] = cpu_stream / (echoed / 1e9) if echoed else None
    out["client_errors"] = errors
    return out


# --- once per server: syscalls, scale ----------------------------------------------

def parse_strace_summary(text):
    """{syscall: calls} from strace -c's table (the total line left out)."""
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0].replace(".", "", 1).isdigit():
            continue
        if parts[-1] == "total":
            continue
        calls[parts[-1]] = int(parts[3])
    return calls


def count_syscalls(subject, workdir, settings, progress):
    """The server's system calls per connection: strace -f -c attached to
    each of its processes (on the host, as the host's root), one client
    thread making strace_conns connections."""
    progress.step(f"{subject.name}: syscalls per connection (strace)")
    with Host(f"strace-{subject.name}", workdir) as host:
        server = start(subject, host)
        tree = sorted(process_tree(host, server.pid))
        nspids = [procs.info(p).nspid for p in tree]
        summary = host.workdir / "strace.txt"
        argv = ["strace", "-f", "-c", "-o", summary]
        for nspid in nspids:
            argv += ["-p", nspid]
        tracer = host.spawn(argv, name="strace")
        wait_until(lambda: tracer.stderr().count(" attached") >= len(nspids)
                   or not tracer.alive(), 15.0,
                   f"strace to attach to {subject.name}'s {len(nspids)} process(es)",
                   seen=tracer.stderr)
        if not tracer.alive():
            raise BenchError(f"strace on {subject.name} exited: {tracer.stderr().strip()}")
        r = loadgen(host, "cycle", subject.port, 120, workers=1, seconds=60,
                    count=settings.strace_conns, msg=settings.msg)
        # Until the server is asleep again: the last connection's close and
        # the reaping of its child are part of its cost.
        wait_until(lambda: all(_stat(p) is None or _stat(p)[1] in "SZ"
                               for p in process_tree(host, server.pid)), 10.0,
                   f"{subject.name} to go idle")
        tracer.send_signal(signal.SIGINT)
        tracer.wait(15.0)
        calls = parse_strace_summary(summary.read_text())
    n = r["connections"]
    if n == 0:
        raise BenchError(f"strace run on {subject.name}: no connection was served")
    per_conn = {k: round(v / n, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
    return {"connections": n, "per_conn": round(sum(calls.values()) / n, 2),
            "by_syscall": {k: v for k, v in per_conn.items() if v >= 0.05}}


def _nofile(conns):
    """(soft, hard) RLIMIT_NOFILE for a server that holds conns connections:
    the hard limit raised only where that is allowed (root, no user
    namespace of the host's own)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = conns + FD_SLACK
    if os.geteuid() == 0:
        return want, max(want, hard)
    return min(want, hard), hard


def scale(subject, workdir, settings, progress):
    """Hold many connections open at once. Event loops: scale_conns, and
    the server's descriptors at the peak. fork: scale_children, each a
    child; then all closed, the children it has left, and its zombies."""
    forks = subject.kind == "fork"
    wanted = settings.scale_children if forks else settings.scale_conns
    progress.step(f"{subject.name}: {wanted} concurrent connections")
    with Host(f"scale-{subject.name}", workdir) as host:
        server = start(subject, host, nofile=_nofile(wanted))
        holder = host.spawn([bench_binary("loadgen"), "hold", "--port", subject.port,
                             "--conns", wanted, "--workers", settings.scale_in_flight,
                             "--seconds", settings.scale_seconds],
                            name="loadgen-hold", stdin=subprocess.PIPE)
        holder.wait_for_output("\"held\"", timeout=settings.scale_seconds + 30)
        held = json.loads(holder.stdout().splitlines()[0])
        out = {"wanted": wanted, "held": held["held"],
               "open_seconds": round(held["open_seconds"], 3),
               "client_error": held["errors"]["first"]}
        if forks:
            out["children_at_peak"] = children_of(host, server.pid)[0]
        else:
            out["server_fds_at_peak"] = len(os.listdir(f"/proc/{server.pid}/fd"))
        started = time.monotonic()
        holder.stdin.close()
        holder.wait(120)
        if forks:
            try:
                wait_until(lambda: children_of(host, server.pid) == (0, 0), 60.0,
                           f"{subject.name}'s children to exit and be reaped")
            except WaitTimeout:
                pass  # what is left is the finding, reported below
            out["children_after"], out["zombies_after"] = children_of(host, server.pid)
            out["reap_seconds"] = round(time.monotonic() - started, 3)
        if not server.proc.alive():
            out["server_died"] = server.proc.returncode
    return out


# --- the run ------------------------------------------------------------------------

class Progress:
    """One line on stderr, rewritten in place on a terminal; elsewhere a
    line per server and round."""

    def __init__(self, total, stream=sys.stderr):
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.head = ""
        self.last_head = None

    def round(self, text):
        self.head = text

    def step(self, what):
        self.done += 1
        line = (f"bench [{100 * self.done // self.total:3d}%] "
                f"{time.monotonic() - self.started:5.0f}s  {self.head}: {what}")
        if self.tty:
            self.stream.write("\r" + line[:118].ljust(118))
        elif (self.head, what.partition(":")[0]) != self.last_head:
            self.stream.write(line + "\n")
            self.last_head = (self.head, what.partition(":")[0])
        self.stream.flush()

    def end(self):
        if self.tty:
            self.stream.write("\r" + " " * 118 + "\r")
            self.stream.flush()


def run(settings, workdir, stream=sys.stderr):
    """Every measurement; the report (a dict, as bench.json holds it)."""
    chosen = subjects(settings)
    skipped = {s.name: f"{missing_program(s)} is not installed"
               for s in chosen if missing_program(s)}
    chosen = [s for s in chosen if s.name not in skipped]
    scalers = [s for s in chosen
               if s.family in ("echod", "minimal") and s.kind in ("fork", "poll", "epoll")]
    # Steps: per server and round its start and each load run; then once
    # each, strace and the scale runs.
    per_round = 1 + len(settings.client_workers) + len(settings.stream_conns)
    progress = Progress(settings.rounds * len(chosen) * per_round + len(chosen)
                        + len(scalers) + 1 + 3 * settings.suite, stream)
    rounds = {s.name: [] for s in chosen}
    for r in range(settings.rounds):
        order = chosen if r % 2 == 0 else list(reversed(chosen))
        progress.round(f"round {r + 1}/{settings.rounds}")
        for subject in order:
            with Host(f"bench-{subject.name}", workdir / f"r{r}-{subject.name}") as host:
                progress.step(f"{subject.name}: start")
                server = start(subject, host)
                rounds[subject.name].append(
                    measure_round(subject, host, server, settings, progress))
    progress.round("once each")
    syscalls = {s.name: count_syscalls(s, workdir / f"strace-{s.name}", settings,
                                       progress) for s in chosen}
    scaled = {s.name: scale(s, workdir / f"scale-{s.name}", settings, progress)
              for s in scalers}
    harness = harness_cost(workdir / "harness", settings, progress)
    if settings.suite:
        harness.update(suite_wall_times(progress))
    progress.end()
    return build_report(settings, chosen, rounds, syscalls, scaled, skipped, harness)


# --- the harness's own cost ------------------------------------------------------------

def host_and_echod_ms(workdir, spare):
    """One host and echod on it, up then down: (ms to Host(), ms from there
    to Echod.start() returning), as a test's fixtures meet them."""
    from .echod import Echod
    started = time.perf_counter()
    with Host("bench-harness", workdir, spare=spare) as host:
        made = time.perf_counter()
        server = Echod(host)
        server.start()
        ready = time.perf_counter()
        server.terminate()
    return (made - started) * 1000, (ready - made) * 1000


def spare_host_ready():
    """Until the host made ahead is up: what a test's own run leaves it."""
    from . import host as hosts
    hosts._spare.want()
    wait_until(hosts._spare.ready, 10.0, "the spare host to come up")


def harness_cost(workdir, settings, progress):
    """Host + echod ready, in ms: with the spare host (as every test but a
    worker's first meets it) and with the host made on demand."""
    progress.step(f"harness: host + echod ready, {settings.harness_rounds} rounds")
    spare, on_demand = [], []
    for _ in range(settings.harness_rounds):
        spare_host_ready()
        spare.append(host_and_echod_ms(workdir, True))
        on_demand.append(host_and_echod_ms(workdir, False))
    out = {}
    for key, pairs in (("spare", spare), ("on_demand", on_demand)):
        out[f"ready_ms_{key}"] = spread([h + e for h, e in pairs])
        out[f"host_ms_{key}"] = spread([h for h, _ in pairs])
    return out


def time_pytest(argv, progress, what):
    """Wall seconds of one test run (argv after `python3 -m`), its exit
    status, and pytest's summary line."""
    progress.step(what)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", *argv], cwd=paths.REPO,
                         capture_output=True, text=True)
    took = time.monotonic() - started
    said = [line for line in run.stdout.splitlines()
            if re.search(r" in [\d.]+s\b", line)]
    return {"argv": " ".join(argv), "seconds": round(took, 2), "exit": run.returncode,
            "summary": said[-1].strip("= ") if said else run.stderr.strip()[-200:]}


def suite_wall_times(progress):
    """The whole suite once, as `faultline test` runs it (unit tests, then
    pytest on two workers), and `pytest -k zombie` twice, the second warm."""
    out = {"suite": time_pytest(["faultline", "test"], progress, "suite: faultline test")}
    zombie = ["pytest", "--no-build", "-q", "-n", "2", "-k", "zombie"]
    time_pytest(zombie, progress, "suite: pytest -k zombie (cold)")
    out["k_zombie_warm"] = time_pytest(zombie, progress, "suite: pytest -k zombie (warm)")
    return out


# --- the report ---------------------------------------------------------------------

def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def round_ratios(a_rounds, b_rounds, metric):
    """a's metric / b's, round by round (both from the same round)."""
    return [a[metric] / b[metric] for a, b in zip(a_rounds, b_rounds)
            if a.get(metric) is not None and b.get(metric)]


def paired_ratio(a_rounds, b_rounds, metric):
    """The median over rounds of a's metric / b's, both from the same round."""
    ratios = round_ratios(a_rounds, b_rounds, metric)
    return round(statistics.median(ratios), 3) if ratios else None


def ratio_range(a_rounds, b_rounds, metric):
    """[lowest, highest] of the per-round ratios, or None."""
    ratios = round_ratios(a_rounds, b_rounds, metric)
    return [round(min(ratios), 3), round(max(ratios), 3)] if ratios else None


def ratio_metrics(settings):
    return ([f"conn_per_s_w{w}" for w in settings.client_workers]
            + [f"mb_per_s_c{c}" for c in settings.stream_conns]
            + [f"p99_us_w{settings.client_workers[0]}", "cpu_us_per_conn",
               "cpu_s_per_gb"])


def machine():
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "machine": platform.machine(),
            "load_average_at_end": [round(x, 2) for x in load],
            "python": platform.python_version()}


def build_report(settings, chosen, rounds, syscalls, scaled, skipped, harness):
    report = {
        "settings": asdict(settings),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "skipped": skipped,
        "subjects": {},
        "ratios": {},
        "peers": {},
        "scale": scaled,
        "harness": harness,
    }
    for s in chosen:
        metrics = sorted({k for rnd in rounds[s.name] for k in rnd})
        report["subjects"][s.name] = {
            "family": s.family, "kind": s.kind,
            "argv": [Path(a).name if "/" in a else a for a in s.argv],
            "rounds": rounds[s.name],
            "summary": {m: spread([rnd.get(m) for rnd in rounds[s.name]]) for m in metrics},
            "syscalls": syscalls.get(s.name),
        }
    names = {s.name for s in chosen}
    for model in MODELS:
        mine, ref = f"echod-{model}", f"min-{model}"
        if mine in names and ref in names:
            ratios = {m: paired_ratio(rounds[mine], rounds[ref], m)
                      for m in ratio_metrics(settings)}
            ratios["range"] = {m: ratio_range(rounds[mine], rounds[ref], m)
                               for m in ratio_metrics(settings)}
            ours, theirs = syscalls[mine]["per_conn"], syscalls[ref]["per_conn"]
            ratios["syscalls_per_conn"] = [ours, theirs]
            report["ratios"][mine] = {"against": ref, **ratios}
    report["events"] = {}
    for model in MODELS:
        off, on = f"echod-{model}", f"echod-{model}+events"
        if off in names and on in names:
            report["events"][model] = {
                m: paired_ratio(rounds[on], rounds[off], m)
                for m in ("conn_per_s_w1", f"conn_per_s_w{settings.client_workers[-1]}",
                          "cpu_us_per_conn")}
            report["events"][model]["syscalls_per_conn"] = [syscalls[on]["per_conn"],
                                                            syscalls[off]["per_conn"]]
    for mine in ("echod-fork", "min-fork"):
        for peer in ("socat-pipe", "socat-cat", "inetd-echo"):
            if mine in names and peer in names:
                report["peers"][f"{mine}/{peer}"] = {
                    f"conn_per_s_w{w}": paired_ratio(rounds[mine], rounds[peer],
                                                     f"conn_per_s_w{w}")
                    for w in settings.client_workers}
    return report


def validate(report):
    """What is missing or malformed in a report (empty when it is whole):
    every subject has every metric of every round as a number, every echod
    model a ratio against its minimal server, every scaler a count."""
    problems = []
    settings = report.get("settings", {})
    rounds = settings.get("rounds", 0)
    workers = settings.get("client_workers", ())
    conns = settings.get("stream_conns", ())
    wanted = ([f"conn_per_s_w{w}" for w in workers]
              + [f"{q}_us_w{w}" for w in workers for q in ("p50", "p99", "max")]
              + [f"mb_per_s_c{c}" for c in conns] + ["cpu_us_per_conn", "cpu_s_per_gb"])
    subjects_ = report.get("subjects") or {}
    if not subjects_:
        problems.append("no subject was measured")
    for name, s in subjects_.items():
        if len(s.get("rounds", [])) != rounds:
            problems.append(f"{name}: {len(s.get('rounds', []))} round(s), not {rounds}")
        for i, rnd in enumerate(s.get("rounds", [])):
            for m in wanted:
                v = rnd.get(m)
                if not isinstance(v, (int, float)) or v < 0:
                    problems.append(f"{name} round {i + 1}: {m} is {v!r}")
            if rnd.get("conn_per_s_w1", 0) == 0 and "conn_per_s_w1" in wanted:
                problems.append(f"{name} round {i + 1}: no connection was echoed")
        sc = s.get("syscalls") or {}
        if not isinstance(sc.get("per_conn"), (int, float)) or sc.get("per_conn", 0) <= 0:
            problems.append(f"{name}: no syscall count ({sc!r})")
    for model in MODELS:
        if f"echod-{model}+events" in subjects_ and f"echod-{model}" in subjects_:
            if not isinstance((report.get("events") or {}).get(model, {}).get(
                    "cpu_us_per_conn"), (int, float)):
                problems.append(f"echod-{model}+events: no ratio against echod-{model}")
    for model in MODELS:
        mine = f"echod-{model}"
        if mine in subjects_ and f"min-{model}" in subjects_:
            r = report.get("ratios", {}).get(mine, {})
            w = f"conn_per_s_w{workers[0]}" if workers else None
            if not isinstance(r.get(w), (int, float)):
                problems.append(f"{mine}: no conn/s ratio against min-{model}")
    for name, sc in (report.get("scale") or {}).items():
        if sc.get("held") != sc.get("wanted"):
            problems.append(f"scale {name}: held {sc.get('held')} of {sc.get('wanted')} "
                            f"({sc.get('client_error') or 'no error said'})")
        if "zombies_after" in sc and sc["zombies_after"] != 0:
            problems.append(f"scale {name}: {sc['zombies_after']} zombie(s) after")
    harness = report.get("harness") or {}
    for key in ("ready_ms_spare", "ready_ms_on_demand", "host_ms_spare",
                "host_ms_on_demand"):
        if not isinstance((harness.get(key) or {}).get("median"), (int, float)):
            problems.append(f"harness: no {key.replace('_', ' ')} figure")
    for key in ("suite", "k_zombie_warm"):
        if settings.get("suite") and (harness.get(key) or {}).get("exit") != 0:
            problems.append(f"harness: {key.replace('_', ' ')} did not pass: "
                            f"{(harness.get(key) or {}).get('summary')}")
    return problems


def _num(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _cell(summary, metric, digits=0, spread_too=False):
    s = summary.get(metric)
    if not s:
        return "-"
    text = _num(s["median"], digits)
    if spread_too and s["median"] and s["max"] != s["min"]:
        text += f" ±{50 * (s['max'] - s['min']) / s['median']:.0f}%"
    return text


def render_tables(report):
    """The report as Markdown tables."""
    st = report["settings"]
    w, c = st["client_workers"], st["stream_conns"]
    lines = []
    head = (["server"] + [f"conn/s ×{x}" for x in w]
            + [f"p50 / p99 / max µs (×{w[0]})"] + [f"MB/s ×{x}" for x in c]
            + ["CPU µs/conn", "CPU s/GB", "syscalls/conn"])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in report["subjects"].items():
        sm = s["summary"]
        lat = " / ".join(_cell(sm, f"{q}_us_w{w[0]}") for q in ("p50", "p99", "max"))
        sc = s.get("syscalls") or {}
        row = ([name] + [_cell(sm, f"conn_per_s_w{x}", spread_too=True) for x in w]
               + [lat] + [_cell(sm, f"mb_per_s_c{x}", spread_too=True) for x in c]
               + [_cell(sm, "cpu_us_per_conn", 1), _cell(sm, "cpu_s_per_gb", 2),
                  _num(sc.get("per_conn"), 1)])
        lines.append("| " + " | ".join(row) + " |")
    if report["ratios"]:
        lines += ["", "echod against the minimal server of its kind: the median of the "
                  "per-round ratios (above 1 is more for echod), and their range over "
                  "the rounds:", ""]
        head = (["echod model"] + [f"conn/s ×{x}" for x in w] + [f"MB/s ×{x}" for x in c]
                + [f"p99 ×{w[0]}", "CPU/conn", "CPU/GB", "syscalls/conn"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, r in report["ratios"].items():
            ours, theirs = r["syscalls_per_conn"]
            def ratio(metric):
                span = r.get("range", {}).get(metric)
                text = _num(r.get(metric), 2)
                if span and span[0] != span[1]:
                    text += f" ({span[0]:.2f}–{span[1]:.2f})"
                return text
            row = ([name.removeprefix("echod-")]
                   + [ratio(f"conn_per_s_w{x}") for x in w]
                   + [ratio(f"mb_per_s_c{x}") for x in c]
                   + [ratio(f"p99_us_w{w[0]}"), ratio("cpu_us_per_conn"),
                      ratio("cpu_s_per_gb"), f"{ours:g} vs {theirs:g}"])
            lines.append("| " + " | ".join(row) + " |")
    if report["peers"]:
        lines += ["", "fork servers against socat fork and inetd (conn/s, median of "
                  "per-round ratios):", ""]
        head = ["pair"] + [f"×{x} workers" for x in w]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for pair, r in report["peers"].items():
            lines.append("| " + " | ".join([pair.replace("/", " vs ")]
                                           + [_num(r[f"conn_per_s_w{x}"], 2) for x in w])
                         + " |")
    traced = {n: s["syscalls"] for n, s in report["subjects"].items() if s.get("syscalls")}
    if traced:
        lines += ["", "System calls per connection (strace -f -c, once each; the most "
                  "frequent):", ""]
        lines += ["| server | per connection | the most frequent |", "|---|---|---|"]
        for name, sc in traced.items():
            top = ", ".join(f"{k} {v:g}" for k, v in list(sc["by_syscall"].items())[:8])
            lines.append(f"| {name} | {sc['per_conn']:g} | {top} |")
    if report["scale"]:
        lines += ["", "Concurrency scale (once each):", ""]
        head = ["server", "held / wanted", "open s", "at peak", "after close"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, sc in report["scale"].items():
            if "children_at_peak" in sc:
                peak = f"{sc['children_at_peak']:,} children"
                after = (f"{sc['children_after']} children, {sc['zombies_after']} zombies "
                         f"({sc['reap_seconds']:g} s)")
            else:
                peak, after = f"{sc['server_fds_at_peak']:,} fds", ""
            if "server_died" in sc:
                after += f" server died ({sc['server_died']})"
            lines.append(f"| {name} | {sc['held']:,} / {sc['wanted']:,} | "
                         f"{sc['open_seconds']:g} | {peak} | {after} |")
    if report.get("events"):
        last = st["client_workers"][-1]
        lines += ["", "What echod's event log costs: echod with `--events FILE` over echod "
                  "without (median of per-round ratios):", ""]
        lines += [f"| model | conn/s ×{w[0]} | conn/s ×{last} | CPU/conn | syscalls/conn |",
                  "|---|---|---|---|---|"]
        for model, r in report["events"].items():
            on, off = r["syscalls_per_conn"]
            lines.append(f"| {model} | {_num(r['conn_per_s_w' + str(w[0])], 2)} | "
                         f"{_num(r[f'conn_per_s_w{last}'], 2)} | "
                         f"{_num(r['cpu_us_per_conn'], 2)} | {on:g} vs {off:g} |")
    harness = report.get("harness") or {}
    if harness:
        lines += ["", "The harness (ms, medians of its rounds, min to max):", ""]
        lines += ["| | host + echod ready | of which Host() |", "|---|---|---|"]
        for key, what in (("spare", "spare host (a test's usual case)"),
                          ("on_demand", "host made on demand")):
            ready, host = harness.get(f"ready_ms_{key}"), harness.get(f"host_ms_{key}")
            if ready and host:
                lines.append(f"| {what} | {ready['median']:.2f} ({ready['min']:.2f}–"
                             f"{ready['max']:.2f}) | {host['median']:.2f} |")
        for key, what in (("suite", "the whole suite"),
                          ("k_zombie_warm", "pytest -k zombie, warm")):
            if key in harness:
                run = harness[key]
                lines.append(f"\n{what}: {run['seconds']:g} s wall ({run['summary']})")
    if report["skipped"]:
        lines += ["", "Not run: " + "; ".join(f"{k} ({v})"
                                               for k, v in report["skipped"].items())]
    return "\n".join(lines) + "\n"


def chart(report, path):
    """bench.png: conn/s, MB/s and CPU per connection of every server,
    medians with min-max bars. Needs matplotlib (python3-matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = report["settings"]
    names = list(report["subjects"])
    # (title, metrics, their labels, log scale: fork and thread servers
    # differ by orders of magnitude)
    panels = [("connections per second", [f"conn_per_s_w{x}" for x in st["client_workers"]],
               [f"×{x} workers" for x in st["client_workers"]], True),
              ("echo MB/s", [f"mb_per_s_c{x}" for x in st["stream_conns"]],
               [f"{x} conn(s)" for x in st["stream_conns"]], False),
              ("server CPU µs per connection", ["cpu_us_per_conn"], ["CPU µs/conn"], True)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, len(names) * 0.8), 11))
    for ax, (title, metrics, labels, log) in zip(axes, panels):
        width = 0.8 / len(metrics)
        for i, (m, label) in enumerate(zip(metrics, labels)):
            med, lo, hi = [], [], []
            for n in names:
                s = report["subjects"][n]["summary"].get(m) or {"median": 0, "min": 0,
                                                               "max": 0}
                med.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
            xs = [x + (i - (len(metrics) - 1) / 2) * width for x in range(len(names))]
            ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=label)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(f"faultline bench: {st['rounds']} round(s), medians, bars min-max")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(report, out_dir):
    """bench.json, bench.md and bench.png (the chart left out, and said so,
    without matplotlib)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    table = render_tables(report)
    (out_dir / "bench.md").write_text(table)
    try:
        chart(report, out_dir / "bench.png")
        png = out_dir / "bench.png"
    except ImportError:
        png = None
    return table, png
