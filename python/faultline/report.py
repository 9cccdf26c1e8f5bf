"""report.html: one page per artifact folder, to open in a browser.

A scenario run (`faultline run`), a `faultline check` run, a failed or
kept pytest test and the demo each leave a folder of files: a pcap, event
logs, ps and ss snapshots, outputs, a text report. The page puts them
together: the verdict(s) first, then the ladders (an overview and one per
connection, inline SVG), what the capture kept of each packet, the process
tables and socket snapshots, and a link to every file. For a check run,
one section per check, the failing ones first with their evidence.

Everything is in the one file (inline SVG and CSS, no script, nothing
fetched), so it opens the same from a CI artifact, a mail attachment or a
laptop without network. Only relative links to the folder's own files.

What each folder kind is, the page reads from the folder alone, so
`faultline report DIR` makes the same page again later:

  report.json (with "checks")   a `faultline check` run: checkrun.Report
  result.json                   a scenario run: scenario.run
  outcome.json                  a kept pytest test: the pytest plugin
  sub-folders holding one of these (the demo): a page that lists them

Reading a pcap costs scapy's import and its parsing: a check's ladders are
drawn only for the checks that failed.
"""

import json
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

from . import capture
from .ladder import model, svg, text

NAME = "report.html"
MAX_CONNECTIONS = 8        # connection ladders drawn in one section
TEXT_LINES = 400           # lines of one text file shown (snapshots, evidence)
LADDER_ROWS = svg.MAX_ROWS
CHECK_ORDER = {"FAIL": 0, "ERROR": 1, "pass": 2, "skip": 3}

STYLE = """
body { font-family: DejaVu Sans, Verdana, sans-serif; margin: 1.5em; color: #2e3436; }
p, pre, table, details { max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; }
h3 { font-size: 1.05em; }
pre { background: #f6f6f4; border: 1px solid #d3d7cf; padding: .6em; overflow-x: auto;
      font-size: 12px; line-height: 1.3; }
.status { display: inline-block; min-width: 3.5em; padding: 0 .4em; border-radius: 3px;
          font-weight: bold; text-align: center; color: #ffffff; }
.status.pass, .status.PASS, .status.passed { background: #4e9a06; }
.status.FAIL, .status.failed, .status.ERROR, .status.error { background: #cc0000; }
.status.skip, .status.skipped { background: #888a85; }
.verdict { font-size: 1.1em; }
.note { color: #555753; }
.capture.cut { color: #a40000; }
table.verdicts { border-collapse: collapse; }
table.verdicts td { padding: .15em .6em; border-bottom: 1px solid #eeeeec;
                    vertical-align: top; }
figure.ladder { margin: 1em 0; overflow-x: auto; }
section.check, section.run { border-top: 2px solid #d3d7cf; }
ul.files { columns: 2; font-size: 13px; }
"""


class ReportError(Exception):
    """A folder no report can be made of: one line, naming it."""


# --- the pieces of a page -------------------------------------------------------

def status_html(status):
    return f'<span class="status {escape(status)}">{escape(status)}</span>'


def href(path, base):
    return quote(str(Path(path).relative_to(base)))


def pre(lines, where=None, limit=TEXT_LINES):
    """Lines as a <pre>, at most `limit` of them; the rest is in `where`."""
    lines = list(lines)
    shown = lines[:limit]
    if len(lines) > limit:
        shown.append(f"... {len(lines) - limit} more lines"
                     + (f" (all of them in {where})" if where else ""))
    return f"<pre>{escape(chr(10).join(shown))}</pre>"


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def capture_notes(folder, picture):
    """What the capture kept of each packet: whole, or cut to its snapshot
    length, and how many segments lost payload to that."""
    out = []
    cut = sum(1 for ladder in picture.connections for a in ladder.arrows() if a.cut) \
        if picture else 0
    for pcap in sorted(Path(folder).glob("*.pcap")):
        try:
            snaplen = capture.snaplen_of(pcap)
        except OSError as e:
            out.append(f'<p class="capture note">{escape(pcap.name)}: {escape(e.strerror)}</p>')
            continue
        if snaplen is None:
            said = "not a classic pcap: snapshot length unknown"
        elif snaplen >= capture.WHOLE_FRAME:
            said = f"whole packets captured (snapshot length {snaplen} bytes)"
        else:
            said = f"each packet cut to its first {snaplen} bytes (snapshot length)"
        klass = "capture"
        if cut:
            said += (f"; the payload of {cut} segment{'s' if cut != 1 else ''} was cut: "
                     f"previews show only what was kept")
            klass += " cut"
        out.append(f'<p class="{klass}">{escape(pcap.name)}: {escape(said)}</p>')
    return out


def chosen_ladders(picture, limit=MAX_CONNECTIONS):
    """(the ladders to draw, a note on those left out): the overview, then
    at most `limit` connections, troubled ones (a RST, a zombie, no FIN)
    before the others, drawn in time order."""
    connections = picture.connections
    if len(connections) <= limit:
        chosen = connections
    else:
        troubled = [c for c in connections if c.trouble()]
        calm = [c for c in connections if not c.trouble()]
        keep = {id(c) for c in (troubled + calm)[:limit]}
        chosen = [c for c in connections if id(c) in keep]
    note = None
    if len(chosen) < len(connections):
        note = (f"{len(connections) - len(chosen)} more connections not drawn here "
                f"(faultline ladder FOLDER --svg FILE draws every one)")
    return ([picture.overview] if picture.overview else []) + chosen, note


def ladders_html(picture):
    """Each chosen ladder as its own inline SVG."""
    ladders, note = chosen_ladders(picture)
    out = []
    for ladder in ladders:
        trouble = ladder.trouble() if ladder is not picture.overview else None
        caption = escape(ladder.title) + (f" — {escape(trouble)}" if trouble else "")
        out.append(f'<figure class="ladder"><figcaption>{caption}</figcaption>'
                   f"{svg.document(ladder, LADDER_ROWS)}</figure>")
    if not ladders:
        out.append('<p class="note">no connection to draw (no TCP segment on the '
                   'server\'s port, no accept in an event log)</p>')
    out += [f'<p class="note">{escape(n)}</p>' for n in [note, *picture.notes] if n]
    return out


def picture_of(folder):
    """(the folder's Picture or None, a line saying why there is none)."""
    folder = Path(folder)
    if not any(folder.glob("*.pcap")) and not any(folder.glob("*.events.jsonl")):
        return None, None
    try:
        return model.from_artifacts(folder), None
    except model.InputError as e:
        return None, f"no ladder: {e}"


def snapshot_label(line):
    """'--- after step 2 type at 1796613931.281664' as 'after step 2 type at
    05:25:31.281 UTC' (the ladders' clock, read by a person)."""
    from datetime import datetime, timezone
    label = line.strip("- ") or "snapshot"
    found = re.search(r" at (\d+\.\d+)$", label)
    if found:
        when = datetime.fromtimestamp(float(found.group(1)), timezone.utc)
        label = label[:found.start()] + f" at {when:%H:%M:%S}.{when.microsecond // 1000:03d} UTC"
    return label


def snapshot_blocks(path):
    """snapshots.txt as (label, lines) per snapshot."""
    blocks = []
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("--- ") or not blocks:
            blocks.append((snapshot_label(line), []))
        else:
            blocks[-1][1].append(line)
    return blocks


def tables_html(folder, base):
    """The process tables and socket snapshots the run kept: the scenario
    engine's snapshots.txt (the last one open), a check's evidence.txt."""
    folder = Path(folder)
    out = []
    snapshots = folder / "snapshots.txt"
    if snapshots.is_file():
        blocks = snapshot_blocks(snapshots)
        out.append(f"<h3>Process table and sockets, after each step "
                   f"({len(blocks)} snapshots)</h3>")
        for i, (label, lines) in enumerate(blocks):
            opened = " open" if i == len(blocks) - 1 else ""
            out.append(f"<details{opened}><summary>{escape(label)}</summary>"
                       f"{pre(lines, href(snapshots, base))}</details>")
    return out


def files_html(folder, base):
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name != NAME)
    if not files:
        return []
    items = [f'<li><a href="{href(p, base)}">{escape(p.name)}</a> '
             f'<span class="note">({p.stat().st_size} B)</span></li>' for p in files]
    return ["<h3>Files</h3>", '<ul class="files">', *items, "</ul>"]


def run_body(folder, base, ladders=True):
    """A run folder's ladders, capture notes, tables and files."""
    out = []
    picture, why = picture_of(folder) if ladders else (None, None)
    if picture is not None:
        out += capture_notes(folder, picture)
        out += ["<h3>Ladders</h3>", *ladders_html(picture)]
    elif why:
        out.append(f'<p class="note">{escape(why)}</p>')
    out += tables_html(folder, base)
    out += files_html(folder, base)
    return out


def page(title, body):
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        *body, "</body>", "</html>", ""])


# --- the kinds of folder ---------------------------------------------------------

def check_page(folder, data):
    """A `faultline check` run: the verdicts, then one section per check,
    failing ones first, each with its evidence, ladders and files."""
    totals = data.get("totals", {})
    results = sorted(data.get("checks", []),
                     key=lambda c: CHECK_ORDER.get(c.get("status"), 9))
    body = [f"<h1>faultline check: {escape(data.get('describe', ''))}</h1>",
            f'<p class="verdict">{totals.get("checks", 0)} checks: '
            f'{totals.get("passed", 0)} passed, {totals.get("failed", 0)} failed, '
            f'{totals.get("errors", 0)} errors, {totals.get("skipped", 0)} skipped'
            f'{" (interrupted)" if data.get("interrupted") else ""}; protocol '
            f'{escape(str(data.get("protocol", "")))}; started '
            f'{escape(str(data.get("started", "")))}</p>',
            '<table class="verdicts">']
    for c in results:
        body.append(f'<tr><td>{status_html(c["status"])}</td><td><a href="#check-'
                    f'{escape(c["name"])}">{escape(c["name"])}</a></td>'
                    f'<td>{escape(c.get("summary", ""))}</td></tr>')
    body.append("</table>")
    for c in results:
        failed = c["status"] in ("FAIL", "ERROR")
        body += [f'<section class="check" id="check-{escape(c["name"])}">',
                 f'<h2>{status_html(c["status"])} {escape(c["name"])}: '
                 f'{escape(c.get("title", ""))}</h2>',
                 f'<p class="verdict">{escape(c.get("summary", ""))}</p>']
        body += [f'<p class="note">note: {escape(n)}</p>' for n in c.get("notes", [])]
        if failed and c.get("evidence"):
            body += ["<h3>Evidence</h3>", pre(c["evidence"].splitlines(), "evidence.txt")]
        workdir = folder / c["name"]
        if workdir.is_dir():
            inner = run_body(workdir, folder, ladders=failed)
            body += inner if failed else ["<details><summary>files</summary>", *inner,
                                          "</details>"]
        body.append("</section>")
    body += files_html(folder, folder)
    return page(f"faultline check: {data.get('describe', '')}", body)


def run_verdict(folder):
    """(title, status, lines) of a scenario run's or a test's folder, from
    result.json or outcome.json; None for a folder that holds neither."""
    result = read_json(folder / "result.json")
    if result is not None:
        status = "PASS" if result.get("passed") else "FAIL"
        lines = [result.get("verdict") or ""] if result.get("passed") else \
            result.get("failures", [])
        return (f"{result.get('scenario')}: {result.get('title', '')}", status,
                [line for line in lines if line])
    outcome = read_json(folder / "outcome.json")
    if outcome is not None:
        return (outcome.get("test", folder.name), outcome.get("outcome", "?"),
                [outcome["longrepr"]] if outcome.get("longrepr") else [])
    return None


def runs_under(folder):
    """The run folders under this one, in the demo's order (a scenario's
    [demo] order), then by name."""
    def order(run):
        found = (read_json(run / "result.json") or {}).get("demo_order")
        return (found is None, found or 0, run.name)
    return sorted((p for p in folder.iterdir() if p.is_dir() and run_verdict(p)), key=order)


PART_FILES = ("*.pcap", "*.events.jsonl", "snapshots.txt", "evidence.txt")


def parts_under(folder):
    """Sub-folders that belong to this run (a test's faultline_check
    folder, a host's files): their own pcap, logs or evidence."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not run_verdict(p)
                  and any(any(p.glob(pattern)) for pattern in PART_FILES))


def part_html(part, base):
    """A sub-folder's section: its evidence, ladders, tables and files."""
    out = [f'<section class="run" id="part-{escape(part.name)}">',
           f"<h2>{escape(part.name)}/</h2>"]
    evidence = part / "evidence.txt"
    if evidence.is_file():
        out += ["<h3>Evidence</h3>",
                pre(evidence.read_text(errors="replace").splitlines(), href(evidence, base))]
    return out + run_body(part, base) + ["</section>"]


def run_page(folder):
    """A scenario run, a test, or a folder of them (the demo)."""
    said = run_verdict(folder)
    runs = runs_under(folder)
    if said is None and not runs and not parts_under(folder) and not any(
            any(folder.glob(pattern)) for pattern in PART_FILES):
        raise ReportError(f"{folder}: no pcap, event log, result.json, outcome.json "
                          f"or report.json in it: not a faultline artifact folder")
    if said is not None:
        title, status, lines = said
    else:
        passed = sum(1 for run in runs if run_verdict(run)[1] in ("PASS", "passed"))
        title, status, lines = folder.name, None, []
        if runs:
            lines = [f"{len(runs)} runs: {passed} passed, {len(runs) - passed} failed"]
    body = [f"<h1>{status_html(status) + ' ' if status else ''}{escape(title)}</h1>"]
    for line in lines:
        body.append(pre(line.splitlines(), "report.txt") if "\n" in line
                    else f'<p class="verdict">{escape(line)}</p>')
    report_txt = folder / "report.txt"
    if report_txt.is_file() and said is not None:
        body.append("<details><summary>the run's report</summary>"
                    f"{pre(report_txt.read_text(errors='replace').splitlines())}</details>")
    body += run_body(folder, folder)
    for part in parts_under(folder):
        body += part_html(part, folder)
    if runs:
        body.append('<table class="verdicts">')
        for run in runs:
            title, status, lines = run_verdict(run)
            body.append(f'<tr><td>{status_html(status)}</td><td><a href="#run-'
                        f'{escape(run.name)}">{escape(run.name)}</a></td><td>'
                        f'{escape((lines or [""])[0].splitlines()[0] if lines else "")}'
                        f'</td></tr>')
        body.append("</table>")
    for run in runs:
        title, status, lines = run_verdict(run)
        body += [f'<section class="run" id="run-{escape(run.name)}">',
                 f"<h2>{status_html(status)} {escape(title)}</h2>"]
        body += [f'<p class="verdict">{escape(line.splitlines()[0])}</p>'
                 for line in lines[:1]]
        body.append(f'<p><a href="{href(run / NAME, folder)}">its report</a></p>')
        picture, why = picture_of(run)
        if picture is not None:
            first = picture.overview or (picture.connections or [None])[0]
            if first is not None:
                body.append(f'<figure class="ladder"><figcaption>{escape(first.title)}'
                            f'</figcaption>{svg.document(first, LADDER_ROWS)}</figure>')
        body.append("</section>")
    return page(title, body)


def html(folder):
    """The page for an artifact folder. Raises ReportError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    data = read_json(folder / "report.json")
    if isinstance(data, dict) and "checks" in data:
        return check_page(folder, data)
    return run_page(folder)


def write(folder):
    """Write report.html into the folder, and into each run folder under
    it (the demo's scenarios); returns the folder's report path. Raises
    ReportError."""
    folder = Path(folder)
    document = html(folder)
    for run in runs_under(folder) if folder.is_dir() else []:
        (run / NAME).write_text(html(run))
    path = folder / NAME
    try:
        path.write_text(document)
    except OSError as e:
        raise ReportError(f"{path}: cannot write it: {e.strerror}") from None
    return path


def text_ladder(pcap, port, width=text.WIDTH, rows=16):
    """The text ladder of the connection that shows the trouble (a RST, a
    zombie, no FIN), or the first one, and a title saying which: for the
    terminal evidence of a failed check. None when there is no connection."""
    picture = model.build([pcap], server_port=port)
    if not picture.connections:
        return None
    troubled = [c for c in picture.connections if c.trouble()]
    ladder = (troubled or picture.connections)[0]
    number = picture.connections.index(ladder) + 1
    why = f": {ladder.trouble()}" if ladder.trouble() else ""
    title = (f"ladder of connection {number} of {len(picture.connections)}{why} "
             f"(every one: faultline ladder {Path(pcap).parent})")
    return title, text.render(ladder, width, rows)
