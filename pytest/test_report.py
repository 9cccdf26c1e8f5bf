"""report.html (python/faultline/report.py), as a person looks at it: the
page of each kind of artifact folder holds the verdict(s), a ladder per
connection whose lanes and arrows are the model's, the capture's
snapshot length, the tables and links; headless Chromium renders it
(a non-blank screenshot, the lanes and arrows in the DOM it built, no
console errors). `faultline report` says in one line what it cannot read;
`faultline run` and a failed check lead to theirs.

The page tests read fixtures/ladder/ (two kept seed runs) and need no
root. Each detector here has its case that must fail: a page without its
ladder, a page that logs an error, a blank screenshot.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from faultline import browser, paths, report
from faultline.ladder import model, svg

pytestmark = pytest.mark.pcap

FIXTURES = paths.REPO / "fixtures" / "ladder"
PREMATURE = FIXTURES / "unp-5.12-premature-block"
LOST_SIGCHLD = FIXTURES / "unp-5.10-lost-sigchld"
EXTERNAL = re.compile(r"https?:|<script|@import|url\(|src=", re.I)


def copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


def drawn(document):
    """(ladders, lanes, arrows, RSTs) an HTML page or a DOM holds."""
    return (len(re.findall(r'<g class="ladder"', document)),
            len(re.findall(r'<g class="lane"', document)),
            len(re.findall(r'<g class="arrow"', document)),
            len(re.findall(r'<g class="arrow" data-kind="rst"', document)))


def expected(folder):
    """What the model says the page must draw: its chosen ladders, each
    with the lanes the SVG draws."""
    ladders, _ = report.chosen_ladders(model.from_artifacts(folder))
    ladders = [ladder.drawn_lanes(svg.MAX_LANES) for ladder in ladders]
    return (len(ladders), sum(len(ladder.lanes) for ladder in ladders),
            sum(len(ladder.arrows()) for ladder in ladders),
            sum(len(ladder.arrows("rst")) for ladder in ladders))


def without_ladders(document):
    """The page with its <svg> elements taken out."""
    return re.sub(r"<svg.*?</svg>", "", document, flags=re.S)


# --- the page, on the kept seed runs -------------------------------------------

@pytest.mark.parametrize("folder", [PREMATURE, LOST_SIGCHLD], ids=lambda p: p.name)
def test_page_draws_every_chosen_ladder_of_the_model(tmp_path, folder):
    run = copy(folder, tmp_path)
    document = report.write(run).read_text()
    want = expected(run)
    # A handful of connections: the overview (if any) and every one drawn.
    assert want[0] == len(model.from_artifacts(run).ladders), want
    assert drawn(document) == want, f"(ladders, lanes, arrows, RSTs) drawn " \
                                    f"{drawn(document)}, the model's {want}: {run}"
    # Must fail: the page without its ladders.
    assert drawn(without_ladders(document)) != want


def test_page_is_self_contained_and_links_only_its_own_files(tmp_path):
    run = copy(PREMATURE, tmp_path)
    document = report.write(run).read_text()
    links = re.findall(r'href="([^"]*)"', document)
    assert EXTERNAL.findall(document.replace('xmlns="http://www.w3.org/2000/svg"', "")) \
        == [], EXTERNAL.findall(document)
    assert {"unp-5.12-premature-block.pcap", "echod.events.jsonl",
            "snapshots.txt"} <= set(links), links
    assert all((run / link).is_file() for link in links if not link.startswith("#")), links


def test_page_shows_the_snapshots_and_the_capture_kept_whole(tmp_path):
    run = copy(PREMATURE, tmp_path)
    document = report.write(run).read_text()
    assert document.count("<details") == 7 and "CLOSE_WAIT" in document, document[-3000:]
    assert "whole packets captured" in document and "was cut" not in document


def test_page_says_when_the_capture_cut_the_payload(tmp_path):
    """The same run captured with a 70-byte snapshot length (the headers
    and 4 bytes): the page names the length and how many segments lost
    payload."""
    from scapy.utils import PcapWriter, rdpcap
    run = copy(PREMATURE, tmp_path)
    pcap = run / "unp-5.12-premature-block.pcap"
    packets = rdpcap(str(pcap))
    pcap.unlink()
    with PcapWriter(str(run / "cut.pcap"), snaplen=70, linktype=1) as out:
        for p in packets:
            raw = bytes(p)
            short = p.__class__(raw[:70])
            short.time, short.wirelen = p.time, len(raw)
            out.write(short)
    document = report.write(run).read_text()
    cut = re.search(r"payload of (\d+) segments? was cut", document)
    assert "cut to its first 70 bytes" in document and cut, document[:3000]
    assert int(cut.group(1)) == 3, cut.group(0)   # first⏎ and its echo, second⏎


def test_scenario_verdict_heads_the_page(tmp_path):
    run = copy(PREMATURE, tmp_path)
    (run / "result.json").write_text(json.dumps({
        "scenario": "unp-5.12-premature-block", "title": "premature", "passed": False,
        "verdict": None, "failures": ["1 RST from the server (expected 2)\nevidence"]}))
    document = report.write(run).read_text()
    head = document[:document.index("<svg")]
    assert 'class="status FAIL"' in head and "1 RST from the server (expected 2)" in head, \
        head


def test_demo_page_lists_each_run_with_its_ladder_and_writes_theirs(tmp_path):
    """The demo's folder: a folder per scenario with its result.json. Its
    page has a verdict, a link and the first ladder of each; each scenario
    gets its own page too."""
    root = tmp_path / "demo"
    for folder, passed in ((PREMATURE, True), (LOST_SIGCHLD, False)):
        run = shutil.copytree(folder, root / folder.name)
        (run / "result.json").write_text(json.dumps({
            "scenario": folder.name, "title": folder.name, "passed": passed,
            "verdict": f"{folder.name} showed", "failures": [f"{folder.name} did not"]}))
    document = report.write(root).read_text()
    sections = re.findall(r'<section class="run" id="run-([\w.-]+)">(.*?)</section>',
                          document, re.S)
    assert [name for name, _ in sections] == [LOST_SIGCHLD.name, PREMATURE.name], sections
    for name, section in sections:
        assert f'href="{name}/report.html"' in section and drawn(section)[0] == 1, section
        assert (root / name / "report.html").is_file()
    assert 'class="status FAIL"' in sections[0][1] and "did not" in sections[0][1]
    assert 'class="status PASS"' in sections[1][1] and "showed" in sections[1][1]


def check_run(tmp_path):
    """A check run's folder as checkrun leaves it: a pass, and a FAIL whose
    folder holds the 5.12 capture."""
    root = tmp_path / "check"
    for name in ("eintr", "zombies"):
        (root / name).mkdir(parents=True)
    shutil.copy(PREMATURE / "unp-5.12-premature-block.pcap", root / "eintr" / "eintr.pcap")
    (root / "zombies" / "server.stdout").write_text("")
    checks = [{"name": "zombies", "title": "zombies reaped", "status": "pass",
               "summary": "5 children reaped", "evidence": "", "notes": []},
              {"name": "eintr", "title": "EINTR survived", "status": "FAIL",
               "summary": "accept() failed with EINTR", "notes": ["a note"],
               "evidence": "process table:\n  PID STAT\n  12 Z"}]
    (root / "report.json").write_text(json.dumps({
        "describe": "'srv' on port 9877", "protocol": "echo",
        "totals": {"checks": 2, "passed": 1, "failed": 1}, "checks": checks}))
    return root


def test_check_page_puts_the_failing_check_first_with_its_evidence_and_ladder(tmp_path):
    document = report.write(check_run(tmp_path)).read_text()
    sections = re.findall(r'<section class="check" id="check-([\w-]+)">(.*?)</section>',
                          document, re.S)
    assert [name for name, _ in sections] == ["eintr", "zombies"], sections
    failing, passing = sections[0][1], sections[1][1]
    assert "accept() failed with EINTR" in failing and "12 Z" in failing, failing[:2000]
    assert drawn(failing)[2] > 0 and drawn(failing)[3] == 1, drawn(failing)
    assert "<svg" not in passing and "server.stdout" in passing, passing


def test_text_ladder_of_a_capture_shows_its_troubled_connection_bounded():
    title, ladder = report.text_ladder(PREMATURE / "unp-5.12-premature-block.pcap", 9877,
                                       rows=8)
    assert "connection 1 of 1: a RST from the server" in title, title
    assert "RST" in ladder and len(ladder.splitlines()) <= 8 + 6, ladder


def test_report_command_writes_and_refuses_in_one_line(tmp_path):
    def faultline(*args):
        return subprocess.run([str(paths.REPO / "faultline"), "report", *map(str, args)],
                              capture_output=True, text=True, timeout=120)
    run = copy(PREMATURE, tmp_path)
    ok = faultline(run)
    assert ok.returncode == 0 and ok.stdout == f"report: {run / 'report.html'}\n", ok
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        if bad.name == "empty":
            bad.mkdir()
        proc = faultline(bad)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 \
            and str(bad) in proc.stderr and not proc.stdout, proc
        assert not (bad / "report.html").exists()


@pytest.mark.parametrize("reap, fails", [("none", True), ("waitpid", False)])
def test_a_failed_checks_terminal_evidence_ends_with_a_bounded_ladder(faultline_check,
                                                                    reap, fails):
    """echod without a reaper fails zombies: its evidence, as the terminal
    shows it, carries the text ladder of a connection of the capture, and
    stays within a screenful. With the waitpid loop it passes: no evidence,
    no ladder."""
    from faultline.echod import Echod
    from faultline.evidence import SCREEN_LINES
    verdict = faultline_check("zombies", lambda h: Echod(h, reap=reap))
    shown = f"{verdict.status} {verdict.summary}\n{verdict.evidence}\n{verdict.notes}"
    assert verdict.status == ("FAIL" if fails else "pass"), shown
    said = str(verdict.evidence)
    ladder = re.search(r"^ladder of connection \d+ of (\d+)", said, re.M)
    if not fails:
        assert ladder is None, shown
        return
    assert ladder and int(ladder.group(1)) >= 5 and "B→C SYN" in said, shown
    # Every section: its rows, its title and header lines.
    assert len(said.splitlines()) <= SCREEN_LINES + 2 * len(verdict.evidence.sections), \
        shown


@pytest.mark.parametrize("snaplen", [None, 200])
def test_a_checks_capture_keeps_whole_packets_unless_told(faultline_check, artifact_dir,
                                                          snaplen):
    """Whole packets by default (a check that moves little data), the
    length --snaplen gives otherwise; the checks that move megabytes keep
    512 bytes."""
    from faultline import capture, checks
    from faultline.checkrun import Options
    from faultline.echod import Echod
    verdict = faultline_check("early-rst", Echod, options=Options(snaplen=snaplen))
    pcap = artifact_dir / "early-rst" / "early-rst.pcap"
    assert verdict.passed and pcap.is_file(), f"{verdict.summary}: {artifact_dir}"
    assert capture.snaplen_of(pcap) == (snaplen or capture.WHOLE_FRAME), pcap
    volume = {c.name for c in checks.CHECKS if c.snaplen == capture.HEADERS_AND_SOME}
    assert volume == {"binary-echo", "concurrent-clients", "half-close",
                      "rst-mid-session"}, volume


@pytest.mark.parametrize("snaplen", ["10", "1000000"])
def test_check_refuses_a_snaplen_out_of_range_in_one_line(snaplen):
    proc = subprocess.run([str(paths.REPO / "faultline"), "check", "--server-cmd", "true",
                           "--snaplen", snaplen], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 \
        and "--snaplen" in proc.stderr and not proc.stdout, proc


# --- in a browser ----------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Skips, with the reason, where Chromium is missing or cannot run (a
    trivial page that it cannot load says the machine's, not the report's,
    fault)."""
    if browser.find() is None:
        pytest.skip("chromium is not installed (ci/install-deps installs it)")
    probe = tmp_path_factory.mktemp("chromium") / "probe.html"
    probe.write_text("<!DOCTYPE html><html><body><p>probe</p></body></html>")
    try:
        seen = browser.dom(probe)
    except browser.BrowserError as e:
        pytest.skip(f"chromium cannot run here: {e}")
    if "probe" not in seen.dom:
        pytest.skip(f"chromium cannot run here: it loaded no DOM from {probe}: "
                    f"{(seen.stderr.strip().splitlines() or [''])[-1]}")
    return browser


def blank(png):
    """Whether a PNG is one colour."""
    from PIL import Image
    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=4) or [None] * 5) == 1


def test_chromium_renders_the_report_with_its_lanes_and_arrows(chromium, tmp_path):
    run = copy(LOST_SIGCHLD, tmp_path)
    page = report.write(run)
    shot = tmp_path / "shot.png"
    seen = chromium.screenshot(page, shot)
    assert not blank(shot), f"a blank screenshot of {page}: {shot}"
    loaded = chromium.dom(page)
    want = expected(run)
    assert drawn(loaded.dom) == want, (f"(ladders, lanes, arrows, RSTs) in Chromium's "
                                       f"DOM {drawn(loaded.dom)}, the model's {want}; {page}")
    assert seen.console == loaded.console == [], seen.console + loaded.console


def test_chromium_detectors_see_a_page_without_ladders_logging_an_error(chromium,
                                                                       tmp_path):
    """The must-fail case of the test above: an empty page screenshots
    blank; a page whose script throws, and which has lost its ladders, is
    seen as such."""
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    chromium.screenshot(empty, tmp_path / "empty.png")
    assert blank(tmp_path / "empty.png")
    broken = tmp_path / "broken.html"
    broken.write_text(without_ladders(report.html(copy(LOST_SIGCHLD, tmp_path)))
                      .replace("</body>", "<script>throw new Error('kaput')</script></body>"))
    loaded = chromium.dom(broken)
    assert drawn(loaded.dom)[:3] == (0, 0, 0) and any("kaput" in line for line in
                                                       loaded.console), loaded.console


# --- the commands that write one -------------------------------------------------

def test_faultline_run_writes_a_report_with_the_premature_story(hosts_possible, tmp_path):
    env = dict(os.environ, FAULTLINE_ARTIFACTS=str(tmp_path))
    proc = subprocess.run([str(paths.REPO / "faultline"), "run",
                           "unp-5.12-premature-block"], capture_output=True, text=True,
                          timeout=120, env=env)
    said = re.search(r"^report: (.+)$", proc.stdout, re.M)
    assert proc.returncode == 0 and said, f"exit {proc.returncode}\n{proc.stdout[-3000:]}" \
                                          f"\n{proc.stderr[-2000:]}"
    document = open(said.group(1)).read()
    assert 'class="status PASS"' in document and drawn(document)[3] == 1, said.group(1)
    assert document.index('data-kind="fin" data-sender="server"') < document.index(
        'data-kind="data" data-sender="client"', document.index(
            'data-kind="fin" data-sender="server"')) < document.index('data-kind="rst"'), \
        said.group(1)


def test_docs_hold_a_screenshot_of_every_seed_experiment():
    """docs/screenshots/NAME.png for each scenario file with a [demo] table,
    none for a file that is gone, none blank: regenerate them with
    docs/screenshots/regenerate.py."""
    from faultline import demo
    folder = paths.REPO / "docs" / "screenshots"
    want = {path.stem for path, _ in demo.demo_scenarios()}
    have = {png.stem for png in folder.glob("*.png")}
    assert have == want, (f"missing {sorted(want - have)}, stale {sorted(have - want)}: "
                          f"sudo /usr/bin/python3 docs/screenshots/regenerate.py")
    assert [png.name for png in sorted(folder.glob("*.png")) if blank(png)] == []
    readme = (paths.REPO / "README.md").read_text()
    assert "](docs/screenshots/unp-5.12-premature-block.png)" in readme
