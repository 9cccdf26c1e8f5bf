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


def main(argv):
    build.ensure_built()
    root = artifacts.fresh_dir("demo")
    print("faultline demo: one client opens 5 connections and exits (UNP client-v2);")
    print("the server is stopped while its 5 children exit, so their SIGCHLDs merge")
    print("into one pending signal, then continued. What each reaper leaves:\n")
    rows, surprises = [], []
    for reap in ("none", "wait", "waitpid"):
        try:
            with Host(f"demo-{reap}", root / reap) as host:
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
    return 1 if surprises else 0
