"""faultline installed, as someone who never saw the checkout meets it:
`meson install` into a fresh prefix (from a build folder of its own, so the
checkout's build/ is untouched), then the installed programs run from
another directory on that user's files.

The install is made once per session (and shared by the xdist workers):
a meson setup, compile and install costs tens of seconds.
"""

import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from faultline import paths, scenario

pytestmark = [pytest.mark.install, pytest.mark.timeout(600)]

TOY_SERVER = """#!/usr/bin/python3
# toy.py PORT [--corrupt]: a forking TCP echo server, as a user might write
# one; with --corrupt it flips the last byte of every chunk it echoes.
import socketserver, sys

corrupt = "--corrupt" in sys.argv[2:]

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            if corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            self.request.sendall(data)

class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True

Server(("0.0.0.0", int(sys.argv[1])), Echo).serve_forever()
"""


def session_dir(tmp_path_factory):
    """A folder for this pytest session, the same in every xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def run_logged(argv, what, **kw):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)
    assert proc.returncode == 0, (f"{what} failed (exit {proc.returncode}): "
                                  f"{' '.join(map(str, argv))}\n{proc.stdout[-3000:]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """meson setup, compile and install into ROOT/prefix; once a session."""
    root = session_dir(tmp_path_factory) / "faultline-install"
    root.mkdir(exist_ok=True)
    prefix = root / "prefix"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            build = root / "build"
            run_logged(["meson", "setup", str(build), "--prefix", str(prefix),
                        "-Dtests=disabled"], "meson setup", cwd=paths.REPO, timeout=300)
            run_logged(["meson", "install", "-C", str(build), "--quiet"],
                       "meson install", timeout=300)
            (root / "done").touch()
    return SimpleNamespace(prefix=prefix, bin=prefix / "bin",
                           python=Path(installed_python_dir(prefix)))


def installed_python_dir(prefix):
    found = sorted(prefix.glob("lib/python3*/*-packages/faultline"))
    assert len(found) == 1, f"not one installed faultline package under {prefix}: {found}"
    return found[0].parent


def user_env(**extra):
    """A user's environment: no pytest variables, no PYTHONPATH pointing at
    the checkout (the installed command must find its package itself), no
    FAULTLINE_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "FAULTLINE_")) and k != "PYTHONPATH"}
    env.update(extra)
    return env


def run(argv, cwd, env=None, timeout=120):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env or user_env(),
                          capture_output=True, text=True, timeout=timeout)


def seen(proc, limit=3000):
    return (f"\n$ {' '.join(proc.args)}\nexit {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-limit:]}\n--- stderr\n{proc.stderr[-limit:]}")


@pytest.mark.parametrize("program", ["faultline", "echod", "echoc"])
def test_installed_program_prints_the_project_version(installed, program, tmp_path):
    proc = run([installed.bin / program, "--version"], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"{program} {paths.version()}\n", \
        seen(proc)


def test_installed_faultline_help_works_from_another_directory(installed, tmp_path):
    proc = run([installed.bin / "faultline", "--help"], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: faultline"), seen(proc)


@pytest.mark.parametrize("command", ["test", "build", "bench"])
def test_installed_faultline_knows_it_has_no_checkout(installed, command, tmp_path):
    """It must not run meson or ci/install-deps: there is nothing to run
    them on."""
    proc = run([installed.bin / "faultline", command], cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, seen(proc)
    assert "works in a checkout of faultline only" in lines[0], seen(proc)
    assert str(installed.python / "faultline") in lines[0], seen(proc)


def test_installed_list_names_the_installed_scenarios(installed, tmp_path):
    proc = run([installed.bin / "faultline", "list"], cwd=tmp_path)
    listed = [line.split()[0] for line in proc.stdout.splitlines()]
    shipped = [p.stem for p in
               sorted((installed.prefix / "share/faultline/scenarios").glob("*.toml"))]
    assert proc.returncode == 0 and listed == shipped, seen(proc)
    assert shipped == [p.stem for p in scenario.all_scenarios()], (
        f"installed scenarios {shipped} are not the checkout's")


def test_a_moved_installation_finds_its_own_files(installed, tmp_path):
    """A tree moved whole (a DESTDIR, dpkg-deb -x) must use its own files,
    not those of where it was installed."""
    moved = tmp_path / "moved"
    shutil.copytree(installed.prefix, moved, symlinks=True)
    package_dir = moved / installed.python.relative_to(installed.prefix)
    proc = run(["/usr/bin/python3", "-c",
                "from faultline import paths; print(paths.INSTALLED); "
                "print(paths.binary('flhost')); print(paths.binary('echod')); "
                "print(paths.SCENARIO_DIR)"],
               cwd=tmp_path, env=user_env(PYTHONPATH=str(package_dir)))
    assert proc.returncode == 0, seen(proc)
    assert proc.stdout.splitlines() == [
        "True", str(moved / "libexec/faultline/flhost"), str(moved / "bin/echod"),
        str(moved / "share/faultline/scenarios")], seen(proc)


def man_warnings(page):
    """(exit status, groff's warnings, the rendered text) of man -l PAGE."""
    proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                          text=True, timeout=60,
                          env=user_env(MANWIDTH="80", LC_ALL="C.UTF-8"))
    return proc.returncode, proc.stderr, proc.stdout


@pytest.mark.parametrize("page", ["man1/faultline.1", "man1/echoc.1", "man8/echod.8"])
def test_installed_man_page_renders_without_warnings(installed, page):
    path = installed.prefix / "share/man" / page
    status, warnings, text = man_warnings(path)
    assert status == 0 and warnings == "", f"man -l {path}: exit {status}\n{warnings}"
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "ENVIRONMENT",
                    "FILES", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), f"{path} has no {section} section"
    name = path.stem
    whatis = subprocess.run(["lexgrog", str(path)], capture_output=True, text=True,
                            timeout=30)
    assert whatis.returncode == 0 and f'"{name} - ' in whatis.stdout, (
        f"lexgrog {path}: exit {whatis.returncode}\n{whatis.stdout}{whatis.stderr}")


def test_a_broken_man_page_does_warn(tmp_path):
    """The check above can fail: groff's warnings reach man's stderr."""
    page = tmp_path / "broken.1"
    page.write_text(".TH BROKEN 1\n.SH NAME\nbroken \\- a page\n.SH DESCRIPTION\n"
                    "\\fBbold never closed\n.BOGUS macro\n")
    status, warnings, _ = man_warnings(page)
    assert warnings != "", f"man -l {page} said nothing about an unknown macro (exit {status})"


@pytest.fixture
def user_dir(tmp_path):
    """Somewhere that is not the checkout, with the user's toy server."""
    toy = tmp_path / "toy.py"
    toy.write_text(TOY_SERVER)
    toy.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("server, status, mark", [
    ("./toy.py 7001", 0, "pass  binary-echo"),
    ("./toy.py 7001 --corrupt", 1, "FAIL  binary-echo"),
], ids=["good-toy-passes", "corrupting-toy-fails"])
def test_installed_check_on_a_server_given_by_a_relative_path(
        installed, hosts_possible, user_dir, server, status, mark):
    proc = run([installed.bin / "faultline", "check", "--server-cmd", server,
                "--port", "7001", "--check", "binary-echo"], cwd=user_dir)
    assert proc.returncode == status and mark in proc.stdout, seen(proc)
    artifacts = user_dir / "faultline-artifacts" / "check" / "binary-echo"
    assert artifacts.is_dir(), f"no artifacts in the caller's directory ({artifacts}){seen(proc)}"


def test_debian_changelog_names_the_project_version():
    """dpkg-buildpackage takes the .deb's version from debian/changelog."""
    first = (paths.REPO / "debian" / "changelog").read_text().splitlines()[0]
    found = re.match(r"faultline \(([^)]+)\)", first)
    assert found and found.group(1) == paths.version(), (
        f"debian/changelog opens with {first!r}; meson.build says {paths.version()}")


def pytest_in(project, installed, *args):
    """The user's pytest (Debian's) in PROJECT, seeing the installed package
    only as the installed tree puts it on the path."""
    return run(["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", *args],
               cwd=project, env=user_env(PYTHONPATH=str(installed.python)))


@pytest.mark.parametrize("conftest, loaded", [
    ("", True),
    ('pytest_plugins = ["faultline.plugin"]\n', True),
    ("", False),
], ids=["entry-point-alone", "entry-point-and-conftest-line", "entry-point-disabled"])
def test_the_installed_plugin_loads_by_its_entry_point(installed, tmp_path, conftest,
                                                       loaded):
    """No -p and no conftest line: the dist-info's pytest11 entry point
    brings the fixtures. A conftest that names the plugin as well must not
    load it twice; `-p no:faultline.plugin` must leave it out (so the
    fixtures seen are the entry point's doing)."""
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    proc = pytest_in(tmp_path, installed, "--fixtures",
                     *([] if loaded else ["-p", "no:faultline.plugin"]))
    assert proc.returncode == 0, seen(proc)
    listed = re.findall(r"^(faultline_server|faultline_check|host)\b", proc.stdout, re.M)
    assert sorted(listed) == (["faultline_check", "faultline_server", "host"]
                              if loaded else []), seen(proc)


def test_the_checkouts_suite_refuses_an_installed_faultline_ahead_of_it(installed):
    """With an installed faultline first on the path, its entry point would
    load the installed plugin before pytest.ini points at the checkout, and
    the suite would test the wrong copy: one line says so instead."""
    proc = run(["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "--co",
                "-q", "--no-build", "pytest/test_docs.py"], cwd=paths.REPO,
               env=user_env(PYTHONPATH=str(installed.python)))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 4 and len(lines) == 1, seen(proc)
    assert f"imported the installed faultline ({installed.python / 'faultline'})" \
        in lines[0], seen(proc)
