"""The harness's own guarantees: hosts are isolated and leave nothing
behind, whatever happens to the test or to pytest itself."""

import json
import os
import pwd
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from faultline import paths, procs
from faultline.clients import echo
from faultline.echod import Echod
from faultline.host import Host, HostError
from faultline.server import ServerCrashed, ServerLeftBehind
from faultline.waiting import WaitTimeout, wait_until, wait_until_written

pytestmark = pytest.mark.harness


def alive(pids):
    """Pids still running. A killed process whose parent is gone is
    reparented to the machine's init and stays a zombie until that init
    reaps it, which some inits (this sandbox's) do lazily: dead is dead."""
    return [p for p in pids if (i := procs.info(p)) is not None and not i.dead]


def test_closing_a_host_kills_everything_on_it(hosts_possible, artifact_dir):
    host = Host("closing", artifact_dir)
    # Closing the host ends the server: the kernel SIGKILLs it, stopped or not.
    with Echod(host, reap="none", stopped_by_test=True,
               exit_status=-signal.SIGKILL) as server:
        sock = host.connect(server.port)
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        wait_until(lambda: server.children(), 5.0, "a served child")
        server.stop()  # a stopped process must die too
        pids = [server.pid, host.outer_pid, host.init_pid] + [
            c.pid for c in server.children()]
        sock.close()
        with host.pin_netns() as netns:
            host.close()
            assert alive(pids) == [], procs.ps_table(filter(None, map(procs.info, pids)))
            wait_until(lambda: not netns.pids(), 5.0,
                       "no process left in the host's network namespace",
                       seen=lambda: procs.ps_table(map(procs.info, netns.pids())))


def namespace_numbered(inode):
    """Whether some process is in a namespace, of any kind, numbered inode."""
    for pid in (d for d in os.listdir("/proc") if d.isdigit()):
        try:
            kinds = os.listdir(f"/proc/{pid}/ns")
            if any(os.stat(f"/proc/{pid}/ns/{k}").st_ino == inode for k in kinds):
                return True
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return False


def number_given_again(inode, seconds):
    """Whether a namespace made within `seconds` is given number `inode`:
    one the probe makes, or one made meanwhile by anyone else (the other
    worker's next host, which keeps it while its test runs)."""
    deadline = time.monotonic() + seconds
    while True:
        left = min(1.0, deadline - time.monotonic())
        probe = subprocess.run(
            [sys.executable, str(paths.REPO / "fixtures/selftest/namespace_numbers.py"),
             str(inode), f"{max(left, 0.05):.2f}"], capture_output=True, text=True,
            timeout=seconds + 30)
        assert probe.returncode in (0, 1), f"the probe failed: {probe.stderr.strip()}"
        if probe.returncode == 0 or namespace_numbered(inode):
            return True
        if time.monotonic() >= deadline:
            return False


def test_a_closed_hosts_namespace_number_names_it_alone_while_pinned(
        hosts_possible, artifact_dir):
    # Looking for a closed host's leftovers by its network namespace's
    # inode found the spare host's init: the kernel had given the freed
    # number to the namespace made next. A pin keeps the number.
    host = Host("pinned", artifact_dir)
    netns = host.pin_netns()
    try:
        host.close()
        assert not number_given_again(netns.inode, 1.0), (
            f"net:[{netns.inode}], pinned, was given to another namespace")
        assert netns.pids() == [], procs.ps_table(map(procs.info, netns.pids()))
    finally:
        netns.close()
    # Non-vacuous: unpinned, the number does come round again.
    assert number_given_again(netns.inode, 10.0), (
        f"net:[{netns.inode}] was not given again within 10 s once unpinned")


def test_a_closed_hosts_namespace_cannot_be_pinned_after(hosts_possible, artifact_dir):
    """After close() its keeper's pid may be anyone's: pinning then could
    hold another namespace."""
    host = Host("late-pin", artifact_dir)
    host.close()
    with pytest.raises(HostError, match="pin its namespace before"):
        host.pin_netns()


@pytest.mark.slow
def test_sigkilled_pytest_leaves_no_process_or_namespace(hosts_possible, artifact_dir):
    record = artifact_dir / "victim.json"
    env = dict(os.environ, FAULTLINE_VICTIM_RECORD=str(record))
    victim = subprocess.Popen(
        # --no-build: this session built already, and the checkout may not
        # be this user's to write in (the suite run as nobody).
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "--timeout", "60", "--no-header", "--no-build",
         str(paths.REPO / "fixtures/selftest/victim_test.py")],
        cwd=paths.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    netns = None
    try:
        wait_until(record.exists, 30.0, "the victim pytest to set up its host",
                   seen=lambda: f"victim exit status {victim.poll()}")
        seen = json.loads(record.read_text())
        netns = procs.NetnsPin(seen["keeper"])
        assert netns.inode == seen["netns"], seen
    finally:
        victim.kill()
        output = victim.communicate()[0].decode(errors="replace")
    with netns:
        wait_until(lambda: not alive(seen["pids"]), 5.0,
                   "every process of the killed pytest's host to die",
                   seen=lambda: procs.ps_table(map(procs.info, alive(seen["pids"])))
                   + f"\nvictim output:\n{output}")
        wait_until(lambda: not netns.pids(), 5.0,
                   "no process left in the killed pytest's network namespace",
                   seen=lambda: procs.ps_table(map(procs.info, netns.pids())))


def with_token(prefix):
    """{pid: token} of the live processes whose environment holds
    FAULTLINE_LEAK_TOKEN=PREFIX..."""
    marker = f"FAULTLINE_LEAK_TOKEN={prefix}".encode()
    found = {}
    for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                for var in f.read().split(b"\0"):
                    if var.startswith(marker):
                        found[pid] = var.split(b"=", 1)[1].decode()
        except OSError:  # gone, or not ours to read
            pass
    return {pid: t for pid, t in found.items() if pid in alive([pid])}


def test_a_detached_leftover_carrying_the_token_is_found():
    """The test below can fail: a process that escaped the harness (its own
    session, its parent gone) still carries the token and is found."""
    prefix = f"{os.getpid()}-detector-"
    leftover = subprocess.Popen(["sleep", "30"], start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env=dict(os.environ, FAULTLINE_LEAK_TOKEN=f"{prefix}0"))
    try:
        # Popen returns once the child execs, but /proc/PID/environ shows
        # the new environment only when exec has laid it out: wait for it.
        found = wait_until(lambda: with_token(prefix), 5.0, "the leftover's token")
        assert found == {leftover.pid: f"{prefix}0"}, found
    finally:
        leftover.kill()
        leftover.wait()
    assert with_token(prefix) == {}, "a dead leftover is not a leak"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_harness_killed_at_any_instant_leaves_nothing(hosts_possible, artifact_dir):
    """SIGKILL the harness at 200 random instants of a host's life (the
    host made, a capture, echod, a served connection, all torn down): no
    process it started may outlive it (their namespaces go with them)."""
    kills, seed = 200, int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    prefix = f"{os.getpid()}-{seed}-"
    zygote = subprocess.Popen(
        [sys.executable, str(paths.REPO / "fixtures/selftest/harness_zygote.py"),
         str(artifact_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))

    def life(token, kill_after=None):
        """One harness's life, killed KILL_AFTER seconds in; its exit status."""
        zygote.stdin.write(f"go {prefix}{token}\n")
        harness = int(zygote.stdout.readline())
        started = time.monotonic()
        if kill_after is not None:
            time.sleep(kill_after)  # the random instant itself, not a wait for state
            os.kill(harness, signal.SIGKILL)
        zygote.stdin.write("reap\n")
        status = int(zygote.stdout.readline().split()[2])
        return status, time.monotonic() - started

    try:
        # How long a whole life takes here and now: the kills spread over it.
        whole = sorted(life(f"whole{n}")[1] for n in range(3))[1]
        statuses = [life(n, rng.uniform(0.0, whole))[0] for n in range(kills)]
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    raised = zygote.stderr.read()
    killed = statuses.count(-signal.SIGKILL)
    assert not raised and set(statuses) <= {0, -signal.SIGKILL}, (
        f"a harness ended other than by the kill or its end (seed {seed}): "
        f"{sorted(set(statuses))}\n{raised[-2000:]}")
    assert killed >= kills // 2, (f"only {killed} of {kills} kills landed before the "
                                  f"harness's end ({whole:.3f} s a life; seed {seed})")
    def left():
        return (procs.ps_table(map(procs.info, with_token(prefix)))
                + f"\ntokens: {sorted(set(with_token(prefix).values()))[:10]}")
    wait_until(lambda: not with_token(prefix), 10.0,
               f"every process of {killed} killed harnesses to die (seed {seed})",
               seen=left)
    # A process caught mid-exec shows its parent's environment for an
    # instant: a second scan, milliseconds later, would see its token.
    assert not with_token(prefix), f"a leftover surfaced after a clean scan:\n{left()}"


def credentials(pid):
    """The Uid, Gid, CapEff, CapPrm, CapBnd... and NoNewPrivs lines of a
    process's status."""
    with open(f"/proc/{pid}/status") as f:
        return {k: v.split() for k, _, v in (line.partition(":") for line in f)
                if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapAmb", "NoNewPrivs")}


SOCAT_ECHO = "socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat"


@pytest.mark.parametrize("user", [None, "nobody"], ids=["as-root", "as-nobody"])
def test_a_server_run_as_a_user_has_its_uid_and_no_capabilities(host, faultline_server,
                                                                 user):
    """Server(user=...) drops the server to that user: its uids and gids,
    no groups, no capability, no_new_privs, and still a port below 1024 on
    its host. Without user=, the same server keeps root's: the check can tell."""
    if os.geteuid() != 0:
        pytest.skip("only root runs a server as another user; without root every "
                    "server on a host already runs as the caller")
    server = faultline_server(SOCAT_ECHO, 7, user=user)
    with host.connect(7) as sock:
        assert echo(sock) == b"ping\n"
    seen = credentials(server.pid)
    if user is None:
        assert seen["Uid"] == ["0"] * 4 and seen["CapEff"] != ["0000000000000000"], seen
        return
    nobody = pwd.getpwnam("nobody")
    assert seen["Uid"] == [str(nobody.pw_uid)] * 4, seen
    assert seen["Gid"] == [str(nobody.pw_gid)] * 4 and seen.get("Groups", []) == [], seen
    assert {seen[k][0] for k in ("CapEff", "CapPrm", "CapAmb")} == {"0000000000000000"}, seen
    assert seen["NoNewPrivs"] == ["1"], seen


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


def test_a_wait_on_a_file_wakes_when_it_is_written(tmp_path):
    """wait_until_written() looks again at a write, not on its timer: with a
    recheck of 60 s, only the inotify wake-up can end this wait in time."""
    path = tmp_path / "out"
    path.write_text("")
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; time.sleep(0.2); open(sys.argv[1], 'a').write('ready\\n')",
         str(path)])
    try:
        started = time.monotonic()
        wait_until_written(path, lambda: "ready" in path.read_text(), 10.0,
                           "the writer's line", recheck=60.0)
        waited = time.monotonic() - started
    finally:
        writer.wait(10)
    assert waited < 5.0, f"woke {waited:.2f}s after the write began, not at it"


def test_a_wait_on_a_file_never_written_expires_and_says_so(tmp_path):
    path = tmp_path / "out"
    path.write_text("nothing here")
    with pytest.raises(WaitTimeout,
                       match="(?s)waiting for the ready line.*last seen:.*nothing here"):
        wait_until_written(path, lambda: "ready" in path.read_text(), 0.2,
                           "the ready line", seen=path.read_text, recheck=0.05)


def test_a_signal_kills_the_command_and_its_status_says_so(host):
    proc = host.spawn(["sleep", "30"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM


def test_a_command_exits_with_its_own_code(host):
    assert host.run(["sh", "-c", "exit 7"])[0] == 7


def test_a_command_starts_in_the_harness_working_directory(host, tmp_path, monkeypatch):
    """Where a child of the harness would: the keeper (a spare's made long
    before) was started elsewhere. A user's relative `./my-server` needs it."""
    monkeypatch.chdir(tmp_path)
    assert host.run(["pwd"])[1].strip() == str(tmp_path)


def test_a_program_without_a_hash_bang_runs_as_a_shell_script(host, tmp_path):
    """As execvp runs it (and the shell, and the shim before the keeper):
    a user's `./my-server` may be a script with no #! line."""
    script = tmp_path / "no-hash-bang"
    script.write_text('echo "$0|$1|$2"\n')
    script.chmod(0o755)
    code, out, err = host.run([str(script), "one", "two words"])
    assert (code, out) == (0, f"{script}|one|two words\n"), (code, out, err)


def test_an_empty_command_is_refused_by_name(host):
    with pytest.raises(HostError, match="an empty command"):
        host.spawn([])


def test_the_keeper_itself_starts_each_command(host):
    """One exec per command: the host's keeper forks it, no shim between
    (the shim made two execs of every start)."""
    proc = host.spawn(["sleep", "30"])
    assert procs.info(proc.pid).ppid == host.outer_pid, procs.describe(proc.pid)


@pytest.mark.parametrize("how", ["closed", "keeper-killed"])
def test_a_command_on_a_host_gone_down_ended_by_sigkill(hosts_possible, artifact_dir, how):
    """The host down: a command on it was killed with the host's init, and
    says so, whether the keeper reaped it and wrote its status (closed) or
    died first and could not (its status pipe closes unwritten)."""
    host = Host("going", artifact_dir)
    proc = host.spawn(["sleep", "30"])
    if how == "keeper-killed":
        os.kill(host.outer_pid, signal.SIGKILL)
        wait_until(lambda: not alive([proc.pid]), 10.0, "the command to die with its host",
                   seen=lambda: procs.describe(proc.pid))
    host.close()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    assert not proc.alive()


def test_a_signal_to_a_command_that_has_exited_is_sent_to_no_one(host):
    """Through the pidfd the keeper handed over, which stays the command's
    own: once it has gone, there is no one to signal, and nothing raises."""
    proc = host.spawn(["true"])
    assert proc.wait() == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.returncode == 0


def raw_spawn(host, argv, status_w):
    """A spawn request written by hand (flhost.c, serve_spawn): the answer
    (errno, pid, call) and the descriptors that came with it."""
    strings = b"".join(s.encode() + b"\0" for s in ["/", *argv])
    null = os.open(os.devnull, os.O_RDWR)
    try:
        socket.send_fds(host._keeper.control, [struct.pack("5i", 2, -1, -1, len(argv), 0)
                                        + strings], [null, null, null, status_w])
        answer, fds, _, _ = socket.recv_fds(host._keeper.control, 36, 1)
    finally:
        os.close(null)
    return struct.unpack("ii28s", answer), fds


def test_a_status_nobody_reads_any_more_leaves_the_host_up(host):
    """The keeper writes each command's status to its pipe; a pipe whose
    reader is gone is an EPIPE to it, not a SIGPIPE that would kill it and
    everything on the host."""
    survivor = host.spawn(["sleep", "30"])
    r, w = os.pipe()
    (err, pid, _), fds = raw_spawn(host, ["true"], w)
    os.close(w)
    os.close(r)  # nobody will read this one's status
    for fd in fds:
        os.close(fd)
    assert err == 0, os.strerror(err)
    wait_until(lambda: procs.info(pid) is None, 10.0, f"command {pid} to be reaped")
    assert survivor.alive(), f"the keeper died: survivor ended {survivor.returncode}"
    assert host.run(["sh", "-c", "exit 5"])[0] == 5


@pytest.mark.parametrize("size", [250_000, 400_000], ids=["fits", "too-big"])
def test_a_large_environment_starts_or_is_refused_by_its_size(host, size):
    """A request carries the command's environment: up to the keeper's
    limit (256 KiB) it starts; beyond it the refusal says how big it was.
    (A socket's default send buffer fits about 208 KiB.)"""
    # In strings of 50,000 bytes: exec takes none over 128 KiB.
    env = dict(os.environ, **{f"BIG{i}": "x" * 50_000 for i in range(size // 50_000)})
    if size < 256 * 1024:
        proc = host.spawn(["sh", "-c", 'echo ${#BIG0} ${#BIG3}'], env=env)
        assert proc.wait() == 0 and proc.stdout().split() == ["50000"] * 2, proc.stderr()
    else:
        with pytest.raises(HostError, match=r"cannot start sh: its arguments and "
                           r"environment take [\d,]+ bytes, over the [\d,]+"):
            host.spawn(["sh", "-c", "true"], env=env)
        assert host.run(["true"])[0] == 0


def test_a_request_interrupted_before_its_answer_leaves_the_host_unusable(host,
                                                                          monkeypatch):
    """A Ctrl-C between a request and its answer leaves the answer on its
    way: taken for the next request's, a command would get another's pid.
    The host says it is unusable instead, and closes as usual."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(socket, "recv_fds", interrupted)
        with pytest.raises(KeyboardInterrupt):
            host.spawn(["sleep", "30"])
    with pytest.raises(HostError, match=r"unusable: a request to start sleep got no "
                                        r"answer \(KeyboardInterrupt"):
        host.spawn(["true"])


def test_a_request_the_keeper_does_not_know_is_answered_not_left_hanging(host):
    """A malformed spawn request (its strings not ended by a NUL) gets an
    answer naming it; the keeper goes on serving."""
    r, w = os.pipe()
    try:
        socket.send_fds(host._keeper.control, [struct.pack("5i", 2, -1, -1, 1, 0) + b"/\0sleep"],
                        [r, w, w, w])
        answer, fds, _, _ = socket.recv_fds(host._keeper.control, 36, 1)
    finally:
        os.close(r)
        os.close(w)
    err, pid, call = struct.unpack("ii28s", answer)
    assert (err, pid, fds) == (22, 0, []) and call.rstrip(b"\0") == b"spawn request", (
        err, pid, call, fds)
    assert host.run(["sh", "-c", "exit 3"])[0] == 3, "the keeper stopped serving"


def test_a_spare_host_that_died_waiting_is_replaced(hosts_possible, artifact_dir):
    """Host() takes the host made ahead of it; one whose keeper died while
    it waited is not handed out: the host is made then."""
    from faultline import host as hosts
    hosts._spare.want()
    wait_until(hosts._spare.ready, 10.0, "the spare host")
    spare = hosts._spare._spare
    os.kill(spare.outer_pid, signal.SIGKILL)
    spare.process.wait(10)
    with Host("second", artifact_dir / "second") as host:
        assert host.outer_pid != spare.outer_pid
        assert host.run(["sh", "-c", "exit 4"])[0] == 4


# --- the server fixture's check at exit (STYLE.md item 7) --------------------

def serve_and_close(host, server, clients=1):
    """Each client echoes a line and closes; returns at once, while the
    server's side of the last close may still be under way."""
    for _ in range(clients):
        sock = host.connect(server.port)
        assert echo(sock) == b"ping\n"
        sock.close()


def test_server_fixture_passes_a_sound_server_whose_children_are_still_exiting(host):
    with Echod(host) as server:
        serve_and_close(host, server, clients=5)
    assert server.proc.returncode == 0, server.proc.stderr()
    assert not (host.workdir / "echod.at-exit.txt").exists()


def test_server_fixture_fails_a_server_that_leaves_a_zombie(host):
    with pytest.raises(ServerLeftBehind) as raised:
        with Echod(host, reap="none") as server:
            serve_and_close(host, server)
    text = str(raised.value)
    assert ("left behind what the test did not declare: zombie children: 1 "
            "(with the server idle in its accept wait)") in text, text
    assert "<defunct>" in text and "leaves={'zombies'}" in text, text
    assert (host.workdir / "echod.at-exit.txt").exists(), text
    assert not server.alive(), f"the fixture stops the server all the same\n{server.ps()}"


def test_server_fixture_passes_the_zombie_a_test_declares(host):
    with Echod(host, reap="none", leaves={"zombies"}) as server:
        serve_and_close(host, server)
        wait_until(server.zombies, 5.0, "the zombie", seen=server.ps)


def test_server_fixture_fails_a_server_that_leaves_close_wait(host):
    # The descriptors it leaks along are declared: CLOSE_WAIT alone fails.
    with pytest.raises(ServerLeftBehind) as raised:
        with Echod(host, args=["--leak-connfd"], leaves={"fds"}) as server:
            serve_and_close(host, server)
    text = str(raised.value)
    assert f"sockets in CLOSE_WAIT on port {server.port}: 1" in text, text
    assert "CLOSE_WAIT " in text.split(f"sockets on port {server.port}:")[1], text
    assert "descriptors over" not in text and "zombie" not in text, text


def test_server_fixture_fails_a_server_that_leaks_descriptors(host):
    with pytest.raises(ServerLeftBehind) as raised:
        with Echod(host, args=["--leak-connfd"], leaves={"close_wait"}) as server:
            serve_and_close(host, server, clients=2)
    text = str(raised.value)
    assert "it held when ready: 2" in text, text
    assert text.count("  + fd ") == 2 and "-> socket:[" in text, text
    assert "CLOSE_WAIT on port" not in text, text


def test_server_fixture_fails_a_server_that_crashed(host):
    # One process serves every connection in the poll model: the fault
    # kills the server itself.
    with pytest.raises(ServerCrashed) as raised:
        with Echod(host, model="poll", faults=["kill@after_read"]) as server:
            sock = host.connect(server.port)
            sock.sendall(b"ping\n")
            assert sock.recv(16) == b"", "the server died: EOF"
    text = str(raised.value)
    assert f"(pid {server.pid}) died during the test: killed by signal 9 (SIGKILL)" in text, text


def test_server_fixture_checks_the_exit_of_a_server_the_test_ends(host):
    with pytest.raises(ServerCrashed) as raised:
        with Echod(host, stopped_by_test=True) as server:
            server.send_signal(signal.SIGKILL)
    text = str(raised.value)
    assert "killed by signal 9 (SIGKILL) when the test ended it, expected exit status 0" in text, text


def test_server_fixture_refuses_a_leftover_it_does_not_know(host):
    with pytest.raises(ValueError, match="unknown \\['zombie'\\]"):
        Echod(host, leaves={"zombie"})
