"""`faultline ladder PCAP [EVENTS...]`: the arguments and the run; cli.py
only registers the command. Needs no root and no build: it reads files."""

from pathlib import Path

from . import mermaid, model, svg, text

DESCRIPTION = """\
Draw each connection of a capture as a ladder diagram, with the events of
echod and echoc on the same time axis: SYN, data, FIN, RST between the two
sockets; accept, fork, faults, exits, signals and reaping on the process
lanes; zombies as lanes that go on until reaped. Prints the text ladder
(bounded in width and length); --svg writes a standalone SVG, --mermaid
prints Markdown mermaid blocks instead of the text."""


def add_arguments(parser):
    parser.add_argument("pcap", metavar="PCAP",
                        help="a pcap file, or an artifact folder (its *.pcap, "
                             "*.events.jsonl and snapshots.txt)")
    parser.add_argument("events", nargs="*", metavar="EVENTS",
                        help="JSON-lines event logs: echod's --events, echoc's --events")
    parser.add_argument("--snapshots", metavar="FILE",
                        help="the scenario engine's snapshots.txt: socket states "
                             "and zombies as ps and ss saw them")
    parser.add_argument("--svg", metavar="FILE", help="also write the SVG picture to FILE")
    parser.add_argument("--mermaid", action="store_true",
                        help="print Markdown with a mermaid sequenceDiagram per ladder "
                             "instead of the text")
    parser.add_argument("--port", type=int, metavar="P",
                        help="the server's port (default: from echod's listen event, "
                             "else the port the SYNs went to)")
    parser.add_argument("--width", type=int, default=text.WIDTH, metavar="N",
                        help=f"text width in columns (default {text.WIDTH})")
    parser.add_argument("--rows", type=int, metavar="N",
                        help=f"rows a ladder at most, the middle elided (default "
                             f"{text.ROWS}; with --mermaid {mermaid.ROWS})")


def picture_of(args):
    path = Path(args.pcap)
    if path.is_dir():
        if args.events or args.snapshots:
            raise model.InputError(f"{path}: a folder brings its own event logs and "
                                   f"snapshots; give files instead to choose them")
        return model.from_artifacts(path)
    return model.build([path], args.events, args.snapshots, args.port)


def run(args, out):
    """Raises model.InputError (a file it cannot read, a bad number): the
    caller makes it one line and exit status 2."""
    if args.width < 60 or (args.rows is not None and args.rows < 5):
        raise model.InputError("--width wants 60 columns or more, --rows 5 or more")
    import importlib.util
    if importlib.util.find_spec("scapy") is None:  # the pcap reader's, on a bare machine
        from .. import build
        build.install_deps()
    picture = picture_of(args)
    if args.svg:
        try:
            Path(args.svg).write_text(svg.document(picture))
        except OSError as e:
            raise model.InputError(f"--svg {args.svg}: {e.strerror}") from None
    if args.mermaid:
        print(mermaid.markdown(picture, args.rows or mermaid.ROWS), end="", file=out)
    else:
        print(text.render(picture, args.width, args.rows or text.ROWS), file=out)
    if args.svg:
        print(f"svg: {args.svg}", file=out)
    return 0
