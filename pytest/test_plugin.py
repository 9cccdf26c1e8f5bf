"""The pytest plugin from another project: a toy project, made here, with
its own forking echo server that never reaps its children, a conftest of
ten lines that loads faultline.plugin, and a test that asserts no
zombies. Its pytest, run as that project would run it (faultline on
PYTHONPATH, FAULTLINE_BUILD_DIR at this checkout's build), must fail and
name the zombies, keep the artifact folder and name it in the JUnit XML;
with the reaper added, pass and keep nothing.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from faultline import paths

pytestmark = pytest.mark.harness

# The toy project's server: UNP's server-v1 in Python. Each session's child
# exits when its client closes; without a SIGCHLD handler nobody waits for
# it and it stays a zombie.
ECHO_SERVER = '''\
import os, signal, socket, sys

def reap(signo, frame):  # a loop: one SIGCHLD may stand for several children
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

{reaper}listener = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    conn, _ = listener.accept()
    if os.fork() == 0:
        listener.close()
        while data := conn.recv(4096):
            conn.sendall(data)
        os._exit(0)
    conn.close()
'''

# The ten lines of the README's example.
CONFTEST = '''\
import sys
from pathlib import Path
import pytest

pytest_plugins = ["faultline.plugin"]
SERVER = [sys.executable, str(Path(__file__).parent / "echo_server.py"), "7000"]

@pytest.fixture
def echo_server(faultline_server):
    return faultline_server(SERVER, port=7000)
'''

TEST = '''\
from conftest import SERVER


def test_children_are_reaped(host, echo_server):
    for n in range(3):
        with host.connect(7000) as client:
            client.sendall(b"ping %d\\n" % n)
            assert client.recv(64) == b"ping %d\\n" % n
    echo_server.check_left_nothing()


def test_the_zombies_check_passes(faultline_check):
    verdict = faultline_check("zombies", SERVER, port=7000)
    assert verdict.passed, f"{verdict.summary}\\n{verdict.evidence}"
'''


def make_toy(root, reaps):
    root.mkdir()
    reaper = "signal.signal(signal.SIGCHLD, reap)\n" if reaps else ""
    (root / "echo_server.py").write_text(ECHO_SERVER.replace("{reaper}", reaper))
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_echo.py").write_text(TEST)
    return root


def start_toy(root):
    """The toy project's own pytest, started; finish_toy() waits for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(paths.REPO / "python")
    env["FAULTLINE_BUILD_DIR"] = str(paths.BUILD_DIR)
    env.pop("FAULTLINE_ARTIFACTS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-q",
         f"--junitxml={root / 'junit.xml'}", "test_echo.py"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_toy(proc):
    """A started toy pytest, ended: a CompletedProcess, as subprocess.run
    gives (killed after 120 s)."""
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def seen(proc, limit=4000):
    return (f"\n$ {' '.join(proc.args)}\nexit {proc.returncode}\n--- stdout\n"
            f"{proc.stdout[-limit:]}\n--- stderr\n{proc.stderr[-limit:]}")


@pytest.fixture(scope="module")
def toy_runs(hosts_possible, tmp_path_factory):
    """The toy project's pytest, with the bug and with it fixed."""
    base = tmp_path_factory.mktemp("toy")
    # Both at once: most of a run is the zombies check's settle window.
    started = {}
    try:
        for reaps, name in ((False, "buggy"), (True, "fixed")):
            root = make_toy(base / name, reaps)
            started[reaps] = (root, start_toy(root))
        return {reaps: (root, finish_toy(proc)) for reaps, (root, proc) in started.items()}
    finally:  # interrupted: no toy pytest is left running
        for _, proc in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_readme_shows_the_ten_line_conftest_and_the_test_run_here():
    readme = (paths.REPO / "README.md").read_text()
    assert len(CONFTEST.splitlines()) == 10, CONFTEST
    assert f"```python\n{CONFTEST}```" in readme, "README.md's conftest is not CONFTEST"
    assert f"```python\n{TEST}```" in readme, "README.md's test is not TEST"


def test_the_toy_projects_test_fails_naming_the_zombies(toy_runs):
    root, proc = toy_runs[False]
    assert proc.returncode == 1 and "2 failed" in proc.stdout, seen(proc)
    assert "left behind what the test did not declare: zombie children" in proc.stdout, (
        seen(proc))
    assert "were never reaped" in proc.stdout, seen(proc)  # the zombies check's words


def test_junit_names_the_failed_tests_artifact_folder(toy_runs):
    root, proc = toy_runs[False]
    xml = ET.parse(root / "junit.xml")
    folders = {case.get("name"): [p.get("value") for p in case.iter("property")
                                  if p.get("name") == "artifacts"]
               for case in xml.iter("testcase")}
    assert set(folders) == {"test_children_are_reaped", "test_the_zombies_check_passes"}
    for name, (folder, *more) in folders.items():
        assert not more and folder.startswith(str(root / "faultline-artifacts")), folders
        assert os.path.isdir(folder) and os.listdir(folder), (
            f"{name}: {folder} missing or empty{seen(proc)}")


def test_a_failed_tests_folder_holds_its_report(toy_runs):
    """report.html and outcome.json in each kept folder: the failure first,
    then the check's capture as ladders."""
    root, proc = toy_runs[False]
    kept = sorted((root / "faultline-artifacts").iterdir())
    assert len(kept) == 2, f"{kept}{seen(proc)}"
    for folder in kept:
        page = folder / "report.html"
        assert page.is_file(), (f"no report.html in {folder}: "
                                f"{sorted(p.name for p in folder.iterdir())}")
        document = page.read_text()
        assert 'class="status failed' in document and "zombie" in document, page
    check = next(f for f in kept if "zombies_check" in f.name)
    assert check.joinpath("report.html").read_text().count('<g class="arrow"') > 0, (
        f"no ladder of {check}/zombies/zombies.pcap in its report")


def test_with_the_bug_fixed_the_toy_passes_and_keeps_nothing(toy_runs):
    root, proc = toy_runs[True]
    assert proc.returncode == 0 and "2 passed" in proc.stdout, seen(proc)
    assert not (root / "faultline-artifacts").exists(), (
        f"a passing test's artifacts were kept: "
        f"{sorted(map(str, (root / 'faultline-artifacts').rglob('*')))[:10]}")


# --- the fixtures in this suite -------------------------------------------------

def test_capture_holds_the_servers_handshake(faultline_server, capture):
    from faultline.capture import conversations, read_segments
    faultline_server("socat TCP-LISTEN:7001,reuseaddr,fork EXEC:cat", port=7001)
    with capture.host.connect(7001) as client:
        client.sendall(b"hi\n")
        assert client.recv(16) == b"hi\n"
    segments = read_segments(capture.stop())
    talks = conversations(segments, 7001)
    assert len(talks) == 1 and talks[0].handshake, [s.row() for s in segments[:20]]


def test_an_unknown_check_fails_the_test_naming_the_checks_and_nothing_else(faultline_check):
    """One message: no KeyError chained before it ("During handling of the
    above exception...")."""
    with pytest.raises(pytest.fail.Exception) as failed:
        faultline_check("no-such-check", lambda h: None)
    assert str(failed.value).startswith("faultline_check: unknown check no-such-check "
                                        "(checks: binary-echo,"), str(failed.value)
    assert failed.value.__context__ is None, repr(failed.value.__context__)
