"""The command line as a new user meets it from a fresh clone: ./faultline
with each command, run as a process. Each test is one behaviour that was
broken before the command line was rewritten (python/faultline/cli.py).
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from faultline import checks, cli, paths, scenario

pytestmark = pytest.mark.cli

FAULTLINE = paths.REPO / "faultline"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOBODY_UID = pwd.getpwnam("nobody").pw_uid


def clean_env(**extra):
    """Our environment without pytest's own variables (a nested pytest
    must not take them for its own), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def faultline(*args, cwd=paths.REPO, env=None, prefix=(), timeout=120, **kw):
    return subprocess.run([*prefix, str(FAULTLINE), *args], cwd=cwd,
                          env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)


def seen(proc, limit=3000):
    """What a run printed, for a failure message (bounded)."""
    return (f"\n$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-limit:]}\n--- stderr\n{proc.stderr[-limit:]}")


def test_check_list_needs_no_server_command():
    proc = faultline("check", "--list")
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and names == [c.name for c in checks.CHECKS], seen(proc)


def test_every_name_list_prints_is_a_scenario_run_accepts():
    proc = faultline("list")
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and len(names) == len(scenario.all_scenarios()), seen(proc)
    dotted = [n for n in names if "." in n]
    assert dotted, f"no scenario name with a dot in it to prove anything with: {names}"
    resolved = {n: cli.scenario_path(n) for n in names}
    wrong = {n: p for n, p in resolved.items() if p != scenario.SCENARIO_DIR / f"{n}.toml"}
    assert not wrong, f"names resolved elsewhere than fixtures/scenarios: {wrong}"


def test_run_refuses_a_name_that_is_neither_a_scenario_nor_a_file():
    proc = faultline("run", "unp-5.12-no-such-scenario")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "no scenario named" in lines[0], \
        seen(proc)


def test_run_takes_a_dotted_scenario_name(hosts_possible, tmp_path):
    proc = faultline("run", "unp-5.12-premature-block",
                     env=clean_env(FAULTLINE_ARTIFACTS=tmp_path))
    assert proc.returncode == 0, seen(proc)
    assert (tmp_path / "run" / "unp-5.12-premature-block").is_dir(), seen(proc)


TINY_SERVER = """#!/bin/sh
# my-server -p PORT: a forking echo server (socat), as a user might write one
exec socat TCP-LISTEN:"$2",fork,reuseaddr EXEC:cat
"""


@pytest.fixture
def server_dir(tmp_path):
    """A folder holding ./my-server and nothing else."""
    folder = tmp_path / "mine"
    folder.mkdir()
    script = folder / "my-server"
    script.write_text(TINY_SERVER)
    script.chmod(0o755)
    return folder


def test_relative_server_command_runs_from_the_callers_directory(hosts_possible,
                                                                 server_dir, tmp_path):
    proc = faultline("check", "--server-cmd", "./my-server -p 7000", "--port", "7000",
                     "--check", "zombies", cwd=server_dir,
                     env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    assert proc.returncode == 0 and "pass  zombies" in proc.stdout, seen(proc)


def test_relative_server_command_is_not_found_from_elsewhere(hosts_possible, server_dir,
                                                             tmp_path):
    """The other side of the test above: the path really is the caller's."""
    proc = faultline("check", "--server-cmd", "./my-server -p 7000", "--port", "7000",
                     "--check", "zombies", cwd=server_dir.parent,
                     env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "my-server" in lines[0], seen(proc)


@pytest.mark.parametrize("user, uid", [(None, "0"), ("nobody", str(NOBODY_UID))],
                         ids=["default", "nobody"])
def test_check_user_runs_the_server_as_that_user(hosts_possible, tmp_path, user, uid):
    """The server says its uid on stderr, kept in the check's artifacts."""
    if os.geteuid() != 0:
        pytest.skip("--user needs root (without root the server runs as the caller)")
    server = "sh -c 'id -u >&2; exec socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat'"
    artifacts = tmp_path / "artifacts"
    proc = faultline("check", "--server-cmd", server, "--port", "7", "--check",
                     "binary-echo", *(["--user", user] if user else []),
                     "--artifacts", artifacts, env=clean_env())
    assert proc.returncode == 0 and "pass  binary-echo" in proc.stdout, seen(proc)
    said = (artifacts / "binary-echo" / "server.stderr").read_text().split()
    assert said[:1] == [uid], f"the server said {said[:3]}, want uid {uid}{seen(proc)}"


@pytest.mark.parametrize("command", ["run", "demo"])
def test_help_of_a_command_is_its_help(command, tmp_path):
    """run --help was taken for a scenario name, demo --help ran the demo."""
    proc = faultline(command, "--help", env=clean_env(FAULTLINE_ARTIFACTS=tmp_path),
                     timeout=20)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: faultline {command}"), \
        seen(proc)
    assert not any(tmp_path.iterdir()), f"it ran something: {list(tmp_path.iterdir())}"


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["--bogus"], ["bogus"], ["run"],
                                  ["run", "a", "b"], ["list", "extra"], ["check"],
                                  ["check", "--port", "0", "--server-cmd", "x"],
                                  ["check", "--check", "nope", "--server-cmd", "x"],
                                  ["check", "--user", "no-such-user", "--server-cmd", "x"],
                                  ["check", "--user", "root", "--server-cmd", "x"]],
                         ids=" ".join)
def test_usage_error_is_one_line_and_exit_2(argv, tmp_path):
    proc = faultline(*argv, env=clean_env(FAULTLINE_ARTIFACTS=tmp_path), timeout=20)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and not proc.stdout, seen(proc)
    # It names the command it was given, or none ("faultline None:" once).
    named = f"faultline {argv[0]}" if argv[0] in cli.subcommands(cli.make_parser()) \
        else "faultline"
    assert lines[0].startswith(f"{named}: "), f"want '{named}: ...'{seen(proc)}"


def test_closed_stdout_ends_quietly():
    """`./faultline list | head -1`: the reader is gone before we write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([str(FAULTLINE), "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=clean_env(),
                              timeout=20)
    finally:
        os.close(write_end)
    assert proc.returncode in (0, 141) and proc.stderr == "", \
        f"exit {proc.returncode}, stderr:\n{proc.stderr[-2000:]}"


def test_version_is_meson_builds():
    proc = faultline("--version")
    introspect = subprocess.run(["meson", "introspect", "--projectinfo", "meson.build"],
                                cwd=paths.REPO, capture_output=True, text=True, timeout=30)
    version = json.loads(introspect.stdout)["version"]
    assert proc.returncode == 0 and proc.stdout == f"faultline {version}\n", seen(proc)


def test_relative_build_dir_is_the_checkouts_from_anywhere(tmp_path):
    """FAULTLINE_BUILD_DIR=build means the checkout's build/, as it did when
    the script changed into the checkout."""
    proc = faultline("build", "--help", cwd=tmp_path,
                     env=clean_env(FAULTLINE_BUILD_DIR="build"))
    # argparse wraps lines at spaces and at hyphens (a checkout in
    # /tmp/final-suite): compared with no whitespace at all.
    unwrapped = "".join(proc.stdout.split())
    assert proc.returncode == 0 and "".join(str(paths.REPO / "build").split()) in unwrapped, \
        seen(proc)


def test_test_passes_its_arguments_to_pytest_and_no_test_is_a_failure(hosts_possible):
    proc = faultline("test", "-n", "0", "-k", "no_test_is_named_like_this")
    assert proc.returncode not in (0, 1) and "deselected" in proc.stdout, seen(proc)
    assert "collected no tests" in proc.stderr, seen(proc)


# --- as a user who is not root, on a checkout that was never built ----------------

@pytest.fixture(scope="module")
def bare_checkout():
    """The sources (no build) where an unprivileged user can read them, with
    an empty build folder and an artifacts folder that must stay empty, and
    a ci/install-deps that only leaves a mark."""
    root = Path(tempfile.mkdtemp(prefix="faultline-bare-"))
    try:
        for name in ("faultline", "meson.build"):
            shutil.copy2(paths.REPO / name, root / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(paths.REPO / "python", root / "python", ignore=ignore)
        shutil.copytree(paths.REPO / "fixtures", root / "fixtures", ignore=ignore)
        marks = root / "marks"
        (root / "ci").mkdir()
        (root / "ci" / "install-deps").write_text(
            f"#!/bin/sh\necho \"$0 $*\" >> {marks}/install-deps-ran\n")
        for folder in ("marks", "build", "artifacts"):
            (root / folder).mkdir()
            (root / folder).chmod(0o777)  # an attempt to write would succeed
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def unprivileged():
    """How to run a command without privilege: as nobody when we are root,
    as ourselves otherwise."""
    return NOBODY if os.geteuid() == 0 else []


def bare(checkout, *args):
    return subprocess.run([*unprivileged(), str(checkout / "faultline"), *args],
                          cwd="/", capture_output=True, text=True, timeout=30,
                          env=clean_env(FAULTLINE_BUILD_DIR=checkout / "build",
                                        FAULTLINE_ARTIFACTS=checkout / "artifacts",
                                        PYTHONDONTWRITEBYTECODE=1))


def left_behind(checkout):
    return [str(p.relative_to(checkout)) for folder in ("build", "artifacts", "marks")
            for p in (checkout / folder).iterdir()]


def rootless_invocations():
    """(argv, how its output starts): help of every command, and the
    commands the docs say need no root."""
    commands = cli.subcommands(cli.make_parser())
    usage = [([], "usage: faultline"), (["--help"], "usage: faultline"),
             (["help"], "usage: faultline"), (["--version"], "faultline ")]
    usage += [([c, "--help"], f"usage: faultline {c}") for c in commands]
    lists = [(["list"], "delayed-reads"), (["check", "--list"], "binary-echo")]
    return [pytest.param(argv, starts, id=" ".join(argv) or "bare")
            for argv, starts in usage + lists]


@pytest.mark.parametrize("argv, starts", rootless_invocations())
def test_help_and_lists_need_no_root_no_packages_no_build(bare_checkout, argv, starts):
    proc = bare(bare_checkout, *argv)
    assert proc.returncode == 0 and proc.stdout.startswith(starts), seen(proc)
    assert left_behind(bare_checkout) == [], (f"it built, installed or ran: "
                                              f"{left_behind(bare_checkout)}{seen(proc)}")


# As root: NOBODY's command run in a user namespace (every uid below 65536
# mapped) whose user.max_user_namespaces is 0, so that nobody's own user
# namespaces, what faultline makes without root, are refused there.
USERNS_REFUSED = [sys.executable, "-c", """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
unshared_r, unshared_w = os.pipe()
mapped_r, mapped_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        sys.exit(f"unshare(CLONE_NEWUSER): {os.strerror(ctypes.get_errno())}")
    os.write(unshared_w, b"u")
    os.read(mapped_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(unshared_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 65536")
os.write(mapped_w, b"m")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""]


@pytest.mark.parametrize("argv", [["demo"], ["test"], ["run", "unp-5.9-eintr"],
                                  ["check", "--server-cmd", "socat - -"]], ids=" ".join)
def test_host_making_command_refused_user_namespaces_says_so_in_one_line(bare_checkout, argv):
    why = cli.namespaces_unavailable()
    if os.geteuid() != 0 and why is None:
        pytest.skip("needs real root: to refuse user namespaces to a user it maps "
                    "uids it does not own (this user can make namespaces)")
    if os.geteuid() != 0:
        proc = bare(bare_checkout, *argv)
    else:
        proc = subprocess.run([*USERNS_REFUSED, *NOBODY, str(bare_checkout / "faultline"),
                               *argv], cwd="/", capture_output=True, text=True, timeout=30,
                              env=clean_env(FAULTLINE_BUILD_DIR=bare_checkout / "build",
                                            FAULTLINE_ARTIFACTS=bare_checkout / "artifacts",
                                            PYTHONDONTWRITEBYTECODE=1))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3 and len(lines) == 1, seen(proc)
    assert ("user.max_user_namespaces=0): allow them with 'sudo sysctl -w "
            "user.max_user_namespaces=15000', or run as root") in lines[0] or (
                os.geteuid() != 0 and why in lines[0]), seen(proc)
    assert left_behind(bare_checkout) == [], (f"it built, installed or ran: "
                                              f"{left_behind(bare_checkout)}{seen(proc)}")
