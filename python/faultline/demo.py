"""./faultline demo: the seed experiments, each read from its scenario file
(fixtures/scenarios) and run on its own host by the scenario engine. A file
with a [demo] table is shown, in its `order`: the UNP 5.10 reapers
(`table = true`) as rows of one table, the others one verdict line each.
The verdict is the file's own, filled from what the run measured; a
scenario that fails or raises is a FAIL line with its reason, and the demo
goes on."""

import sys

from . import artifacts, build, scenario
from .host import HostUnavailable

# The evidence of a failure on the terminal: a screenful; report.txt has it all.
EVIDENCE_LINES = 40


def demo_scenarios():
    """[(path, spec)] of every scenario file with a [demo] table, in order."""
    chosen = []
    for path in scenario.all_scenarios():
        spec = scenario.load(path)
        if "demo" in spec:
            chosen.append((path, spec))
    return sorted(chosen, key=lambda ps: ps[1]["demo"]["order"])


def label(spec):
    return spec["demo"].get("label") or (scenario.markers(spec) or ["?"])[0]


def run_one(path, workdir):
    """(result, reason): reason is None when the phenomenon showed, else
    why not, in one line. HostUnavailable is the machine's, not the
    scenario's, and goes up."""
    try:
        result = scenario.run(path, workdir)
    except HostUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - any error is this scenario's FAIL line
        said = str(e).strip().splitlines()
        return None, f"{type(e).__name__}: {said[0] if said else 'no message'}"
    return result, (None if result.passed else result.reason())


def print_table(rows):
    """The reapers side by side: children, zombies, pcap, verdict."""
    print(f"{'reaper':<9}{'children':>8}{'zombies':>9}  {'pcap':<20}verdict")
    for name, result, reason in rows:
        seen = result.measured if result else {}
        pkts = f"{seen.get('handshakes', '?')} opened, {seen.get('closes', '?')} closed"
        verdict = f"FAIL: {reason}" if reason else result.verdict
        print(f"{name:<9}{seen.get('children', '?'):>8}{seen.get('zombies', '?'):>9}  "
              f"{pkts:<20}{verdict}")
    print("\nartifacts (pcap, event log, stdout/stderr of each process):")
    for name, result, _ in rows:
        kept = [p for p in (result.pcap, result.events) if p] if result else []
        for i, path in enumerate(kept):
            print(f"  {name if i == 0 else '':<8} {path}")


def print_line(spec, workdir, result, reason):
    mark, text = ("FAIL", reason) if reason else ("ok  ", result.verdict)
    print(f"  {mark} {label(spec):<11}{spec.get('source', ''):<13}{text}")
    print(f"  {'':<29}{workdir}/")


def explain(failed):
    """What each failure saw, bounded, on stderr."""
    for path, workdir, result, reason in failed:
        print(f"\n{path.stem}: the phenomenon did not show as expected: {reason}",
              file=sys.stderr)
        if result is not None:
            lines = "\n\n".join(result.failures).splitlines()
            print("\n".join(lines[:EVIDENCE_LINES]), file=sys.stderr)
            if len(lines) > EVIDENCE_LINES:
                print(f"... ({len(lines) - EVIDENCE_LINES} more lines)", file=sys.stderr)
        print(f"artifacts: {workdir}/", file=sys.stderr)


def run(chosen, root):
    """Run the chosen [(path, spec)] into root; print the table and the
    lines; returns the exit status (1 if any failed)."""
    table = [(p, s) for p, s in chosen if s["demo"].get("table")]
    lines = [(p, s) for p, s in chosen if not s["demo"].get("table")]
    failed = []
    if table:
        print("faultline demo: one client opens 5 connections and exits (UNP client-v2);")
        print("the server is stopped while its 5 children exit, so their SIGCHLDs merge")
        print("into one pending signal, then continued. What each reaper leaves:\n")
        rows = []
        for path, spec in table:
            workdir = root / path.stem
            result, reason = run_one(path, workdir)
            rows.append((label(spec), result, reason))
            if reason:
                failed.append((path, workdir, result, reason))
        print_table(rows)
    if lines:
        print("\nthe other seed experiments (one host each):\n")
        for path, spec in lines:
            workdir = root / path.stem
            result, reason = run_one(path, workdir)
            print_line(spec, workdir, result, reason)
            if reason:
                failed.append((path, workdir, result, reason))
    explain(failed)
    print_report(root)
    return 1 if failed else 0


def print_report(root):
    """report.html in the demo's folder (each scenario's ladder, a link to
    its own report) and in each scenario's."""
    from . import report
    try:
        print(f"\nreport (open it in a browser): {report.write(root)}")
    except (report.ReportError, OSError) as e:
        print(f"\nreport: not written: {e}")


def main(argv):
    if argv:
        print(f"faultline demo: unexpected argument '{argv[0]}' (it takes none)",
              file=sys.stderr)
        return 2
    build.ensure_built()
    try:
        return run(demo_scenarios(), artifacts.fresh_dir("demo"))
    except HostUnavailable as e:
        print(f"faultline demo: {e}", file=sys.stderr)
        return 1
    except scenario.ScenarioError as e:
        print(f"faultline demo: {e}", file=sys.stderr)
        return 2
