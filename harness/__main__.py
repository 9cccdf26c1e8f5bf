"""python3 -m harness COMMAND: the Python half of ./faultline."""

import sys

from . import build


def usage(stream):
    print("usage: python3 -m harness {demo|build}", file=stream)


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        usage(sys.stdout)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "build":
            build.ensure_built(quiet=False)
            return 0
        if command == "demo":
            from . import demo
            return demo.main(rest)
    except build.BuildError as e:
        print(f"faultline: {e}", file=sys.stderr)
        return 1
    print(f"faultline: unknown command '{command}' (try 'faultline help')",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
