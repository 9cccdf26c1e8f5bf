"""Shrinking a broken storm run to a scenario file (docs/STORM.md).

A storm's failure is rewritten as a scenario: the same model, echod
options and fault rules, K raw connections that each send a line and
close, and the broken invariant as an expectation. The shrinker then
removes what the failure does not need, greedily (delta debugging with
chunks of one): fault rules, one at a time, then connections. A
candidate counts only when `scenario.run` fails it *the same way*: the
broken invariant's expectation fails, not a step. The file it returns was
run that way, and the last candidate is run twice more so that a file
that fails by luck is not kept.
"""

import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import scenario

# A storm invariant -> (scenario gauge, value a sound server gives, what
# the gauge's failing line says: scenario.GAUGES[...].says without "{}").
INVARIANTS = {
    "zombies": ("zombies", 0, "zombie children"),
    "close_wait": ("close_wait", 0, "sockets in CLOSE_WAIT"),
    "fds": ("fd_growth", 0, "descriptors grew by"),
    "server_alive": ("server_alive", True, "server alive:"),
}
SHRINKABLE = tuple(INVARIANTS)
LINE = "storm\\n"   # what each connection sends, as TOML writes it


@dataclass(frozen=True)
class Candidate:
    model: str
    reap: str
    echod: tuple          # echod options but --reap
    rules: tuple
    connections: int
    invariant: str
    seed: int = 0
    talk: bool = True     # each connection sends a line (and reads its echo)


def split_reap(echod_args):
    """(reap, the other options): --reap is the scenario's reap key."""
    args, reap, i = [], "waitpid", 0
    while i < len(echod_args):
        if echod_args[i] == "--reap" and i + 1 < len(echod_args):
            reap, i = echod_args[i + 1], i + 2
        elif echod_args[i].startswith("--reap="):
            reap, i = echod_args[i].split("=", 1)[1], i + 1
        else:
            args.append(echod_args[i])
            i += 1
    return reap, tuple(args)


def _q(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(items):
    return "[" + ", ".join(_q(i) for i in items) + "]"


def steps(c):
    """The client actions: connect K, send a line each, (its echo when no
    fault may cut it), close all; then what lets the invariant be read."""
    out = [f'{{ do = "connect", as = "c", count = {c.connections} }}']
    if c.invariant == "fds":
        out.insert(0, '{ do = "mark_fds" }')
    if c.talk:
        out.append(f'{{ do = "send", on = "c", data = "{LINE}" }}')
    if c.talk and not c.rules:
        out.append(f'{{ do = "expect_echo", on = "c", data = "{LINE}" }}')
    # Zombies in fork: the server stopped while its children exit, so their
    # SIGCHLDs meet as in the storm's worst interleaving, every time.
    # Every child forked before anything is closed or frozen; with faults,
    # which may end a child early, the count cannot be waited for.
    wait_forks = c.model == "fork" and not c.rules
    freeze = c.invariant == "zombies" and wait_forks
    if wait_forks:
        out.append(f'{{ do = "wait_children", count = {c.connections} }}')
    if freeze:
        out.append('{ do = "stop_server" }')
    out.append('{ do = "close", on = "c" }')
    if c.model == "fork":
        out.append('{ do = "wait_children_exited" }')
    if freeze:
        out.append('{ do = "cont_server" }')
    if c.invariant == "server_alive":
        # Every server-side socket closed, by the server or by its death:
        # only then has each connection met the faults it would meet.
        out.append('{ do = "wait_state", state = "CLOSE_WAIT", count = 0 }')
    else:
        out.append('{ do = "wait_idle" }')
    return out


def render(c):
    """The candidate as a scenario file."""
    gauge, want, _ = INVARIANTS[c.invariant]
    want_toml = "true" if want is True else str(want)
    sent = ", \"storm\" sent on each" if c.talk else ""
    lines = [
        f"# Expected packets: {c.connections} handshake(s){sent}, client FINs.",
        f"# Shrunk by faultline storm --seed {c.seed} --models {c.model}: "
        f"broke '{c.invariant}'.",
        f"title = {_q(f'storm seed {c.seed}, {c.model}: {gauge} = {want_toml} broken')}",
        "step = [", *(f"  {s}," for s in steps(c)), "]",
        "",
        "[server]",
        f"model = {_q(c.model)}",
    ]
    if c.reap != "waitpid":
        lines.append(f"reap = {_q(c.reap)}")
    if c.echod:
        lines.append(f"echod = {_array(c.echod)}")
    if c.rules:
        lines.append(f"faults = {_array(c.rules)}")
    lines += ["", "[expect]", f"{gauge} = {want_toml}"]
    return "\n".join(lines) + "\n"


def fails_same_way(c, workdir, trial):
    """Run the candidate's scenario; whether its invariant's expectation
    (and nothing before it) failed."""
    path = Path(workdir) / f"trial-{trial:02}.toml"
    path.write_text(render(c))
    result = scenario.run(path, Path(workdir) / f"trial-{trial:02}")
    _, _, says = INVARIANTS[c.invariant]
    return (not result.passed and
            any(not f.startswith("step ") and says in f.splitlines()[0]
                for f in result.failures))


class Shrinker:
    def __init__(self, workdir, budget_s=120.0, max_trials=40, log=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget_s
        self.trials_left = max_trials
        self.trial = 0
        self.log = log or (lambda text: None)

    def fails(self, c):
        if self.trials_left <= 0 or time.monotonic() > self.deadline:
            return False
        self.trials_left -= 1
        self.trial += 1
        failed = fails_same_way(c, self.workdir, self.trial)
        self.log(f"trial {self.trial}: {len(c.rules)} rule(s), {c.connections} "
                 f"connection(s): {'fails' if failed else 'passes'}")
        return failed

    def shrink(self, c):
        """The smallest candidate found that still fails the same way, or
        None when the storm's failure did not become a scenario failure."""
        tries = [replace(c, connections=k, rules=rules) for k in (8, 32)
                 for rules in dict.fromkeys((c.rules, ()))]
        start = next((t for t in tries if self.fails(t)), None)
        if start is None:
            return None
        c = start
        if c.rules and self.fails(replace(c, rules=())):
            c = replace(c, rules=())
        changed = True
        while changed and c.rules:
            changed = False
            for i in range(len(c.rules)):
                smaller = replace(c, rules=c.rules[:i] + c.rules[i + 1:])
                if self.fails(smaller):
                    c, changed = smaller, True
                    break
        for i in range(len(c.echod)):
            # An option and its value go together (--sigpipe ignore).
            for width in (2, 1):
                fewer = c.echod[:i] + c.echod[i + width:]
                if (i + width <= len(c.echod) and c.echod[i].startswith("--")
                        and self.fails(replace(c, echod=fewer))):
                    c = replace(c, echod=fewer)
                    break
            else:
                continue
            break
        if c.talk and self.fails(replace(c, talk=False)):
            c = replace(c, talk=False)
        for k in (1, 2, 3, 4, 6):
            if k < c.connections and self.fails(replace(c, connections=k)):
                c = replace(c, connections=k)
                break
        # Twice more, so that a file kept is one that fails every time;
        # else the start, if it does.
        for kept in dict.fromkeys((c, start)):
            if self.fails(kept) and self.fails(kept):
                return kept
        return None
