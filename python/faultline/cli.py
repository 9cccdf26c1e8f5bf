"""The command line: ./faultline COMMAND, or python3 -m faultline COMMAND.

Parsing comes first and needs nothing: `--help` of every command works
without root, without the system packages and without a build. Only the
commands that run something (demo, test, check, run, bench, build) then install
what is missing (ci/install-deps), build, and run; those that make hosts
first make sure this machine can, and say so in one line if it cannot.

The checkout is found from this file, never from the current directory:
relative paths given on the command line (a scenario file, a server
command such as './my-server') are the caller's.

`faultline check` parses and checks its arguments here; checkrun.py runs
the checks and reports their verdicts.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import build, interrupts, paths

OK, FAILED, USAGE, NO_NAMESPACES = 0, 1, 2, 3
SIGPIPE_STATUS = 128 + 13  # what a shell reports for a writer killed by SIGPIPE

EXIT_STATUSES = """\
exit status: 0 all went as expected; 1 a check, test or phenomenon failed
(or the build did); 2 usage error; 3 it cannot run here (this machine
cannot make network namespaces: not root, and user namespaces refused)"""

class UsageError(Exception):
    """Bad arguments: one line, exit 2."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


class Refused(Exception):
    """The command cannot run here: one line, with its exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors that name the command."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}", f"{self.prog} --help")


def version():
    """The project's version: meson.build's, the one place it is set."""
    return paths.version()


def checkout_only(command):
    """test and build work on a checkout's suite and meson build, which an
    installed faultline (paths.INSTALLED) does not have."""
    if paths.INSTALLED:
        raise UsageError(f"faultline {command}: works in a checkout of faultline only; "
                         f"this one is installed ({paths.PACKAGE})", "faultline --help")


# --- what running commands need ------------------------------------------------

def namespaces_unavailable():
    """Why this process cannot make hosts (None when it can): as root, the
    network and PID namespaces; as anyone else, a user namespace first
    (host.unavailable, which says which sysctl allows it)."""
    from .host import unavailable
    return unavailable()


def prepare(command, hosts):
    """Before a command runs something: hosts possible (if it makes them),
    missing packages installed, the build up to date."""
    if hosts:
        why = namespaces_unavailable()
        if why:
            raise Refused(f"faultline {command}: makes network namespaces and cannot "
                          f"here: {why}", NO_NAMESPACES)
    build.install_deps()
    build.ensure_built()


# --- the commands ----------------------------------------------------------------

def demo_command(args):
    prepare("demo", hosts=True)
    from . import demo
    return demo.main([])


def test_command(args):
    checkout_only("test")
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    prepare("test", hosts=True)
    unit = subprocess.run(["meson", "test", "-C", str(paths.BUILD_DIR), "--suite", "unit",
                           "--print-errorlogs"], cwd=paths.REPO)
    if unit.returncode != 0:
        return unit.returncode
    jobs = os.environ.get("FAULTLINE_JOBS", "2")
    status = subprocess.run([sys.executable, "-m", "pytest", "--no-build", "-n", jobs,
                             *pytest_args], cwd=paths.REPO).returncode
    if status == 5:
        print("faultline test: pytest collected no tests (exit 5): a failure here",
              file=sys.stderr)
    return status


def check_command(args):
    from . import checks
    if args.list:
        for c in checks.CHECKS:
            print(f"{c.name:<19}{c.title}")
        return OK
    chosen, options = check_arguments(args)
    root = check_artifacts(args.artifacts)
    interrupts.terminate_as_interrupt()
    prepare("check", hosts=True)
    from . import checkrun
    from .server import Server
    root.mkdir(parents=True, exist_ok=True)

    def make(host):
        return Server(host, args.server_cmd, args.port, user=args.user)
    try:
        checkrun.preflight(make, root / "preflight", options)
    except checkrun.NotAServer as e:
        raise UsageError(f"faultline check: {e}") from None
    describe = f"'{args.server_cmd}' on port {args.port}"
    if not options.protocol.echoes:
        describe += f", protocol {options.protocol.describe()}"
    report = checkrun.run_against(make, describe, root, chosen, options=options,
                                  json_path=args.json, junit_path=args.junit)
    for what, path in (("JSON report", args.json), ("JUnit XML", args.junit)):
        if path:
            print(f"{what}: {path}")
    earlier = (f"; {root.name.rpartition('.')[0]}/ holds an earlier run's, kept"
               if args.artifacts is None and root.name != "check" else "")
    print(f"artifacts: {root}/ (report.txt, report.json, junit.xml{earlier})")
    print_report(root)
    return report.exit_status


def print_report(folder):
    """Write the folder's report.html and say where it is; a report that
    cannot be made is a line, never the run's failure."""
    from . import report
    try:
        print(f"report: {report.write(folder)}")
    except (report.ReportError, OSError) as e:
        print(f"report: not written: {e}")


def check_arguments(args):
    """The checks and the run's options, or a one-line usage error."""
    from . import checks, protocol
    from .checkrun import Options

    def usage(message):
        return UsageError(f"faultline check: {message}", "faultline check --help")
    if args.server_cmd is None:
        raise UsageError("faultline check: --server-cmd CMD is required (or --list)",
                         "faultline check --help")
    if not args.server_cmd.strip():
        raise usage("--server-cmd is empty: give the command that starts your server")
    if not 1 <= args.port <= 65535:
        raise usage(f"--port wants a number from 1 to 65535, not {args.port}")
    if args.user is not None:
        import pwd
        if os.geteuid() != 0:
            raise usage(f"--user {args.user} needs root: without root, the server "
                        f"already runs as you")
        try:
            entry = (pwd.getpwuid(int(args.user)) if args.user.isdigit()
                     else pwd.getpwnam(args.user))
        except KeyError:
            raise usage(f"--user: no such user: {args.user}") from None
        if entry.pw_uid == 0:
            raise usage(f"--user {args.user} is root: name an unprivileged user, e.g. nobody")
        args.user = entry.pw_name
    for name in ("start_timeout", "settle", "stop_timeout"):
        value = getattr(args, name)
        if not value > 0:
            raise usage(f"--{name.replace('_', '-')} wants a number of seconds "
                        f"above 0, not {value:g}")
    if args.snaplen is not None and not 68 <= args.snaplen <= 262144:
        raise usage(f"--snaplen wants a number of bytes from 68 (the headers) to "
                    f"262144, not {args.snaplen}")
    for name in ("json", "junit"):
        path = getattr(args, name)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise usage(f"--{name} {path}: no folder {Path(path).resolve().parent}")
    try:
        chosen = checks.by_name(args.check) if args.check else None
    except KeyError as e:
        raise UsageError(f"faultline check: {e.args[0]}",
                         "faultline check --list") from None
    if args.request is None and args.reply is None:
        chosen_protocol = protocol.NONE if args.protocol == "none" else protocol.ECHO
    elif args.protocol is not None:
        raise usage(f"--request and --reply make the protocol request-reply; they "
                    f"do not go with --protocol {args.protocol}")
    else:
        try:
            chosen_protocol = protocol.request_reply(
                protocol.unescape(args.request or ""), protocol.unescape(args.reply or ""))
        except ValueError as e:
            raise usage(f"--request/--reply: {e}") from None
    return chosen, Options(protocol=chosen_protocol, start_timeout=args.start_timeout,
                           settle=args.settle, stop_timeout=args.stop_timeout,
                           snaplen=args.snaplen)


def check_artifacts(given):
    """The run's artifact folder. One named with --artifacts must be new or
    empty: an earlier run's files are never deleted, nor mixed with these.
    The default, artifacts/check/, becomes check.2/, check.3/... when an
    earlier run's folder is there (which is kept)."""
    from . import artifacts
    if given is None:
        return artifacts.unused_dir(paths.ARTIFACTS_DIR / "check")
    root = Path(given)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"faultline check: --artifacts {given}: "
                         f"{'holds files already' if root.is_dir() else 'is not a folder'}"
                         f"; give a new or empty folder (an earlier run's artifacts "
                         f"are never deleted)", "faultline check --help")
    return root.resolve()


def mutants_command(args):
    checkout_only("mutants")
    from . import mutants
    try:
        table = mutants.load(args.table)
    except mutants.TableError as e:
        raise UsageError(f"faultline mutants: {e}") from None
    chosen = mutants.select(table, args.only or (), ci=args.ci)
    if not chosen:
        raise UsageError(f"faultline mutants: no mutant matches "
                         f"{' '.join(args.only or ())}{' (--ci)' if args.ci else ''}",
                         "faultline mutants --list")
    if args.list:
        return FAILED if mutants.listing(chosen, paths.REPO, sys.stdout) else OK
    if not args.timeout > 0:
        raise UsageError(f"faultline mutants: --timeout wants a number of seconds "
                         f"above 0, not {args.timeout:g}", "faultline mutants --help")
    prepare("mutants", hosts=True)
    results = mutants.run(chosen, sys.stdout, timeout=args.timeout)
    return OK if mutants.exit_status(results) == 0 else FAILED


def scenario_path(name):
    """A name as `faultline list` prints it, looked up in fixtures/scenarios
    first; otherwise a path to a scenario file."""
    from . import scenario
    if "/" not in name:
        named = scenario.SCENARIO_DIR / f"{name}.toml"
        if named.is_file():
            return named
    path = Path(name)
    if path.is_file():
        return path
    if "/" in name or name.endswith(".toml"):
        raise UsageError(f"faultline run: {name}: no such file", "faultline list")
    raise UsageError(f"faultline run: no scenario named '{name}' in "
                     f"{scenario.SCENARIO_DIR}, and no file of that name",
                     "faultline list")


def run_command(args):
    from . import scenario
    path = scenario_path(args.scenario)
    try:
        scenario.load(path)
    except scenario.ScenarioError as e:
        raise UsageError(f"faultline run: {e}", "docs/SCENARIOS.md") from None
    prepare("run", hosts=True)
    from . import artifacts
    result = scenario.run(path, artifacts.fresh_dir("run", path.stem))
    print(result.report())
    for failure in result.failures:
        print("\n" + failure)
    print_report(result.artifacts)
    return OK if result.passed else FAILED


def storm_command(args):
    from . import storm
    models = tuple(m for m in (args.models or ",".join(storm.MODELS)).split(","))
    unknown = [m for m in models if m not in storm.MODELS]
    if unknown or not models:
        raise UsageError(f"faultline storm: --models {args.models!r}: unknown model "
                         f"{', '.join(repr(m) for m in unknown) or '(none)'} (models: "
                         f"{', '.join(storm.MODELS)})", "faultline storm --help")
    bounds = {"--connections": (args.connections, 1, 100000),
              "--duration": (args.duration, 0.1, 600),
              "--concurrency": (args.concurrency, 1, 4096),
              "--max-len": (args.max_len, 1, 1 << 20),
              "--rst-percent": (args.rst_percent, 0, 100),
              "--seed": (args.seed, 0, 2**64 - 1)}
    for name, (value, low, high) in bounds.items():
        if value is not None and not low <= value <= high:
            raise UsageError(f"faultline storm: {name} {value:g}: out of range "
                             f"({low:g} to {high:g})", "faultline storm --help")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    settings = storm.Settings(seed=seed, connections=args.connections, models=models,
                              duration=args.duration, concurrency=args.concurrency,
                              max_len=args.max_len, rst_percent=args.rst_percent,
                              defect=args.defect, shrink=not args.no_shrink)
    checkout_only("storm")
    prepare("storm", hosts=True)
    from . import artifacts
    workdir = Path(args.out).absolute() if args.out else artifacts.fresh_dir("storm", str(seed))
    workdir.mkdir(parents=True, exist_ok=True)
    runs, _files = storm.storm(settings, workdir)
    print(f"artifacts in {workdir}/")
    return OK if all(r.passed for r in runs) else FAILED


def list_command(args):
    from . import scenario
    for path in scenario.all_scenarios():
        print(scenario.summary_line(path))
    return OK


def ladder_command(args):
    from .ladder import command, model
    try:
        return command.run(args, sys.stdout)
    except model.InputError as e:
        raise UsageError(f"faultline ladder: {e}", "faultline ladder --help") from None


def report_command(args):
    from . import report
    import importlib.util
    if importlib.util.find_spec("scapy") is None:  # the pcap reader's, on a bare machine
        build.install_deps()
    try:
        print(f"report: {report.write(args.folder)}")
    except report.ReportError as e:
        raise UsageError(f"faultline report: {e}", "faultline report --help") from None
    return OK


def bench_settings(args):
    """bench's Settings from its arguments, or a one-line usage error."""
    from . import bench

    def usage(message):
        return UsageError(f"faultline bench: {message}", "faultline bench --help")

    def counts(flag, text, lo, hi):
        try:
            values = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise usage(f"{flag} wants numbers separated by commas, not '{text}'") from None
        if not values or any(not lo <= v <= hi for v in values):
            raise usage(f"{flag} wants numbers from {lo} to {hi}, not '{text}'")
        return values

    given = {k: v for k, v in vars(args).items() if v is not None}
    settings = bench.Settings(**bench.QUICK) if args.quick else bench.Settings()
    settings.quick = args.quick
    settings.suite = args.suite
    settings.events = args.events
    for name, lo, hi in (("rounds", 1, 100), ("prefork_workers", 1, 256),
                         ("scale_conns", 1, 100_000), ("scale_children", 1, 10_000),
                         ("strace_conns", 1, 100_000), ("harness_rounds", 1, 1000),
                         ("msg", 1, 65536),
                         ("window", 1, 1 << 30)):
        if name in given:
            if not lo <= given[name] <= hi:
                raise usage(f"--{name.replace('_', '-')} wants a number from {lo} "
                            f"to {hi}, not {given[name]}")
            setattr(settings, name, given[name])
    if "scale_seconds" in given:
        if not 0 < given["scale_seconds"] <= 600:
            raise usage(f"--scale-seconds wants a number above 0, at most 600, not "
                        f"{given['scale_seconds']:g}")
        settings.scale_seconds = given["scale_seconds"]
    if "seconds" in given:
        if not 0 < given["seconds"] <= 60:
            raise usage(f"--seconds wants a number above 0, at most 60, not "
                        f"{given['seconds']:g}")
        settings.seconds = given["seconds"]
    if "client_workers" in given:
        settings.client_workers = counts("--client-workers", given["client_workers"], 1, 1024)
    if "stream_conns" in given:
        settings.stream_conns = counts("--stream-conns", given["stream_conns"], 1, 10_000)
    if "only" in given:
        settings.only = tuple(x for x in given["only"].split(",") if x)
        try:
            bench.subjects(settings)
        except ValueError as e:
            raise usage(str(e)) from None
    return settings


def bench_command(args):
    checkout_only("bench")
    settings = bench_settings(args)
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None and out_dir.exists() and (
            not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"faultline bench: --out {args.out}: "
                         f"{'holds files already' if out_dir.is_dir() else 'is not a folder'}"
                         f"; give a new or empty folder", "faultline bench --help")
    prepare("bench", hosts=True)
    from . import artifacts, bench
    import tempfile
    out_dir = out_dir or artifacts.unused_dir(paths.ARTIFACTS_DIR / "bench")
    print(f"faultline bench: {settings.describe()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="faultline-bench-") as work:
        try:
            report = bench.run(settings, Path(work))
        except bench.BenchError as e:
            print(f"faultline bench: {e}", file=sys.stderr)
            return FAILED
    table, png = bench.write_outputs(report, out_dir)
    print(table)
    problems = bench.validate(report)
    for problem in problems:
        print(f"faultline bench: {problem}", file=sys.stderr)
    print(f"written: {out_dir}/bench.json, bench.md"
          + (", bench.png" if png else " (no chart: python3-matplotlib is missing)"))
    return FAILED if problems else OK


def build_command(args):
    checkout_only("build")
    build.install_deps()
    build.ensure_built(quiet=False)
    return OK


def help_command(args):
    parser = make_parser()
    if args.topic is None:
        parser.print_help()
        return OK
    commands = subcommands(parser)
    if args.topic not in commands:
        raise UsageError(f"faultline help: no command '{args.topic}' "
                         f"(commands: {', '.join(commands)})", "faultline --help")
    commands[args.topic].print_help()
    return OK


def make_parser():
    top = Parser(prog="faultline", epilog=EXIT_STATUSES,
                 description="Test concurrent TCP servers under faults, each test on "
                             "its own throwaway host (network and PID namespaces). "
                             "demo, test, check and run make hosts: as root, or "
                             "without where the kernel allows user namespaces; "
                             "they install missing packages "
                             "(ci/install-deps) and build first.")
    top.add_argument("--version", action="version", version=f"faultline {version()}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                             title="commands")

    def command(name, run, summary, description=None, **kw):
        p = sub.add_parser(name, prog=f"faultline {name}", help=summary,
                           description=description or summary, epilog=EXIT_STATUSES,
                           **kw)
        p.set_defaults(run=run)
        return p

    command("demo", demo_command,
            "the three SIGCHLD reapers side by side (UNP ch. 5), then the other "
            "seed experiments; artifacts and report.html in artifacts/demo/")
    command("test", test_command,
            "the cmocka unit tests, then the pytest suite",
            "Run the cmocka unit tests, then the pytest suite (in the checkout, "
            "FAULTLINE_JOBS workers, default 2). Every other argument goes to "
            "pytest, e.g. 'faultline test -k zombie'; after '--' even -h does. "
            "pytest collecting no test is a failure.",
            usage="faultline test [-h] [PYTEST-ARG ...]", allow_abbrev=False)
    from .checks import DEFAULT_SETTLE, CHECKS
    check = command("check", check_command,
                    "put any TCP server under every check that applies",
                    "Run every check that applies to CMD, each on a fresh host with a "
                    "freshly started server: all of them for an echo server, the "
                    "checks of process and socket hygiene for any TCP server "
                    "(--protocol none, or --request/--reply). Every check ends in "
                    "pass, FAIL, ERROR (the harness's own fault) or skip; the full "
                    "evidence, report.txt, report.json, junit.xml and report.html "
                    "(the page to open in a browser) are in the artifact folder.")
    check.add_argument("--server-cmd", metavar="CMD",
                       help="the command that starts the server (shell syntax allowed; "
                            "relative paths are from the current directory)")
    check.add_argument("--port", type=int, default=9877, metavar="P",
                       help="the TCP port it listens on (default 9877)")
    check.add_argument("--check", action="append", metavar="NAME",
                       help="run only this check (repeatable); --list names them")
    check.add_argument("--list", action="store_true",
                       help="name the checks and exit (needs no root)")
    check.add_argument("--protocol", choices=("echo", "none"),
                       help="echo (the default): every check; none: expect no reply "
                            "(the checks connect and close; session-ends's clients "
                            "send until the server holds still), the checks that need "
                            "no echo")
    check.add_argument("--request", metavar="DATA",
                       help="send DATA on each connection (escapes such as \\r\\n "
                            "allowed), and expect a reply: the checks that need no echo")
    check.add_argument("--reply", metavar="PREFIX",
                       help="what the reply to --request must start with (default: "
                            "any reply)")
    check.add_argument("--artifacts", metavar="DIR",
                       help="the run's artifact folder, new or empty (default "
                            "artifacts/check/, or check.2/... when an earlier run's "
                            "is there)")
    check.add_argument("--json", metavar="FILE",
                       help="also write the JSON report to FILE")
    check.add_argument("--junit", metavar="FILE",
                       help="also write JUnit XML to FILE")
    check.add_argument("--start-timeout", type=float, default=5.0, metavar="S",
                       help="seconds the server has to listen (default 5)")
    check.add_argument("--settle", type=float, default=DEFAULT_SETTLE, metavar="S",
                       help="seconds a server may take to settle, e.g. reap a child "
                            f"(default {DEFAULT_SETTLE:g})")
    from .capture import HEADERS_AND_SOME
    volume = ", ".join(c.name for c in CHECKS if c.snaplen == HEADERS_AND_SOME)
    check.add_argument("--snaplen", type=int, metavar="BYTES",
                       help=f"bytes the capture keeps of each packet (default: whole "
                            f"packets; {HEADERS_AND_SOME} for the checks that move "
                            f"megabytes: {volume}); report.html says when payload "
                            f"was cut")
    check.add_argument("--user", metavar="NAME",
                       help="as root: run the server as this user, with no "
                            "capabilities (ports below 1024 still bind on its host); "
                            "the server's files must be that user's to read")
    check.add_argument("--stop-timeout", type=float, default=2.0, metavar="S",
                       help="seconds from SIGTERM to SIGKILL when a check's server is "
                            "stopped (default 2)")
    run = command("run", run_command, "run one scenario file; artifacts kept",
                  "Run one scenario on a fresh host and print its report; the "
                  "artifacts stay in artifacts/run/NAME/, with report.html (the "
                  "verdict and the ladders, for a browser).")
    run.add_argument("scenario", metavar="SCENARIO",
                     help="a name as 'faultline list' prints it, or a path to a .toml file")
    from .mutants import DEFAULT_TIMEOUT
    mutants = command(
        "mutants", mutants_command,
        "make one-line source changes the suite must notice, and run its tests on each",
        "Apply each mutant of fixtures/mutants.toml (one small source edit) in a "
        "scratch copy of the checkout, rebuild, and run the tests it names: the "
        "tests failing kill it. A mutant that survives, or whose text is no longer "
        "in its file (stale), fails the run. Logs in artifacts/mutants/.")
    mutants.add_argument("--only", action="append", metavar="PATTERN",
                         help="only the mutants whose id matches PATTERN (a glob or "
                              "a substring; repeatable)")
    mutants.add_argument("--ci", action="store_true",
                         help="only the fast subset marked for CI (ci = true)")
    mutants.add_argument("--list", action="store_true",
                         help="name the mutants, their tests, and whether each still "
                              "applies; run nothing (needs no root)")
    mutants.add_argument("--table", metavar="FILE",
                         help="a table other than fixtures/mutants.toml")
    mutants.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                         help=f"seconds one mutant's tests may take before it is an "
                              f"error (default {DEFAULT_TIMEOUT:g})")
    from .storm import DEFECTS
    storm = command("storm", storm_command,
                    "a seeded random fault storm on every model; a failure shrunk "
                    "to a scenario file",
                    "On each model's fresh host: echod under a fault plan drawn from "
                    "the seed (docs/FAULTS.md's grammar), N client connections from "
                    "the C client stormc, K at a time, every echoed byte compared with "
                    "what was sent; then the invariants: server alive, no zombie, "
                    "descriptors and threads back to baseline, no CLOSE_WAIT, no "
                    "corrupted byte, every cut connection explained by a logged fault. "
                    "A broken run is shrunk to a scenario file that 'faultline run' "
                    "replays (docs/STORM.md). The same seed replays the same plans "
                    "and client actions.")
    storm.add_argument("--seed", type=int, metavar="S",
                       help="the seed (default: a random one, printed)")
    storm.add_argument("--connections", type=int, default=1000, metavar="N",
                       help="client connections per model (default 1000, at most 100000)")
    storm.add_argument("--models", metavar="M,M",
                       help="models to storm (default fork,thread,prefork,poll,epoll)")
    storm.add_argument("--duration", type=float, default=60.0, metavar="T",
                       help="seconds each model's clients may take at most (default 60)")
    storm.add_argument("--concurrency", type=int, default=64, metavar="K",
                       help="connections open at once (default 64)")
    storm.add_argument("--max-len", type=int, default=4096, metavar="B",
                       help="longest payload of a connection, bytes (default 4096)")
    storm.add_argument("--rst-percent", type=int, default=5, metavar="P",
                       help="connections the client resets half-way (default 5)")
    storm.add_argument("--defect", choices=tuple(DEFECTS), default="none",
                       help="test-only: run echod in a classic broken mode the storm "
                            "must find (default none)")
    storm.add_argument("--no-shrink", action="store_true",
                       help="do not shrink a failure to a scenario file")
    storm.add_argument("--out", metavar="DIR",
                       help="artifact folder (default artifacts/storm/SEED/)")
    command("list", list_command, "the scenario files, one line each (needs no root)")
    from .ladder import command as ladder
    ladder.add_arguments(command("ladder", ladder_command, "draw a capture's connections "
                                 "as ladder diagrams (needs no root)", ladder.DESCRIPTION))
    report = command("report", report_command,
                     "write report.html in an artifact folder (needs no root)",
                     "Write ARTIFACT_DIR/report.html again from the folder's files: "
                     "the verdicts, the ladders (inline SVG), the process tables and "
                     "socket snapshots, links to the pcap and logs. The folder is one "
                     "that faultline run, check, demo or a kept test left.")
    report.add_argument("folder", metavar="ARTIFACT_DIR",
                        help="e.g. artifacts/run/unp-5.12-premature-block, "
                             "artifacts/check, artifacts/demo")
    bench = command("bench", bench_command,
                    "echod's models against minimal servers, socat and inetd",
                    "Measure every echod model side by side with a minimal C server "
                    "of its kind, socat fork (PIPE, EXEC:cat) and openbsd-inetd's "
                    "echo, each on its own host, under one C load client: conn/s, "
                    "latency, MB/s, server CPU, syscalls per connection, "
                    "concurrency scale. Interleaved rounds; medians, spread and "
                    "ratios. Prints the table; writes bench.json, bench.md and "
                    "bench.png (docs/PERFORMANCE.md says how to read them). Exits 1 "
                    "when a server or measurement failed, never on a figure.")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run: one short round, small scales (seconds)")
    bench.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds "
                       "(default 5)")
    bench.add_argument("--seconds", type=float, metavar="S",
                       help="length of each load run (default 0.5)")
    bench.add_argument("--client-workers", metavar="N,N", help="client threads of the "
                       "connect-echo-close runs (default 1,4,16)")
    bench.add_argument("--stream-conns", metavar="N,N", help="connections of the echo "
                       "streams (default 1,64)")
    bench.add_argument("--msg", type=int, metavar="B",
                       help="bytes echoed per connection (default 64)")
    bench.add_argument("--window", type=int, metavar="B",
                       help="bytes in flight per stream connection (default 262144)")
    bench.add_argument("--prefork-workers", type=int, metavar="N",
                       help="the prefork servers' pool (default 8)")
    bench.add_argument("--scale-conns", type=int, metavar="N", help="concurrent "
                       "connections held on the poll and epoll servers (default 10000)")
    bench.add_argument("--scale-children", type=int, metavar="N", help="concurrent "
                       "connections, so children, on the fork servers (default 1000)")
    bench.add_argument("--scale-seconds", type=float, metavar="S", help="time to "
                       "open the scale runs' connections (default 120; what is open "
                       "by then is reported)")
    bench.add_argument("--strace-conns", type=int, metavar="N", help="connections "
                       "counted under strace (default 200)")
    bench.add_argument("--harness-rounds", type=int, metavar="N", help="rounds of the "
                       "harness's own cost: a host and echod ready (default 50)")
    bench.add_argument("--events", action="store_true", help="also every echod model "
                       "with its event log on (echod-MODEL+events), and what it costs")
    bench.add_argument("--suite", action="store_true", help="also time the whole test "
                       "suite and `pytest -k zombie` (minutes; the suite must pass)")
    bench.add_argument("--only", metavar="NAME,NAME", help="only these servers "
                       "(echod-fork, min-fork, socat-pipe, socat-cat, inetd-echo, ...)")
    bench.add_argument("--out", metavar="DIR", help="a new or empty folder for "
                       "bench.json, bench.md, bench.png (default artifacts/bench/)")
    command("build", build_command,
            "install missing packages, configure and compile (needs no root "
            "unless packages are missing)",
            f"Install the missing Debian/Ubuntu packages (ci/install-deps), then "
            f"configure and compile the meson build in FAULTLINE_BUILD_DIR "
            f"(now {paths.BUILD_DIR or 'none: this faultline is installed'}).")
    topic = command("help", help_command, "this text, or a command's")
    topic.add_argument("topic", nargs="?", metavar="COMMAND")
    return top


def subcommands(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def parse(argv):
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        args.run, args.topic = help_command, None
    if extra and args.command != "test":
        # `faultline --bogus` has no command: the error is the top level's.
        prog = f"faultline {args.command}" if args.command else "faultline"
        raise UsageError(f"{prog}: unrecognized arguments: {' '.join(extra)}",
                         f"{prog} --help")
    if args.command == "test":
        args.pytest_args = extra
    return args


# --- running it all ----------------------------------------------------------------

def stdout_closed():
    """Whether our stdout is a pipe or socket whose reader has gone."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def dispatch(argv):
    """Parse and run; every expected way to fail becomes one line on
    stderr and an exit status."""
    try:
        args = parse(argv)
        return args.run(args)
    except SystemExit as e:  # argparse after --help or --version
        return e.code
    except UsageError as e:
        hint = f" (see '{e.hint}')" if e.hint else ""
        print(f"{e}{hint}", file=sys.stderr)
        return USAGE
    except Refused as e:
        print(e, file=sys.stderr)
        return e.status
    except build.BuildError as e:
        print(f"faultline: {e}", file=sys.stderr)
        return FAILED
    except interrupts.Terminated:
        print("faultline: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("faultline: interrupted", file=sys.stderr)
        return 128 + 2
    except Exception as e:
        from .host import HostUnavailable
        if isinstance(e, HostUnavailable):
            print(f"faultline: {e}", file=sys.stderr)
            return NO_NAMESPACES
        raise


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        status = dispatch(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        if not stdout_closed():
            raise
        # The reader of our output went away (`faultline list | head -1`):
        # nothing left to say. Point stdout at /dev/null so that the flush
        # at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_STATUS
