"""python3 -m faultline COMMAND: the Python half of ./faultline."""

import argparse
import sys

from . import build

USAGE = """usage: python3 -m faultline COMMAND
  demo                           the reapers and the seed experiments
  build                          configure and compile
  check --server-cmd CMD [--port P] [--check NAME]...
                                 put any server under every check
  run FILE|NAME                  run one scenario (fixtures/scenarios)
  list                           the scenarios, one line each"""


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse with faultline's one-line usage errors (exit 2)."""

    def error(self, message):
        raise UsageError(message)


def check_command(argv):
    from . import artifacts, checks
    from .host import HostUnavailable
    from .server import Server

    parser = Parser(prog="faultline check", add_help=True,
                    description="Run every check that applies to any TCP echo "
                                "server against CMD, each on a fresh host.")
    parser.add_argument("--server-cmd", required=True, metavar="CMD",
                        help="the command that starts the server (shell syntax allowed)")
    parser.add_argument("--port", type=int, default=9877, metavar="P",
                        help="the TCP port it listens on (default 9877)")
    parser.add_argument("--check", action="append", metavar="NAME",
                        help="run only these checks (repeatable); --list shows them")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for c in checks.CHECKS:
            print(f"{c.name:<19}{c.title}")
        return 0
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port wants a number from 1 to 65535, not {args.port}")
    try:
        chosen = checks.by_name(args.check) if args.check else None
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    build.ensure_built()
    root = artifacts.fresh_dir("check")

    def make(host):
        return Server(host, args.server_cmd, args.port)
    try:
        checks.preflight(make, root / "preflight")
        failures = checks.run_against(
            make, f"'{args.server_cmd}' on port {args.port}", root, chosen)
    except HostUnavailable as e:
        print(f"faultline check: {e}", file=sys.stderr)
        return 1
    except checks.NotAServer as e:
        print(f"faultline check: {e}", file=sys.stderr)
        return 2
    print(f"artifacts: {root}/")
    return 1 if failures else 0


def list_command(argv):
    from . import scenario
    if argv:
        raise UsageError(f"unexpected argument '{argv[0]}'")
    for path in scenario.all_scenarios():
        print(scenario.summary_line(path))
    return 0


def run_command(argv):
    from pathlib import Path
    from . import artifacts, scenario
    from .host import HostUnavailable
    if len(argv) != 1:
        raise UsageError("expected one scenario: a .toml file or a name from "
                         "'./faultline list'")
    path = Path(argv[0])
    if not path.exists() and not path.suffix:
        path = scenario.SCENARIO_DIR / f"{argv[0]}.toml"
    try:
        scenario.load(path)
    except scenario.ScenarioError as e:
        raise UsageError(str(e)) from None
    build.ensure_built()
    try:
        result = scenario.run(path, artifacts.fresh_dir("run", path.stem))
    except HostUnavailable as e:
        print(f"faultline run: {e}", file=sys.stderr)
        return 1
    print(result.report())
    for failure in result.failures:
        print("\n" + failure)
    return 0 if result.passed else 1


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "build":
            build.ensure_built(quiet=False)
            return 0
        if command == "demo":
            from . import demo
            return demo.main(rest)
        if command == "check":
            return check_command(rest)
        if command == "run":
            return run_command(rest)
        if command == "list":
            return list_command(rest)
    except UsageError as e:
        hint = "./faultline list" if command == "run" else f"./faultline {command} --help"
        print(f"faultline {command}: {e} (try '{hint}')", file=sys.stderr)
        return 2
    except build.BuildError as e:
        print(f"faultline: {e}", file=sys.stderr)
        return 1
    print(f"faultline: unknown command '{command}' (try './faultline help')",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
