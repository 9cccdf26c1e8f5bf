"""Ladder diagrams (python/faultline/ladder): the model drawn from the seed
experiments' real artifacts, made here by the scenario engine, tells their
stories (UNP 5.12: FIN, then the client's line, then RST; UNP 5.10: five
exits, one SIGCHLD, four zombies never reaped); the three renderers draw
that model within their bounds; `faultline ladder` reads files and says in
one line when it cannot.

The renderer tests read fixtures/ladder/, artifacts kept from two seed runs,
and need no root. Each test has its case that must fail: the same question
asked of an input that lacks the phenomenon.
"""

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from faultline import paths, scenario
from faultline.ladder import mermaid, model, svg, text

pytestmark = pytest.mark.pcap

FIXTURES = paths.REPO / "fixtures" / "ladder"
PREMATURE = FIXTURES / "unp-5.12-premature-block"
LOST_SIGCHLD = FIXTURES / "unp-5.10-lost-sigchld"
PREMATURE_STORY = [("server", "fin"), ("client", "data"), ("server", "rst")]


def run_seed(name, artifact_dir):
    """A seed scenario run by the engine; its artifact folder."""
    workdir = artifact_dir / "run"
    result = scenario.run(scenario.SCENARIO_DIR / f"{name}.toml", workdir)
    assert result.passed, (f"the scenario itself failed, no ladder to judge:\n"
                           f"{result.report()}\n" + "\n".join(result.failures))
    return workdir


def shown(picture, where):
    """What the ladder looked like, for a failure message (bounded)."""
    return f"\n{text.render(picture, rows=30, ladders=3)}\nartifacts: {where}"


def without_rst(pcap, out):
    """A copy of the pcap without its RST segments."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap, wrpcap
    wrpcap(str(out), [p for p in rdpcap(str(pcap)) if not (TCP in p and p[TCP].flags.R)])
    return out


# --- the model, on artifacts the engine makes now ------------------------------

def test_premature_close_ladder_shows_fin_then_the_line_then_rst(hosts_possible,
                                                                  artifact_dir):
    run = run_seed("unp-5.12-premature-block", artifact_dir)
    picture = model.from_artifacts(run)
    assert len(picture.connections) == 1, shown(picture, run)
    ladder = picture.connections[0]
    assert ladder.shows_in_order(PREMATURE_STORY), shown(picture, run)

    pcap = run / "unp-5.12-premature-block.pcap"
    cut = model.build([without_rst(pcap, artifact_dir / "no-rst.pcap")],
                      [run / "echod.events.jsonl"]).connections[0]
    assert not cut.arrows("rst") and not cut.shows_in_order(PREMATURE_STORY), \
        f"a capture without the RST still shows one:\n{text.render(cut)}"


def test_a_scenario_capture_keeps_each_line_whole(hosts_possible, artifact_dir):
    """Scenarios capture whole packets (capture.WHOLE_FRAME): the ladder
    shows what each data segment carried, and says nothing was cut."""
    run = run_seed("unp-5.12-premature-block", artifact_dir)
    ladder = model.from_artifacts(run).connections[0]
    previews = [a.preview for a in ladder.arrows("data") if a.sender == "client"]
    assert previews == ['"first⏎"', '"second⏎"'], text.render(ladder)
    assert not any(a.cut for a in ladder.arrows()) and not ladder.notes, \
        text.render(ladder)


@pytest.mark.parametrize("name, reaped, zombies", [
    ("unp-5.10-lost-sigchld", 1, 4),     # one wait() per SIGCHLD
    ("unp-5.10-waitpid-loop", 5, 0),     # the loop: the case the zombies must fail
])
def test_merged_sigchld_ladder_shows_exits_one_signal_and_zombies(
        hosts_possible, artifact_dir, name, reaped, zombies):
    run = run_seed(name, artifact_dir)
    picture = model.from_artifacts(run)
    overview = picture.overview
    assert overview is not None and len(picture.connections) == 5, shown(picture, run)
    children = [lane for lane in overview.lanes if lane.key.startswith("pid:")]
    exits = [m for m in overview.marks("exit") if m.lane.startswith("pid:")]
    sigchld = [m for m in overview.marks("signal") if "SIGCHLD" in m.label]
    got = (len(children), len(exits), len(sigchld), len(overview.marks("reaped")),
           len(overview.zombie_lanes()))
    assert got == (5, 5, 1, reaped, zombies), (
        f"(children, exits, SIGCHLDs, reaped, zombie lanes) = {got}" + shown(picture, run))
    # A zombie lane never ends: it reaches the bottom of the overview and of
    # its own connection's ladder.
    for lane in overview.zombie_lanes():
        own = next(ladder for ladder in picture.connections
                   if any(other.key == lane.key for other in ladder.lanes))
        assert lane.reaped is None and own.lane(lane.key).zombie_at(own.end) \
            and lane.zombie_at(overview.end), shown(picture, run)


def test_a_cut_payload_is_said_to_be_cut(tmp_path):
    """Captured length below the wire length (a 512-byte snapshot length
    against a 1000-byte segment): the arrow and the ladder say so; the same
    segment captured whole says nothing."""
    whole = synthetic_pcap(tmp_path / "whole.pcap", data=b"x" * 1000)
    cut = synthetic_pcap(tmp_path / "cut.pcap", data=b"x" * 1000, kept=440)
    ladders = [model.build([p]).connections[0] for p in (whole, cut)]
    said = [(a.label, bool(ladder.notes)) for ladder in ladders
            for a in ladder.arrows("data")]
    assert said == [("data 1000 B", False), ("data 1000 B (cut to 440 B)", True)], said


def synthetic_pcap(path, data, kept=None):
    """A handshake and one data segment from 10.0.0.1:5000 to :7; the data
    segment's capture keeps only `kept` bytes of its payload."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter
    c, s = ("10.0.0.1", 5000), ("10.0.0.2", 7)

    def packet(t, src, dst, flags, seq, ack, payload=b""):
        raw = bytes(Ether() / IP(src=src[0], dst=dst[0])
                    / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
                    / payload)
        lost = 0 if kept is None else max(0, len(payload) - kept)
        return t, raw[:len(raw) - lost], len(raw)
    with PcapWriter(str(path)) as out:
        for t, raw, wire in [packet(1.0, c, s, "S", 100, 0),
                             packet(1.001, s, c, "SA", 500, 101),
                             packet(1.002, c, s, "A", 101, 501),
                             packet(1.003, c, s, "PA", 101, 501, data)]:
            frame = Ether(raw)
            frame.time, frame.wirelen = t, wire
            out.write(frame)
    return path


# --- the renderers, on the kept seed artifacts ----------------------------------

def without_rsts(picture):
    """The same picture with its RST arrows taken out."""
    for ladder in picture.ladders:
        ladder.items = [i for i in ladder.items
                        if not (isinstance(i, model.Arrow) and i.kind == "rst")]
    return picture


EXTERNAL = re.compile(r"https?:|href|<script|@import|url\(", re.I)


def external_references(document):
    """What in an SVG would fetch or run something: any URL but the
    namespace, a link, a script, an import."""
    return EXTERNAL.findall(document.replace('xmlns="http://www.w3.org/2000/svg"', ""))


@pytest.mark.parametrize("folder", [PREMATURE, LOST_SIGCHLD], ids=lambda p: p.name)
def test_svg_is_standalone_xml_with_the_model_lanes_and_arrows(folder):
    picture = model.from_artifacts(folder)
    document = svg.document(picture)
    root = ET.fromstring(document)
    groups = [g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    want = (sum(len(ladder.lanes) for ladder in picture.ladders),
            sum(len(ladder.arrows()) for ladder in picture.ladders),
            sum(len(ladder.arrows("rst")) for ladder in picture.ladders))
    rsts = document.count('data-kind="rst"')
    got = (groups.count("lane"), groups.count("arrow"), rsts)
    assert got == want, f"(lanes, arrows, RSTs) drawn {got}, in the model {want}"
    assert external_references(document) == [], external_references(document)

    # Must fail: an SVG that fetches an image; the picture without its RSTs.
    assert external_references(document.replace(
        "</svg>", '<image href="http://example.invalid/x.png"/></svg>'))
    doctored = svg.document(without_rsts(model.from_artifacts(folder)))
    assert doctored.count('class="arrow"') == want[1] - want[2]
    assert 'data-kind="rst"' not in doctored


def text_rows(rendered):
    """The time rows of each ladder in a text rendering: lines that start
    with a time or hold a gap/elision."""
    return [line for line in rendered.splitlines()
            if re.match(r"\s*\d+\.\d ", line) or re.match(r"\s+[|:]", line)]


def test_text_ladder_stays_within_its_width_and_length():
    overview = model.from_artifacts(LOST_SIGCHLD).overview
    rendered = text.render(overview, width=72, rows=12)
    lines = rendered.splitlines()
    assert max(map(len, lines)) <= 72, "\n".join(l for l in lines if len(l) > 72)
    rows = text_rows(rendered)
    assert len(rows) <= 12 and re.search(r"… \d+ more rows …", rendered), rendered
    # Beside its rows: a title, a legend and a header, a line for each
    # zombie lane and each note; nothing that grows with the events.
    assert len(lines) <= 12 + 3 + 2 * len(overview.lanes), rendered
    # Must fail: the ladder has far more rows than the bound, and a wider
    # rendering is wider than 72 columns.
    assert len(text_rows(text.render(overview, width=72, rows=1000))) > 12
    assert max(map(len, text.render(overview, width=140).splitlines())) > 72


MESSAGE = re.compile(r"^\s+[A-Z]+(->>|-x)[A-Z]+: ", re.M)


@pytest.mark.parametrize("folder", [PREMATURE, LOST_SIGCHLD], ids=lambda p: p.name)
def test_mermaid_has_one_message_per_arrow(folder):
    picture = model.from_artifacts(folder)
    for ladder in picture.ladders:
        diagram = mermaid.diagram(ladder)
        assert diagram.startswith("sequenceDiagram\n"), diagram[:200]
        heads = [m.group(1) for m in MESSAGE.finditer(diagram)]
        want = (len(ladder.arrows()), len(ladder.arrows("rst")))
        assert (len(heads), heads.count("-x")) == want, diagram
    # Must fail: without its RST, the premature ladder has no -x message.
    story = without_rsts(model.from_artifacts(PREMATURE)).connections[0]
    assert "-x" not in mermaid.diagram(story)


def test_the_picture_in_docs_is_the_one_the_command_draws():
    """docs/pictures/ holds what `faultline ladder` draws from the kept 5.12
    run: regenerate it with the command in the README's Pictures section."""
    kept = (paths.REPO / "docs" / "pictures" / "unp-5.12-premature-block.svg").read_text()
    drawn = svg.document(model.from_artifacts(PREMATURE))
    assert kept == drawn, ("docs/pictures/unp-5.12-premature-block.svg is stale: "
                           "./faultline ladder fixtures/ladder/unp-5.12-premature-block "
                           "--svg docs/pictures/unp-5.12-premature-block.svg")


# --- the command -------------------------------------------------------------------

def ladder_command(*args):
    return subprocess.run([str(paths.REPO / "faultline"), "ladder", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_ladder_command_prints_the_story_and_writes_the_svg(tmp_path):
    out = tmp_path / "ladder.svg"
    proc = ladder_command(PREMATURE / "unp-5.12-premature-block.pcap",
                          PREMATURE / "echod.events.jsonl", "--svg", out)
    said = f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0 and "RST" in proc.stdout and "SIGCHLD" in proc.stdout, said
    assert ET.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg", said


@pytest.mark.parametrize("name, content", [("missing.pcap", None),
                                           ("garbage.pcap", "not a capture\n"),
                                           ("empty.pcap", "")])
def test_ladder_command_refuses_a_bad_pcap_in_one_line(tmp_path, name, content):
    pcap = tmp_path / name
    if content is not None:
        pcap.write_text(content)
    proc = ladder_command(pcap)
    lines = proc.stderr.splitlines()
    said = (f"exit {proc.returncode}\nstdout {proc.stdout[-500:]!r}\n"
            f"stderr {proc.stderr[-2000:]}")
    assert proc.returncode == 2 and len(lines) == 1 and str(pcap) in lines[0], said
    assert "Traceback" not in proc.stderr and not proc.stdout, said
