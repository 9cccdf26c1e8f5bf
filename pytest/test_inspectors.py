"""The inspectors: a look at a host costs the host, sees the host's
processes and nothing else, and answers (never raises) when a process or
the server itself is gone. No timing is asserted here: bench/inspect_cost.py
measures the cost."""

import os
import signal
import subprocess

import pytest

from faultline import paths, procs
from faultline.echod import Echod
from faultline.host import Host
from faultline.server import Server, ServerCrashed, ServerLeftBehind, first_rows
from faultline.waiting import wait_until

pytestmark = pytest.mark.harness


def zoo(name):
    return str(paths.BUILD_DIR / "zoo" / name)


def shown(table):
    """A table for a failure message: its first rows, and how many more."""
    return "\n".join(first_rows(table.ps().splitlines(), "the table", limit=20))


def namespace_oracle(host):
    """The host's pids found the other way: every process of the machine
    whose PID namespace is the host's."""
    inode = os.stat(f"/proc/{host.init_pid}/ns/pid").st_ino
    return sorted(procs._pids_by_scan(inode))


def orphan_sleep(host):
    """A `sleep` whose parent exited: the host's init adopts it, and reaps
    it when it dies. Returns its pid."""
    launcher = host.spawn(["sh", "-c", "sleep 60 & echo $!"], name="launcher")
    assert launcher.wait() == 0, launcher.stderr()
    nspid = int(launcher.stdout())
    table = wait_until(lambda: (t := host.processes()) and any(
        r.nspid == nspid for r in t) and t, 5.0, f"the orphan (pid {nspid} in the host)")
    return next(r.pid for r in table if r.nspid == nspid)


def test_the_host_table_holds_the_hosts_processes_and_no_other(host):
    inside = host.spawn(["sleep", "60"], name="inside")
    # Same command outside: a look that scanned by name, or the machine,
    # would list it too.
    outside = subprocess.Popen(["sleep", "60"])
    try:
        wait_until(lambda: procs.state(outside.pid) == "S", 5.0, "the outside sleep")
        table = host.processes()
        assert table.pids() == namespace_oracle(host), (
            f"the host's own /proc and a scan of the machine disagree\n{shown(table)}")
        assert inside.pid in table and host.init_pid in table, shown(table)
        assert outside.pid not in table, (
            f"pid {outside.pid}, outside the host, is in its table\n{shown(table)}")
        assert outside.pid in procs.ProcessTable.machine(), "the machine scan misses it"
    finally:
        outside.kill()
        outside.wait()


def who(table):
    """What both ways of looking must agree on (state and flags change as
    a process runs)."""
    return [(r.pid, r.ppid, r.nspid, r.comm) for r in table]


def test_the_scan_fallback_finds_the_same_processes(host):
    host.spawn(["sh", "-c", "sleep 60 & exec sleep 61"], name="pair")
    wait_until(lambda: sorted(r.comm for r in host.processes()) == ["flhost", "sleep", "sleep"],
               5.0, "init and two sleeps", seen=lambda: shown(host.processes()))
    ns = os.open(f"/proc/{host.init_pid}/ns/pid", os.O_RDONLY)
    try:
        scanned = procs.ProcessTable._of_namespace(ns, host.init_pid, scan=True)
    finally:
        os.close(ns)
    assert who(scanned) == who(host.processes()), (
        f"scan:\n{shown(scanned)}\nhost's /proc:\n{shown(host.processes())}")
    assert "scanned" in scanned.scope, scanned.scope


def test_the_host_table_sees_a_zombie_and_how_it_ended(host):
    # sh forks a subshell that exits 3, then becomes `sleep`, which never
    # waits: the subshell stays a zombie of the sleep.
    parent = host.spawn(["sh", "-c", "(exit 3) & exec sleep 60"], name="parent")
    zombie, = wait_until(lambda: host.processes().zombies(parent.pid), 5.0,
                         "the unreaped subshell", seen=lambda: shown(host.processes()))
    assert zombie.state == "Z" and zombie.ppid == parent.pid, shown(host.processes())
    assert procs.exit_status(zombie.pid) == 3, shown(host.processes())
    assert procs.zombies(parent.pid) == [zombie], procs.tree(parent.pid)


def test_a_process_that_vanishes_mid_walk_is_left_out_without_raising(host, monkeypatch):
    victim = orphan_sleep(host)
    survivor = host.spawn(["sleep", "60"], name="survivor")
    real_info = procs.info
    killed = []

    def info_after_killing_the_victim(pid, nspid=None):
        # The walk has listed the victim; it dies and is reaped before its
        # turn to be read.
        if pid == victim and not killed:
            procs.send_signal(victim, signal.SIGKILL)
            wait_until(lambda: procs.state(victim) is None, 5.0, "the init to reap it")
            killed.append(pid)
        return real_info(pid, nspid)

    monkeypatch.setattr(procs, "info", info_after_killing_the_victim)
    table = host.processes()
    assert killed == [victim], f"the walk never reached pid {victim}\n{shown(table)}"
    assert victim not in table and survivor.pid in table, shown(table)


def test_a_process_gone_between_the_table_and_the_question_holds_nothing(host):
    victim = orphan_sleep(host)
    table = host.processes()
    assert victim in table, shown(table)
    procs.send_signal(victim, signal.SIGKILL)
    wait_until(lambda: procs.state(victim) is None, 5.0, "the init to reap it")
    assert table.open_fds(victim) == {} and table.socket_holders(1) == [], shown(table)
    assert procs.socket_inodes(victim) == set()
    assert procs.fd_table(victim) == f"  (pid {victim} is gone)"
    assert procs.children(victim) == [] and procs.pending_signals(victim) == 0


def test_a_closed_host_has_an_empty_table(hosts_possible, artifact_dir):
    host = Host("closing", artifact_dir)
    host.spawn(["sleep", "60"])
    assert len(host.processes()) == 2, shown(host.processes())
    host.close()
    assert len(host.processes()) == 0, shown(host.processes())


# --- Server's inspectors once the server is dead ---------------------------

INSPECTORS = ("ps", "fd_table", "fd_count", "children", "zombies", "sockets")


def inspect_all(server):
    return {name: getattr(server, name)() for name in INSPECTORS}


def test_server_inspectors_on_a_live_server_show_the_server(host):
    with Server(host, [zoo("fork_correct"), "9877"], 9877) as server:
        seen = inspect_all(server)
        assert server.ended() is None
    assert "has exited" not in seen["ps"] and f"{server.pid} " in seen["ps"], seen["ps"]
    assert "socket:[" in seen["fd_table"] and seen["fd_count"] >= 3, seen
    assert "LISTEN" in seen["sockets"], seen["sockets"]


def test_server_inspectors_on_a_dead_server_say_how_it_died(host):
    server = Server(host, [zoo("fork_correct"), "9877"], 9877).start()
    server.send_signal(signal.SIGUSR1)
    server.proc.wait(5.0)
    seen = inspect_all(server)
    died = f"server pid {server.pid} has exited: killed by signal 10 (SIGUSR1)"
    assert server.ended() == died
    assert f"({died})" in seen["ps"] and f"({died})" in seen["fd_table"], seen
    assert seen["fd_count"] == 0 and seen["children"] == [] == seen["zombies"], seen
    assert "LISTEN" not in seen["sockets"], seen["sockets"]
    assert server.terminate(check=False) == -signal.SIGUSR1
    assert str(server.ending) == "had already ended: killed by signal 10 (SIGUSR1)", server.ending


def test_a_server_behind_a_wrapper_is_read_from_its_zombie(host):
    # The wrapper never waits: the dead server stays its zombie, whose
    # exit_code is all that tells how it ended.
    server = Server(host, f"{zoo('fork_correct')} 9877 & exec sleep 60", 9877).start()
    assert server.pid != server.proc.pid
    server.send_signal(signal.SIGUSR1)
    wait_until(lambda: procs.state(server.pid) == "Z", 5.0, "the server's zombie",
               seen=server.ps)
    assert server.ended() == f"server pid {server.pid} has exited: killed by signal 10 (SIGUSR1)"
    assert "<defunct>" in server.ps(), server.ps()
    server.terminate(check=False)


def test_terminate_kills_a_server_that_ignores_sigterm_and_says_so(host):
    server = Server(host, [zoo("fork_ignores_sigterm"), "9877"], 9877).start()
    assert server.terminate(check=False, kill_after=0.2) == -signal.SIGKILL
    assert server.ending.killed and server.ending.grace == 0.2, server.ending
    assert str(server.ending).startswith(
        "still running 0.2 s after SIGTERM: sent SIGKILL, killed by signal 9 (SIGKILL)"), server.ending


def test_terminate_with_check_fails_a_server_that_needed_sigkill(host):
    server = Server(host, [zoo("fork_ignores_sigterm"), "9877"], 9877, exit_status=0)
    server.start()
    with pytest.raises(ServerCrashed, match="sent SIGKILL") as raised:
        server.terminate(kill_after=0.2)
    assert "killed by signal 9 (SIGKILL) after SIGTERM" in str(raised.value), raised.value


def test_terminate_of_a_server_that_stops_needs_no_sigkill(host):
    server = Server(host, [zoo("fork_correct"), "9877"], 9877).start()
    assert server.terminate(check=False) == -signal.SIGTERM
    assert not server.ending.killed and not server.ending.already, server.ending
    assert str(server.ending).startswith("killed by signal 15 (SIGTERM) "), server.ending


def test_the_fixture_counts_a_child_that_becomes_a_zombie_between_its_looks(host):
    # settle() looks for leftovers, then for anything under way; a child
    # that exits between the two looks is a zombie the first did not see
    # and the second does not count as under way. Made to happen here.
    server = Echod(host, reap="none").start()
    sock = host.connect(server.port)
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    child, = server.children()
    real_leftovers = server.leftovers
    first = []

    def leftovers_then_the_child_exits(table=None):
        found = real_leftovers(table)
        if not first:
            first.append(found)
            sock.close()
            wait_until(lambda: procs.state(child.pid) == "Z", 5.0, "the child's exit",
                       seen=server.ps)
        return found

    server.leftovers = leftovers_then_the_child_exits
    with pytest.raises(ServerLeftBehind, match="zombie children: 1"):
        server.__exit__(None, None, None)
    assert first == [{}], f"the first look already saw {first}"
