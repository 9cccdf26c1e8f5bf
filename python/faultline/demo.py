"""./faultline demo: the three reapers side by side on UNP's five-client
experiment, made deterministic, in one table."""

import sys

from . import artifacts, build, capture, experiments
from .host import Host, HostUnavailable

EXPECTED_ZOMBIES = {"none": 5, "wait": 4, "waitpid": 0}


def verdict(seen):
    lost = len(seen.zombies)
    if seen.reap == "none":
        return "zombies: no SIGCHLD handler (UNP server-v1)"
    if seen.reap == "wait":
        return (f"{'zombies' if lost else 'clean'}: one wait() per SIGCHLD, "
                f"{len(seen.sigchld_events)} signal for {len(seen.children)} exits "
                f"(UNP server-v2)")
    return (f"{'clean' if not lost else 'zombies'}: waitpid(WNOHANG) loop "
            f"reaps every exit (UNP server-v3)")


def packets(seen):
    conns = capture.conversations(capture.read_segments(seen.pcap), 9877)
    handshakes = sum(c.handshake for c in conns)
    closes = sum(c.closed for c in conns)
    return f"{handshakes} opened, {closes} closed"


# (label, source, experiment, arguments): one demo line each.
EXPERIMENTS = [
    ("premature", "UNP 5.12", experiments.premature_termination, ("block", "outside")),
    ("premature", "UNP 6.4", experiments.premature_termination, ("select", "outside")),
    ("sigpipe", "UNP 5.13", experiments.sigpipe_client, ("default",)),
    ("rst", "SO_LINGER 0", experiments.server_rst, ()),
    ("delay", "fork model", experiments.delayed_reads, ()),
    ("close_wait", "FreeBSD 7.7", experiments.close_wait, (True,)),
    ("reload", "FreeBSD 7.7", experiments.sighup_reload, ()),
    ("shutdown", "SIGTERM", experiments.sigterm_drain, ()),
    ("eintr", "UNP 5.9", experiments.eintr_survival, ()),
]


def run_experiments(root):
    """Each seed experiment on its own host; one line each."""
    print("\nthe other seed experiments (one host each):\n")
    failed = []
    for i, (label, source, run, args) in enumerate(EXPERIMENTS):
        workdir = root / f"{i + 1:02d}-{label}"
        with Host(label, workdir) as host:
            seen = run(host, *args)
        mark = "ok  " if seen.holds else "FAIL"
        print(f"  {mark} {label:<11}{source:<13}{seen.verdict}")
        print(f"  {'':<29}{workdir}/")
        if not seen.holds:
            failed.append(seen)
    for seen in failed:
        print(f"\n{seen.name}: the phenomenon did not show as expected\n{seen.evidence}",
              file=sys.stderr)
    return failed


def main(argv):
    build.ensure_built()
    root = artifacts.fresh_dir("demo")
    (root / "reapers").mkdir()
    print("faultline demo: one client opens 5 connections and exits (UNP client-v2);")
    print("the server is stopped while its 5 children exit, so their SIGCHLDs merge")
    print("into one pending signal, then continued. What each reaper leaves:\n")
    rows, surprises = [], []
    for reap in ("none", "wait", "waitpid"):
        try:
            with Host(f"demo-{reap}", root / "reapers" / reap) as host:
                seen = experiments.close_together(host, reap, deterministic=True)
        except HostUnavailable as e:
            print(f"faultline demo: {e}", file=sys.stderr)
            return 1
        rows.append((reap, len(seen.children), len(seen.zombies), packets(seen),
                     verdict(seen), seen))
        if len(seen.zombies) != EXPECTED_ZOMBIES[reap]:
            surprises.append(seen)

    print(f"{'reaper':<9}{'children':>8}{'zombies':>9}  {'pcap':<20}verdict")
    for reap, children, zombies, pkts, text, _ in rows:
        print(f"{reap:<9}{children:>8}{zombies:>9}  {pkts:<20}{text}")
    print("\nartifacts (pcap, event log, stdout/stderr of each process):")
    for reap, *_, seen in rows:
        print(f"  {reap:<8} {seen.pcap}")
        print(f"  {'':<8} {seen.events}")
    for seen in surprises:
        print(f"\nunexpected outcome for --reap {seen.reap} "
              f"(expected {EXPECTED_ZOMBIES[seen.reap]} zombies):\n{seen.evidence()}",
              file=sys.stderr)
    failed = run_experiments(root / "experiments")
    return 1 if surprises or failed else 0
