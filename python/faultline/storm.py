"""faultline storm: a seeded random fault plan per model, a bounded C client
population (bench/stormc.c) against echod on a fresh host, and the
invariants judged at the end (server alive also while it runs).

Everything random comes from the seed: the plan of each model from
random.Random(f"storm:{seed}:{model}"), each connection's length and
action from stormc's own stream of the same seed. A run is replayed by
the command line it prints. docs/STORM.md says what each invariant means.
"""

import json
import random
import sys
import time
from dataclasses import dataclass, field

from . import paths
from .echod import Echod
from .host import Host
from .waiting import WaitTimeout, wait_until

MODELS = ("fork", "thread", "prefork", "poll", "epoll")
# Actions that end or damage a session: a connection whose echo came back
# short, reset or late must have one of these logged for its conn.
CUTTING = {"rst", "close", "shutdown_wr", "drop", "fork_fail", "kill", "abort", "exit"}
# Process-level actions that end only the serving process in these models
# (elsewhere they end the whole server, which is not a storm's question).
PER_SESSION_PROCESS = ("fork", "prefork")
PROBS = ("0.01", "0.02", "0.05", "0.1")
SESSION_POINTS = ("before_read", "after_read", "before_write", "after_write")


def stormc_path():
    return paths.BUILD_DIR / "bench" / "stormc"


def plan(seed, model, connections):
    """The fault rules (echod --fault specs) of one model's storm."""
    rng = random.Random(f"storm:{seed}:{model}")
    rules = []
    for _ in range(rng.randint(1, 5)):
        kinds = ["rst", "close", "shutdown_wr", "short", "delay", "drop", "fork_fail"]
        if model in PER_SESSION_PROCESS:
            kinds += ["kill", "exit"]
        kind = rng.choice(kinds)
        if kind == "fork_fail":
            action, point = "fork_fail", "accept"
        elif kind == "short":
            action, point = f"short={rng.choice((1, 7, 64, 512))}", "before_write"
        elif kind == "drop":
            action, point = "drop", "after_read"
        elif kind == "delay":
            action, point = f"delay={rng.choice((1, 2, 5))}ms", rng.choice(SESSION_POINTS)
        elif kind == "exit":
            action, point = f"exit={rng.randint(0, 3)}", rng.choice(SESSION_POINTS)
        else:
            action, point = kind, rng.choice(SESSION_POINTS + ("before_close",))
        if rng.random() < 0.3:
            where = f"conn={rng.randint(1, connections)}"
        else:
            where = f"prob={rng.choice(PROBS)},seed={rng.randint(0, 2**32)}"
        rules.append(f"{action}@{point},{where}")
    return rules


@dataclass
class ModelRun:
    model: str
    rules: list
    echod_args: list
    client: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)     # invariant -> what was seen
    counts: dict = field(default_factory=dict)
    workdir: object = None

    @property
    def passed(self):
        return not self.failed


def _explained(events):
    """(conn numbers of each client port, conns with a cutting fault, conns
    with a drop fault) from echod's event log."""
    by_port = {}
    for e in events:
        if e.get("event") == "accept" and "peer" in e:
            port = int(e["peer"].rsplit(":", 1)[1])
            by_port.setdefault(port, []).append(e["conn"])
    cut = {e["conn"] for e in events
           if e.get("event") == "fault" and e.get("action") in CUTTING}
    dropped = {e["conn"] for e in events
               if e.get("event") == "fault" and e.get("action") == "drop"}
    return by_port, cut, dropped


def judge_clients(run, events):
    """Corrupted bytes and cut connections that no logged fault explains."""
    by_port, cut, dropped = _explained(events)
    unexplained, corrupted, explained, unstarted = [], 0, 0, 0
    seen_port = {}
    for port, length, sent, received, outcome, mismatch, bad, action in run.client["conn"]:
        if outcome in ("unstarted", "unfinished"):  # --duration ran out first:
            unstarted += 1                            # nothing to judge
            continue
        # A port reused within the run: its Nth use is its Nth accept.
        nth = seen_port.get(port, 0)
        seen_port[port] = nth + 1
        conns = by_port.get(port, [])
        conn = conns[nth] if nth < len(conns) else None
        if bad and conn not in dropped:
            corrupted += bad
        if outcome in ("ok", "client_rst"):
            continue
        if conn in cut:
            explained += 1
        else:
            unexplained.append(f"port {port} conn {conn}: {outcome}, {received}/{length} "
                               f"bytes back")
    run.counts.update(cut_explained=explained, unexplained=len(unexplained),
                      corrupted=corrupted)
    if unstarted:
        run.failed["client"] = (f"{unstarted} connection(s) not started or not "
                                f"finished within --duration")
    if corrupted:
        run.failed["corrupted"] = f"{corrupted} bytes differ from what was sent"
    if unexplained:
        more = f" and {len(unexplained) - 5} more" if len(unexplained) > 5 else ""
        run.failed["unexplained_cut"] = "; ".join(unexplained[:5]) + more


def run_model(model, seed, connections, duration, workdir, concurrency=64, max_len=4096,
              rst_percent=5, echod_args=(), rules=None, progress=None):
    """One model's storm on a fresh host; returns its ModelRun."""
    rules = plan(seed, model, connections) if rules is None else list(rules)
    # SIGPIPE ignored: a client's reset must cost the session, never a
    # thread or event-loop server its life.
    args = ["--sigpipe", "ignore", *echod_args]
    run = ModelRun(model, rules, list(echod_args), workdir=workdir)
    with Host(f"storm-{model}", workdir) as host:
        server = Echod(host, model=model, args=args, faults=rules, drain_ms=500)
        try:
            server.start()
        except (WaitTimeout, AssertionError) as e:  # no readiness line; exited first
            run.failed["server_alive"] = f"echod did not start: {e}"
            server.terminate(check=False)
            return run
        base_threads = server.thread_count()
        client = host.spawn([stormc_path(), "--port", server.port, "--conns", connections,
                             "--concurrency", concurrency, "--seed", seed,
                             "--max-len", max_len, "--rst-percent", rst_percent,
                             "--seconds", duration, "--idle-timeout", 5],
                            name=f"stormc-{model}")
        deadline = time.monotonic() + duration + 15
        try:
            while client.alive() and time.monotonic() < deadline:
                if not server.alive():
                    run.failed["server_alive"] = "echod died during the storm"
                    break
                if progress:
                    lines = client.stderr().strip().splitlines()
                    progress(model, lines[-1].removeprefix("stormc: ") if lines
                             else "starting")
                time.sleep(0.5)  # the progress line's pace, not a synchronization
            client.wait(timeout=max(1.0, deadline - time.monotonic()))
            run.client = json.loads(client.stdout())
        except (WaitTimeout, json.JSONDecodeError, OSError) as e:
            run.failed["client"] = f"stormc: {e}; stderr: {client.stderr()[-300:]}"
            if client.alive():
                client.send_signal(9)
        if run.client:
            judge_clients(run, server.events())
        if server.alive():
            found, how = server.settle()
            for name, (said, _rows) in found.items():
                run.failed[name] = f"{said} ({how})"
            if model == "thread":
                try:
                    wait_until(lambda: server.thread_count() <= base_threads, 5.0,
                               "threads back to baseline")
                except WaitTimeout:
                    run.failed["threads"] = (f"{server.thread_count()} threads, "
                                             f"{base_threads} at start")
        else:
            run.failed["server_alive"] = "echod is dead at the end"
        run.counts.update({k: v for k, v in run.client.get("outcomes", {}).items()})
        run.counts["faults"] = len(server.events("fault"))
        server.terminate(check=False)
    return run


def table(runs):
    head = ("model", "conns", "ok", "client_rst", "cut", "unexplained", "corrupted",
            "faults", "verdict")
    rows = [head]
    for r in runs:
        c = r.counts
        rows.append((r.model, str(r.client.get("conns", "-")), str(c.get("ok", 0)),
                     str(c.get("client_rst", 0)), str(c.get("cut_explained", 0)), str(c.get("unexplained", 0)),
                     str(c.get("corrupted", 0)), str(c.get("faults", 0)),
                     "ok" if r.passed else "FAIL: " + ", ".join(r.failed)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


_last_logged = [0.0]


def print_progress(model, line, stream=sys.stderr):
    """The progress line: rewritten in place on a terminal; in a log, one
    every 2 seconds."""
    if stream.isatty():
        stream.write(f"\r\x1b[K[{model}] {line}")
    elif time.monotonic() - _last_logged[0] >= 2.0:
        _last_logged[0] = time.monotonic()
        stream.write(f"[{model}] {line}\n")
    stream.flush()


DEFECTS = {
    # Test-only: an echod configuration the storm must find broken, each a
    # classic mode of echod (docs/FAILURE-MODES.md), not a change to it.
    "none": (),
    "reap-wait": ("--reap", "wait"),
    "reap-none": ("--reap", "none"),
    "leak-connfd": ("--leak-connfd",),
}


@dataclass
class Settings:
    seed: int
    connections: int = 1000
    models: tuple = MODELS
    duration: float = 60.0
    concurrency: int = 64
    max_len: int = 4096
    rst_percent: int = 5
    defect: str = "none"
    shrink: bool = True


def replay_command(s):
    defect = f" --defect {s.defect}" if s.defect != "none" else ""
    return (f"faultline storm --seed {s.seed} --connections {s.connections} "
            f"--models {','.join(s.models)} --duration {s.duration:g} "
            f"--concurrency {s.concurrency} --max-len {s.max_len} "
            f"--rst-percent {s.rst_percent}{defect}")


def shrink_run(run, s, workdir, out=sys.stdout):
    """The first broken invariant a scenario can express, shrunk to a file
    in workdir; its path, or None (and why, on out)."""
    from . import shrink
    broken = next((name for name in shrink.SHRINKABLE if name in run.failed), None)
    if broken is None:
        print(f"  {run.model}: {', '.join(run.failed)} cannot be written as a scenario "
              f"yet; replay with: {replay_command(s)}", file=out)
        return None
    reap, options = shrink.split_reap(["--sigpipe", "ignore", *run.echod_args])
    found = shrink.Candidate(run.model, reap, options, tuple(run.rules),
                             min(s.connections, 8), broken, seed=s.seed)
    print(f"  shrinking {run.model}'s '{broken}' ...", file=out, flush=True)
    shrinker = shrink.Shrinker(workdir / f"shrink-{run.model}",
                               log=lambda text: print(f"    {text}", file=out, flush=True))
    smallest = shrinker.shrink(found)
    if smallest is None:
        print(f"  {run.model}: '{broken}' did not fail as a scenario in "
              f"{shrinker.trial} trial(s); replay with: {replay_command(s)}", file=out)
        return None
    path = workdir / f"storm-{s.seed}-{run.model}-{broken}.toml"
    path.write_text(shrink.render(smallest))
    print(f"  {run.model}: {len(path.read_text().splitlines())}-line scenario, "
          f"{shrinker.trial} trial(s): faultline run {path}", file=out)
    return path


def storm(s, workdir, out=sys.stdout, err=sys.stderr):
    """Every model's storm, the table, and the shrunk files of the broken
    ones. Returns (runs, [scenario paths])."""
    print(f"storm seed {s.seed}: {s.connections} connections a model, "
          f"models {','.join(s.models)}", file=out, flush=True)
    runs = []
    for model in s.models:
        runs.append(run_model(model, s.seed, s.connections, s.duration,
                              workdir / model, concurrency=s.concurrency,
                              max_len=s.max_len, rst_percent=s.rst_percent,
                              echod_args=DEFECTS[s.defect],
                              progress=lambda m, line: print_progress(m, line, err)))
        if err.isatty():
            err.write("\r\x1b[K")
    print(table(runs), file=out)
    for r in runs:
        for name, said in r.failed.items():
            print(f"  {r.model}: {name}: {said}", file=out)
        if not r.passed:
            print(f"  {r.model}'s fault plan: {'; '.join(r.rules) or 'none'}", file=out)
    print(f"seed {s.seed}; replay: {replay_command(s)}", file=out, flush=True)
    files = []
    if s.shrink:
        for r in runs:
            if not r.passed:
                path = shrink_run(r, s, workdir, out)
                if path:
                    files.append(path)
    return runs, files
