"""faultline mutants itself: the shipped table still applies to this tree
(a mutant whose text is gone is stale, an error, never skipped), it covers
what issue 12 asks for, and a run tells a killed mutant from a survivor.

The runs here use Python mutants and a test that needs no host, so they
build nothing (a Python edit runs against the checkout's binaries).
"""

import io
import subprocess

import pytest

from faultline import checks, mutants, paths

pytestmark = pytest.mark.cli

# A unit test of scenario.py that needs no host: the bound >= vs >.
AT_LEAST_TEST = ("pytest/test_scenarios.py::"
                 "test_at_least_holds_at_the_bound_and_fails_below_it")
AT_LEAST = "run.expect(got >= low,"


def table_file(tmp_path, *entries):
    """A table of (id, file, original, replacement) entries."""
    text = ""
    for id_, file, original, replacement in entries:
        text += (f"[[mutant]]\nid = {id_!r}\nfile = {file!r}\noriginal = {original!r}\n"
                 f"replacement = {replacement!r}\nwhy = 'test'\n"
                 f"tests = [{AT_LEAST_TEST!r}]\n\n")
    path = tmp_path / "mutants.toml"
    path.write_text(text)
    return path


def faultline(*args):
    return subprocess.run([str(paths.REPO / "faultline"), *args], capture_output=True,
                          text=True, timeout=300)


def test_every_shipped_mutant_applies_exactly_once():
    out = io.StringIO()
    status = mutants.listing(mutants.load(), paths.REPO, out)
    problems = [line for line in out.getvalue().splitlines() if "ERROR" in line]
    assert status == 0 and not problems, (
        "mutants whose text is gone or repeated (update fixtures/mutants.toml):\n"
        + "\n".join(problems))


def test_the_table_covers_every_check_lenient_and_strict():
    ids = {m.id for m in mutants.load()}
    missing = [f"check-{c.name}-{kind}" for c in checks.CHECKS
               for kind in ("lenient", "strict")
               if f"check-{c.name}-{kind}" not in ids]
    assert not missing, f"no mutant for: {', '.join(missing)}"


@pytest.mark.parametrize("prefix", [
    "reap-waitpid", "reap-wait-", "reap-none",
    "fork-drain", "thread-drain", "prefork-drain", "poll-drain", "epoll-drain",
    "fork-loop", "thread-loop", "prefork-worker", "poll-loop", "epoll-never-rearms",
    "fork-leak-rule",
    "fault-kill", "fault-abort", "fault-exit", "fault-delay", "fault-stall", "fault-rst",
    "fault-close", "fault-shutdown-wr", "fault-short", "fault-drop", "fault-fork-fail",
    "fault-leak", "sigpipe-ignore",
    "echoc-verify", "echoc-bytes-select", "echoc-select-lines", "echoc-bytes-block",
    "echoc-epipe-exit", "echoc-reset-exit", "echoc-sigpipe",
    "tcpstate-", "procs-"])
def test_the_table_has_a_mutant_for(prefix):
    assert any(m.id.startswith(prefix) for m in mutants.load()), prefix


def test_a_stale_mutant_is_an_error_in_the_listing(tmp_path):
    table = table_file(tmp_path, ("gone", "python/faultline/scenario.py",
                                  "text that is not there", "x"))
    proc = faultline("mutants", "--table", str(table), "--list")
    assert proc.returncode == 1 and "ERROR stale" in proc.stdout, proc


def test_an_ambiguous_mutant_is_an_error_in_the_listing(tmp_path):
    table = table_file(tmp_path, ("twice", "python/faultline/scenario.py",
                                  "def ", "def  "))
    proc = faultline("mutants", "--table", str(table), "--list")
    assert proc.returncode == 1 and "ERROR ambiguous" in proc.stdout, proc


def test_a_bad_table_is_a_one_line_usage_error(tmp_path):
    path = tmp_path / "mutants.toml"
    path.write_text("[[mutant]]\nid = 'no-file'\n")
    proc = faultline("mutants", "--table", str(path), "--list")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc
    assert "missing file, original, replacement, tests, why" in proc.stderr, proc


def test_an_unknown_pattern_is_a_usage_error():
    proc = faultline("mutants", "--only", "no-such-mutant", "--list")
    assert proc.returncode == 2 and "no mutant matches no-such-mutant" in proc.stderr, proc


def test_a_run_kills_one_survives_one_and_errs_on_a_stale_one(tmp_path):
    """The run's three verdicts, and its exit status: any survivor or stale
    mutant fails it. The tree is left as it was."""
    table = mutants.load(table_file(
        tmp_path,
        ("bound-off-by-one", "python/faultline/scenario.py", AT_LEAST,
         "run.expect(got > low,"),
        ("a-comment", "python/faultline/scenario.py",
         '"""{measurement: lowest value}, for what varies from run to run."""',
         '"""{measurement: lowest value}."""'),
        ("stale", "python/faultline/scenario.py", "text that is not there", "x")))
    before = (paths.REPO / "python/faultline/scenario.py").read_text()
    out = io.StringIO()
    results = mutants.run(table, out, timeout=120, logs=tmp_path / "logs")
    got = {r.mutant.id: r.outcome for r in results}
    assert got == {"bound-off-by-one": "killed", "a-comment": "survived",
                   "stale": "ERROR"}, out.getvalue()
    assert mutants.exit_status(results) == 1
    assert "test_at_least_holds_at_the_bound" in results[0].detail, out.getvalue()
    assert "1 killed, 1 survived, 1 errors, of 3" in out.getvalue(), out.getvalue()
    assert (paths.REPO / "python/faultline/scenario.py").read_text() == before


def test_the_command_exits_1_when_a_mutant_survives(tmp_path):
    table = table_file(tmp_path, ("a-comment", "python/faultline/scenario.py",
                                  '"""{measurement: lowest value}, for what varies',
                                  '"""{measurement: lowest value}, whatever varies'))
    proc = faultline("mutants", "--table", str(table))
    assert proc.returncode == 1 and "SURVIVED a-comment" in proc.stdout, (
        proc.stdout[-2000:], proc.stderr[-2000:])


def test_a_checkout_without_git_is_copied_without_its_builds(tmp_path):
    """A copy of the tree (the CI's run as nobody, a tarball) has no .git:
    its files are copied all the same, its build folders and artifacts not."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    for name in ("meson.build", "server/echod.c", "build/meson-private/x",
                 "build/server/echod", "artifacts/run/report.txt"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    mutants.copy_tree(src, dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["meson.build", "server/echod.c"], copied
