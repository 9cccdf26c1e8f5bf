"""Ctrl-C stops the suite: KeyboardInterrupt wins over the errors of the
cleanups it sets off (the packet capture's stop, the server's, the host's),
which are reported after it, never instead (faultline/interrupts.py).

A pytest run of a long test (checks with their captures, a server with the
capture fixture) gets SIGINT on its whole process group, as a terminal's
Ctrl-C sends it, at a random instant; it must end within STOP_BOUND,
interrupted, without running the next test, and leave no process behind."""

import ast
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from faultline import artifacts, paths
from faultline.capture import Capture
from faultline.interrupts import (MAIN_THREAD_SIGNALS, cleanup, interrupt_first,
                                  worker_thread)
from faultline.waiting import WaitTimeout, wait_until

pytestmark = [pytest.mark.harness, pytest.mark.slow]

RUNS = 20
STOP_BOUND = 5.0   # seconds from SIGINT to the run's exit
LATEST = 3.0       # the SIGINT comes up to this long after the session started

INNER_CONFTEST = textwrap.dedent("""\
    import pathlib
    pytest_plugins = ["faultline.plugin"]

    def pytest_sessionstart(session):
        (pathlib.Path(__file__).parent / "session-started").touch()
    """)

INNER_TEST = textwrap.dedent("""\
    import pathlib
    import time

    from faultline.clients import echo
    from faultline.echod import Echod

    HERE = pathlib.Path(__file__).parent

    def test_long(host, capture, faultline_check):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name in ("binary-echo", "early-rst", "churn"):
                faultline_check(name, lambda h: Echod(h))
                with Echod(host) as server:
                    for _ in range(20):
                        echo(host.connect(server.port))

    def test_after_the_interrupt():
        (HERE / "ran-after").touch()
    """)


# --- the helper, alone ---------------------------------------------------------

def test_cleanup_error_during_an_interrupt_is_reported_after_it(capsys):
    def interrupted_then_cleanup_fails():
        try:
            raise KeyboardInterrupt
        finally:
            with cleanup("stopping the capture"):
                raise OSError("tcpdump ended with 130")
    with pytest.raises(KeyboardInterrupt) as raised:
        interrupted_then_cleanup_fails()
    said = "faultline: interrupted; then stopping the capture failed: OSError: tcpdump ended with 130"
    assert raised.value.__notes__ == [said]
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("pending", [None, ValueError("the test's own")],
                         ids=["no-exception", "an-ordinary-exception"])
def test_cleanup_error_outside_an_interrupt_still_propagates(pending):
    def cleanup_fails():
        try:
            if pending is not None:
                raise pending
        finally:
            with cleanup("stopping the capture"):
                raise OSError("tcpdump ended with 1")
    with pytest.raises(OSError, match="tcpdump ended with 1"):
        cleanup_fails()


def blocked_here():
    """The calling thread's blocked signals, as the kernel has them."""
    with open("/proc/thread-self/status") as f:
        mask = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    return {signal.Signals(n) for n in range(1, 65) if mask & (1 << (n - 1))
            and n in signal.Signals._value2member_map_}


def test_ctrl_c_just_after_rmtree_closed_a_descriptor_stays_a_ctrl_c(tmp_path,
                                                                   monkeypatch):
    """shutil.rmtree closes its descriptor again in a finally clause when
    the interrupt lands just after the close: the EBADF took the Ctrl-C's
    place in the suite's Ctrl-C test (pytest reported an error, exit 1).
    The first close here is real, then the Ctrl-C comes."""
    old = artifacts.fresh_dir("t", root=tmp_path)
    (old / "pcap").write_bytes(b"x")
    real_close = os.close
    armed = [True]

    def close_then_ctrl_c(fd):
        real_close(fd)
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(os, "close", close_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt) as raised:
            artifacts.fresh_dir("t", root=tmp_path)
    assert not armed[0], "the interrupt was never raised"
    assert any("EBADF" in n or "Bad file descriptor" in n
               for n in getattr(raised.value, "__notes__", [])), raised.value


def test_an_error_with_no_interrupt_behind_it_still_propagates():
    def fails():
        raise OSError(9, "Bad file descriptor")
    with pytest.raises(OSError, match="Bad file descriptor"):
        interrupt_first(fails)


def test_a_worker_thread_leaves_ctrl_c_to_the_main_thread():
    """A worker blocks SIGINT and SIGTERM, so the kernel gives them to the
    main thread, the one whose join() they must end."""
    seen = {}
    thread = worker_thread(lambda: seen.update(worker=blocked_here()))
    thread.start()
    thread.join()
    main = blocked_here()
    assert MAIN_THREAD_SIGNALS <= seen["worker"], f"the worker blocks only {seen['worker']}"
    assert not MAIN_THREAD_SIGNALS & main, f"the main thread blocks {main}"


def thread_starts_outside_worker_thread(source, name):
    """file:line of each threading.Thread (or a Thread imported from
    threading, under any name) that source creates."""
    tree = ast.parse(source, name)
    aliases = {a.asname or a.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == "threading"
               for a in node.names if a.name == "Thread"}
    threading_names = {a.asname or a.name for node in ast.walk(tree)
                       if isinstance(node, ast.Import)
                       for a in node.names if a.name == "threading"}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if ((isinstance(f, ast.Name) and f.id in aliases)
                or (isinstance(f, ast.Attribute) and f.attr == "Thread"
                    and isinstance(f.value, ast.Name) and f.value.id in threading_names)):
            found.append(f"{name}:{node.lineno}")
    return found


def test_a_worker_thread_is_born_with_ctrl_c_blocked(monkeypatch):
    """Inherited from its creator, not blocked by the worker as its first
    act: a SIGINT in between went to the worker and was lost (one CI run)."""
    blocked_by = []
    real = signal.pthread_sigmask

    def recording(how, mask):
        if how == signal.SIG_BLOCK:
            blocked_by.append(threading.current_thread().name)
        return real(how, mask)
    monkeypatch.setattr(signal, "pthread_sigmask", recording)
    seen = {}
    thread = worker_thread(lambda: seen.update(worker=blocked_here()), name="born-blocked")
    thread.start()
    thread.join()
    assert MAIN_THREAD_SIGNALS <= seen["worker"], f"the worker blocks only {seen['worker']}"
    assert "born-blocked" not in blocked_by, (
        f"the worker blocked the signals itself, after it began: {blocked_by}")
    assert not MAIN_THREAD_SIGNALS & blocked_here(), "the creator kept them blocked"


def test_every_thread_faultline_starts_is_a_worker_thread():
    package = paths.REPO / "python" / "faultline"
    direct = [hit for p in sorted(package.rglob("*.py")) if p.name != "interrupts.py"
              for hit in thread_starts_outside_worker_thread(
                  p.read_text(), str(p.relative_to(paths.REPO)))]
    assert not direct, f"threads started without interrupts.worker_thread: {direct}"


@pytest.mark.parametrize("source", [
    "import threading\nthreading.Thread(target=print).start()\n",
    "import threading as t\nt.Thread(target=print)\n",
    "from threading import Thread\nThread(target=print)\n",
    "from threading import Thread as T\nT(target=print)\n",
])
def test_a_thread_started_directly_is_found(source):
    assert thread_starts_outside_worker_thread(source, "m.py") == ["m.py:2"], source


def test_a_worker_thread_is_not_found():
    source = ("import threading\nfrom faultline.interrupts import worker_thread\n"
              "worker_thread(print, name='x')\nthreading.Event()\n")
    assert thread_starts_outside_worker_thread(source, "m.py") == []


# --- the capture's stop after a Ctrl-C -----------------------------------------

def stopped_capture(host, path, interrupted):
    cap = Capture(host, path).start()
    if not interrupted:
        cap.stop()
        return path.read_bytes()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        cap.stop()
    return path.read_bytes()


def test_a_capture_stop_waits_for_its_barrier_frame(host):
    pcap = stopped_capture(host, host.workdir / "whole.pcap", interrupted=False)
    assert b"faultline-capture-barrier-" in pcap, "stop() returned before the barrier"


def test_an_interrupted_capture_stop_does_not_wait_for_the_barrier(host):
    """After a Ctrl-C the barrier's wait could take the whole timeout (a
    tcpdump not capturing yet), for a pcap nobody reads."""
    pcap = stopped_capture(host, host.workdir / "cut.pcap", interrupted=True)
    assert b"faultline-capture-barrier-" not in pcap, "an interrupted stop sent the barrier"


# --- Ctrl-C on a real run ---------------------------------------------------------

def group_members(pgid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found


@pytest.mark.timeout(RUNS * (30 + LATEST + STOP_BOUND + 10))
def test_ctrl_c_at_a_random_instant_stops_the_run(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    # Unbuffered, and with faulthandler: a run that hangs is made to say
    # where (SIGABRT) before it is killed.
    env = dict(os.environ, PYTHONPATH=str(paths.REPO / "python"),
               FAULTLINE_ARTIFACTS=str(tmp_path / "artifacts"),
               PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    for run in range(1, RUNS + 1):
        started = tmp_path / "session-started"
        started.unlink(missing_ok=True)
        log = tmp_path / f"run{run}.log"
        with open(log, "wb") as out:
            # SIGINT at its default, as in a terminal's foreground pytest: a
            # suite started in the background by a non-interactive shell
            # (`... &`) has it ignored, and so would the inner run.
            inner = subprocess.Popen(
                ["env", "--default-signal=INT", sys.executable, "-m", "pytest",
                 "-p", "no:cacheprovider", "-q", "-o", "timeout=0", "test_inner.py"],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            wait_until(started.exists, 30.0, f"run {run}: the inner pytest session to start",
                       seen=lambda: log.read_text(errors="replace")[-2000:])
            delay = rng.uniform(0.0, LATEST)
            time.sleep(delay)  # the random instant itself, not a wait for anything
            os.killpg(inner.pid, signal.SIGINT)
            sent = time.monotonic()
            try:
                code = inner.wait(STOP_BOUND + 10.0)
            except subprocess.TimeoutExpired:
                code = None
                os.kill(inner.pid, signal.SIGABRT)  # faulthandler: every thread's stack
                inner.wait(10.0)
            took = time.monotonic() - sent
            print(f"run {run}: SIGINT {delay:.2f} s in, stopped in {took:.2f} s")
            said = log.read_text(errors="replace")
            # A hung run's faulthandler dump starts with the innermost frame
            # of each thread: its head says where the run was stuck.
            dump = said.find("Fatal Python error")
            # Otherwise its head (what the run was doing when the SIGINT
            # came) and its tail (how it ended).
            shown = (said[dump:dump + 3000] if dump >= 0 else said if len(said) <= 4000
                     else f"{said[:1500]}\n[... {len(said) - 4000:,} characters ...]\n"
                          f"{said[-2500:]}")
            where = (f"run {run} of {RUNS} (seed {seed}), SIGINT {delay:.2f} s after the "
                     f"session started; exit {code} after {took:.1f} s; log {log}:\n"
                     f"{shown}")
            assert code is not None and took <= STOP_BOUND, f"too slow to stop: {where}"
            assert code == pytest.ExitCode.INTERRUPTED, f"not reported as interrupted: {where}"
            assert "KeyboardInterrupt" in said, where
            assert not (tmp_path / "ran-after").exists(), f"the next test ran: {where}"
            try:
                wait_until(lambda: not group_members(inner.pid), 5.0,
                           f"run {run}: the inner run's processes to be gone")
            except WaitTimeout:
                pytest.fail(f"left behind: pids {group_members(inner.pid)}; {where}")
        finally:
            if inner.poll() is None:
                os.killpg(inner.pid, signal.SIGKILL)
                inner.wait(10.0)
