"""What an idle fault hook costs: instructions per echoed line, counted by
callgrind (deterministic), with the hooks compiled in but no fault armed
against a build with the hooks compiled out.

    /usr/bin/python3 bench/hook_cost.py [--lines N] [--hooks DIR] [--nohooks DIR]
                                        [--only PROGRAM] [--keep]

DIR defaults: ./build (configured as `./faultline build` does) and
./build-nohooks (`meson setup build-nohooks -Dfault_hooks=disabled`, made
and compiled here when missing). Needs valgrind (ci/install-deps).

For each program that serves or sends lines (echod's fork child, its
session thread, the poll and epoll processes, and echoc: PROGRAM is fork,
thread, poll, epoll or echoc) the script runs it
under callgrind twice per build: one connection that echoes N lines, and
one that echoes none; the difference over N is the cost of one line, the
start-up and the connection's own set-up cancelling out. Everything runs
on 127.0.0.1; echoc talks one line at a time (block mode, as UNP's
str_cli), so every line is one read and one write on each side.

Prints the table and exits 1 when a ratio (hooks idle / compiled out) is
above --max-ratio (1.01: an idle hook is one predictable branch on a
global, docs/FAULTS.md). Nothing here is timed.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY = re.compile(rb"listening on (\S+):(\d+) ")
TOTAL = re.compile(r"^(?:summary|totals):\s*(\d+)", re.M)
# The programs measured: (label, echod model or None for echoc).
TARGETS = [("fork", "fork"), ("thread", "thread"), ("poll", "poll"),
           ("epoll", "epoll"), ("echoc", None)]
TIMEOUT = 300  # seconds, for any one run under valgrind


def fail(message):
    print(f"hook_cost: {message}", file=sys.stderr)
    sys.exit(2)


def ensure_build(build_dir, options):
    if not (build_dir / "build.ninja").exists():
        subprocess.run(["meson", "setup", str(build_dir), *options], cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run(["meson", "compile", "-C", str(build_dir)], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        fail(f"meson compile -C {build_dir} failed:\n{r.stdout[-3000:]}")


def callgrind(out_pattern, argv):
    return ["valgrind", "--tool=callgrind", "--separate-threads=yes",
            f"--callgrind-out-file={out_pattern}", "--", *map(str, argv)]


def total_of(path):
    """Instructions (Ir) in one callgrind output file."""
    match = TOTAL.search(Path(path).read_text())
    if not match:
        fail(f"no total in {path}")
    return int(match.group(1))


def start_echod(build_dir, model, wrap):
    """echod on 127.0.0.1, an ephemeral port; returns (proc, port) once its
    readiness line is out (it prints it after listen())."""
    argv = [build_dir / "server" / "echod", "--bind", "127.0.0.1", "--port", "0",
            "--model", model, "--sigpipe", "ignore"]
    proc = subprocess.Popen(wrap(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    line = proc.stdout.readline()  # bounded: valgrind or echod exit closes it
    match = READY.search(line)
    if not match:
        proc.kill()
        fail(f"echod --model {model} did not get ready: "
             f"{line!r} {proc.stderr.read()[-2000:]!r}")
    return proc, int(match.group(2))


def stop(proc):
    proc.terminate()
    try:
        proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        fail(f"{proc.args[0]} did not stop on SIGTERM within {TIMEOUT}s")


def run_echoc(argv, lines):
    data = "".join(f"line {i} of the idle-hook benchmark\n" for i in range(lines))
    r = subprocess.run(list(map(str, argv)), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    if r.returncode != 0 or r.stdout != data:
        fail(f"echoc exit {r.returncode} ({len(r.stdout)} of {len(data)} bytes "
             f"echoed): {r.stderr.strip()[-500:]}")


def server_instructions(build_dir, client, model, lines, work):
    """Instructions of the process or thread serving one connection of
    `lines` lines, echod `model` under callgrind."""
    tag = f"{build_dir.name}-{model}-{lines}"
    pattern = work / f"{tag}.%p"
    proc, port = start_echod(build_dir, model, lambda a: callgrind(pattern, a))
    try:
        run_echoc([client, "127.0.0.1", port], lines)
    finally:
        stop(proc)
    # With --separate-threads, one file per thread: NAME.PID-TID.
    files = sorted(work.glob(f"{tag}.*-*"))
    parent = [f for f in files if f.name.startswith(f"{tag}.{proc.pid}")]
    if model == "fork":
        # The child: the one process that is not the parent.
        served = [f for f in files if f not in parent]
    elif model == "thread":
        # The session thread: every thread but the main one (-01).
        served = [f for f in parent if not f.name.endswith("-01")]
    else:
        served = parent
    if len(served) != 1:
        fail(f"echod --model {model}: expected one serving process or thread "
             f"among {[f.name for f in files]}")
    return total_of(served[0])


def client_instructions(build_dir, server_build, lines, work):
    """Instructions of echoc sending `lines` lines, under callgrind, to an
    echod (epoll, not under valgrind) of the hooks build."""
    tag = f"{build_dir.name}-echoc-{lines}"
    pattern = work / f"{tag}.%p"
    proc, port = start_echod(server_build, "epoll", lambda a: list(map(str, a)))
    try:
        run_echoc(callgrind(pattern, [build_dir / "client" / "echoc", "127.0.0.1",
                                      port]), lines)
    finally:
        stop(proc)
    files = sorted(work.glob(f"{tag}.*-*"))
    if len(files) != 1:
        fail(f"echoc: expected one callgrind file, found {[f.name for f in files]}")
    return total_of(files[0])


def per_line(measure, lines):
    with_lines = measure(lines)
    without = measure(0)
    return with_lines, (with_lines - without) / lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--hooks", type=Path, default=REPO / "build",
                        help="build dir with the hooks compiled in (default ./build)")
    parser.add_argument("--nohooks", type=Path, default=REPO / "build-nohooks",
                        help="build dir with -Dfault_hooks=disabled "
                             "(default ./build-nohooks)")
    parser.add_argument("--max-ratio", type=float, default=1.01)
    parser.add_argument("--only", choices=[t[0] for t in TARGETS], action="append",
                        help="measure only this program (repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep callgrind's files (for callgrind_annotate) "
                             "and say where")
    args = parser.parse_args()
    if args.lines < 1:
        fail("--lines wants a whole number >= 1")
    if not shutil.which("valgrind"):
        fail("valgrind is missing (ci/install-deps installs it)")
    hooks, nohooks = args.hooks.resolve(), args.nohooks.resolve()
    ensure_build(hooks, [])
    ensure_build(nohooks, ["-Dfault_hooks=disabled"])
    client = hooks / "client" / "echoc"

    rows = []
    with tempfile.TemporaryDirectory(prefix="hook_cost.") as tmp:
        work = Path(tempfile.mkdtemp(prefix="hook_cost.") if args.keep else tmp)
        for label, model in TARGETS:
            if args.only and label not in args.only:
                continue
            figures = []
            for build_dir in (hooks, nohooks):
                if model is None:
                    def measure(n, b=build_dir):
                        return client_instructions(b, hooks, n, work)
                else:
                    def measure(n, b=build_dir, m=model):
                        return server_instructions(b, client, m, n, work)
                figures.append(per_line(measure, args.lines))
                print(f"  measured {label} ({build_dir.name})", file=sys.stderr,
                      flush=True)
            rows.append((label, figures[0], figures[1]))
        if args.keep:
            print(f"callgrind files kept in {work}", file=sys.stderr)

    print(f"instructions (callgrind Ir), {args.lines} echoed lines; per line = "
          f"(run with the lines - run with none) / lines")
    print(f"{'':12} {'total, idle':>12} {'total, out':>12} {'/line idle':>11} "
          f"{'/line out':>10} {'ratio':>7}")
    worst = 0.0
    for label, (idle_total, idle_line), (out_total, out_line) in rows:
        ratio = idle_line / out_line
        worst = max(worst, ratio)
        print(f"{label:12} {idle_total:12,} {out_total:12,} {idle_line:11.1f} "
              f"{out_line:10.1f} {ratio:7.3f}")
    if worst > args.max_ratio:
        print(f"hook_cost: FAIL: an idle hook build executes {worst:.3f}x the "
              f"instructions per line of the compiled-out build (at most "
              f"{args.max_ratio})", file=sys.stderr)
        return 1
    print(f"every ratio <= {args.max_ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
