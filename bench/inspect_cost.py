"""What a look at a host's processes costs: the old whole-machine scan of
/proc against the host-scoped table (procs.ProcessTable), on a crowded
host on a crowded machine.

    sudo /usr/bin/python3 bench/inspect_cost.py [ROUNDS] [--scale N] [--old-ps]

The host runs zoo/fork_children_never_exit with N (2,000) live children
(each connection leaves a child that never exits). The machine also runs
N unrelated `sleep` processes, started here in one process group and
killed by pid at the end (they would end by themselves after
SLEEP_SECONDS).
Each round measures every question both ways, interleaved and in
alternating order so that machine noise hits both alike; medians are
printed, nothing is asserted.

The questions: the server's children, its zombies, the holders of its
listening socket, the pids in the host, and one look asked all of them.
The old ps() (the server and its descendants) scanned the machine once
per process of the frontier: N + 1 scans, minutes at the default scale. It
is estimated (N + 1 times the old children question) unless --old-ps
measures it, once, at the end.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from faultline import build, paths, procs, tcpstate  # noqa: E402
from faultline.host import Host  # noqa: E402
from faultline.server import Server  # noqa: E402
from faultline.waiting import wait_until  # noqa: E402

SLEEP_SECONDS = 600
PORT = 9877


# --- the old inspectors, as procs.py and server.py had them (6cade59) ---------

def old_all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def old_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(b")") + 2:].split(maxsplit=2)[1])


def old_info(pid):
    # The old info() read stat and status; procs.info(pid) still does both.
    return procs.info(pid)


def old_children(pid):
    found = []
    for p in old_all_pids():
        if old_ppid(p) == pid:
            i = old_info(p)
            if i is not None and i.ppid == pid:
                found.append(i)
    return sorted(found, key=lambda i: i.pid)


def old_zombies(pid):
    return [c for c in old_children(pid) if c.state == "Z"]


def old_ps(pid):
    found, frontier = [], [pid]
    while frontier:
        kids = [c for p in frontier for c in old_children(p)]
        found += kids
        frontier = [k.pid for k in kids if k.state != "Z"]
    root = old_info(pid)
    return procs.ps_table(([root] if root else []) + found)


def old_netns_inode(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def old_pids_in_netns(inode):
    return [p for p in old_all_pids() if old_netns_inode(p) == inode]


def old_socket_holders(inode, pids):
    holders = []
    for pid in pids:
        try:
            if inode in procs.socket_inodes(pid):
                holders.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return holders


# --- the new ones: one look at the host -------------------------------------

def new_all_questions(host, server, listener):
    table = host.processes()
    return (table.children(server.pid), table.zombies(server.pid),
            table.socket_holders(listener), table.pids(), table.tree(server.pid))


def old_all_questions(host, server, listener):
    in_host = old_pids_in_netns(host.netns_inode)
    return (old_children(server.pid), old_zombies(server.pid),
            old_socket_holders(listener, in_host), in_host)


# --- the crowd --------------------------------------------------------------

def start_bystanders(n):
    """n `sleep` processes in one process group, outside any host."""
    first = subprocess.Popen(["sleep", str(SLEEP_SECONDS)], process_group=0,
                             stdin=subprocess.DEVNULL)
    crowd = [first]
    try:
        for _ in range(n - 1):
            crowd.append(subprocess.Popen(["sleep", str(SLEEP_SECONDS)],
                                          process_group=first.pid,
                                          stdin=subprocess.DEVNULL))
    except BaseException:
        stop_bystanders(crowd)
        raise
    return crowd


def stop_bystanders(crowd):
    for p in crowd:
        try:
            os.kill(p.pid, signal.SIGKILL)  # ours, and not reaped yet
        except ProcessLookupError:
            pass
    for p in crowd:
        p.wait()


def connect_and_close(n):
    """n connections, each closed at once: in the host's network namespace
    (Host.in_netns), so one thread makes them all."""
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        s.close()


def ms(f, *args):
    t = time.perf_counter()
    f(*args)
    return (time.perf_counter() - t) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=7)
    parser.add_argument("--scale", type=int, default=2000, metavar="N",
                        help="the server's children, and the sleeps outside (2000)")
    parser.add_argument("--old-ps", action="store_true",
                        help="run the old ps() once (minutes at the default scale)")
    opts = parser.parse_args()
    rounds, children = opts.rounds, opts.scale
    build.ensure_built()
    crowd = start_bystanders(children)
    try:
        with tempfile.TemporaryDirectory() as tmp, Host("bench", tmp) as host:
            server = Server(host, [str(paths.BUILD_DIR / "zoo/fork_children_never_exit"),
                                   str(PORT)], PORT).start()
            host.in_netns(connect_and_close, children)
            wait_until(lambda: len(server.children()) >= children, 120.0,
                       f"{children} children of the server",
                       seen=lambda: f"{len(server.children())} children")
            listener, = [s.inode for s in
                         tcpstate.in_state(host.outer_pid, "LISTEN", PORT)]
            questions = {
                "children": (lambda: old_children(server.pid), server.children),
                "zombies": (lambda: old_zombies(server.pid), server.zombies),
                # the same call both ways, as checks.py makes it
                "listener holders": (
                    lambda: old_socket_holders(listener,
                                               old_pids_in_netns(host.netns_inode)),
                    lambda: procs.socket_holders(listener,
                                                 procs.pids_in_netns(host.netns_inode))),
                "pids in the host": (lambda: old_pids_in_netns(host.netns_inode),
                                     lambda: procs.pids_in_netns(host.netns_inode)),
                "all of them, one look": (
                    lambda: old_all_questions(host, server, listener),
                    lambda: new_all_questions(host, server, listener)),
            }
            old = {q: [] for q in questions}
            new = {q: [] for q in questions}
            for r in range(rounds):
                for q, (old_f, new_f) in questions.items():
                    if r % 2:
                        new[q].append(ms(new_f))
                        old[q].append(ms(old_f))
                    else:
                        old[q].append(ms(old_f))
                        new[q].append(ms(new_f))
            new_ps = [ms(server.ps) for _ in range(rounds)]
            old_ps_ms = ms(old_ps, server.pid) if opts.old_ps else None
            machine = len(old_all_pids())
            in_host = len(host.processes())
            server.terminate(check=False, kill_after=1.0)
    finally:
        stop_bystanders(crowd)

    print(f"machine: {machine} processes, {children} of them sleeps started here; "
          f"host: {in_host} (the server, {children} children, the host's init); "
          f"rounds: {rounds}")
    print(f"{'question':<24} {'old scan (median)':>18} {'host table (median)':>20} {'ratio':>8}")
    for q in questions:
        mo, mn = statistics.median(old[q]), statistics.median(new[q])
        print(f"{q:<24} {mo:15.1f} ms {mn:17.1f} ms {mo / mn:7.1f}x")
    mn = statistics.median(new_ps)
    if old_ps_ms is None:
        old_ps_ms, how = (children + 1) * statistics.median(old["children"]), "estimated"
    else:
        how = "one run"
    print(f"{'ps (server + descendants)':<24} {old_ps_ms:15.1f} ms {mn:17.1f} ms "
          f"{old_ps_ms / mn:7.1f}x  (old: {how})")


if __name__ == "__main__":
    main()
