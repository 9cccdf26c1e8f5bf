"""The harness's own guarantees: hosts are isolated and leave nothing
behind, whatever happens to the test or to pytest itself."""

import json
import os
import signal
import subprocess
import sys

import pytest

from faultline import paths, procs
from faultline.echod import Echod
from faultline.host import Host, HostError
from faultline.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.harness


def netns_holders(inode):
    """Pids of processes whose network namespace has this inode."""
    holders = []
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                holders.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return holders


def alive(pids):
    """Pids still running. A killed process whose parent is gone is
    reparented to the machine's init and stays a zombie until that init
    reaps it, which some inits (this sandbox's) do lazily: dead is dead."""
    return [p for p in pids if (i := procs.info(p)) is not None and not i.dead]


def test_closing_a_host_kills_everything_on_it(hosts_possible, artifact_dir):
    host = Host("closing", artifact_dir)
    server = Echod(host, reap="none").start()
    sock = host.connect(server.port)
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
    wait_until(lambda: server.children(), 5.0, "a served child")
    server.stop()  # a stopped process must die too
    pids = [server.pid, host.outer_pid, host.init_pid] + [
        c.pid for c in server.children()]
    inode = host.netns_inode
    sock.close()
    host.close()
    assert alive(pids) == [], procs.ps_table(filter(None, map(procs.info, pids)))
    wait_until(lambda: not netns_holders(inode), 5.0,
               "no process left in the host's network namespace",
               seen=lambda: procs.ps_table(map(procs.info, netns_holders(inode))))


@pytest.mark.slow
def test_sigkilled_pytest_leaves_no_process_or_namespace(hosts_possible, artifact_dir):
    record = artifact_dir / "victim.json"
    env = dict(os.environ, FAULTLINE_VICTIM_RECORD=str(record))
    victim = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--timeout", "60", "--no-header",
         str(paths.REPO / "fixtures/selftest/victim_test.py")],
        cwd=paths.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(record.exists, 30.0, "the victim pytest to set up its host",
                   seen=lambda: f"victim exit status {victim.poll()}")
    finally:
        victim.kill()
        output = victim.communicate()[0].decode(errors="replace")
    seen = json.loads(record.read_text())
    wait_until(lambda: not alive(seen["pids"]), 5.0,
               "every process of the killed pytest's host to die",
               seen=lambda: procs.ps_table(map(procs.info, alive(seen["pids"])))
               + f"\nvictim output:\n{output}")
    wait_until(lambda: not netns_holders(seen["netns"]), 5.0,
               "the killed pytest's network namespace to be released")


def test_hosts_are_isolated_network_stacks(hosts_possible, artifact_dir):
    with Host("a", artifact_dir / "a") as a, Host("b", artifact_dir / "b") as b:
        assert a.netns_inode != b.netns_inode
        with Echod(a, port=9877), Echod(b, port=9877):
            pass  # both bound 9877: two stacks


def test_spawning_a_missing_program_says_which(host):
    with pytest.raises(HostError, match="no-such-program.*No such file"):
        host.spawn(["no-such-program"])


def test_a_wait_that_expires_names_what_it_waited_for():
    with pytest.raises(WaitTimeout, match="waiting for the impossible"):
        wait_until(lambda: False, 0.01, "the impossible", seen=lambda: "nothing")


def test_a_signal_kills_the_command_not_the_shim(host):
    proc = host.spawn(["sleep", "30"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM
