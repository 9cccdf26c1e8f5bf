"""faultline mutants: one-line changes the suite must notice.

Each mutant in fixtures/mutants.toml is one source edit, matched by text:
`original` must occur exactly once in `file`, and is replaced by
`replacement`. A mutant whose text is gone (the code moved on) is STALE
and one whose text occurs twice is AMBIGUOUS: both are an ERROR, never a
silent skip, so the table cannot rot into a list that kills nothing.

A run copies the checkout's files (tracked and untracked, not ignored) into
one scratch folder, builds it once with meson in its own build folder, and
then for each mutant: applies the edit, recompiles (ninja rebuilds only what
the edit touched; a Python edit needs no compile), runs the pytest
selection the table names, and puts the file back. pytest failing is the
mutant KILLED; passing, the mutant SURVIVED, and a survivor fails the run.
The scratch folder is removed whatever happens; each mutant's pytest output
is kept in artifacts/mutants/ID.log.

A mutant that makes a test hang is killed by pytest-timeout (pytest.ini);
a selection still running after --timeout seconds is an ERROR.
"""

import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import paths

TABLE = None if paths.REPO is None else paths.REPO / "fixtures" / "mutants.toml"
KEYS = {"id", "file", "original", "replacement", "why", "tests", "ci"}
REQUIRED = KEYS - {"ci"}
ID_SHAPE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DEFAULT_TIMEOUT = 900.0  # seconds one mutant's selection may take in all


class TableError(Exception):
    """The table cannot be read: one line, naming the file and the entry."""


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    why: str
    tests: tuple  # pytest arguments: paths, node ids, -k EXPR, -m EXPR
    ci: bool = False

    @property
    def compiled(self):
        """Whether the edit needs a rebuild (C, or meson files)."""
        return not self.file.endswith(".py")


@dataclass
class Result:
    mutant: Mutant
    outcome: str  # killed, survived, ERROR
    seconds: float = 0.0
    detail: str = ""
    log: Path = None

    def line(self):
        outcome = {"killed": "killed", "survived": "SURVIVED"}.get(self.outcome, "ERROR")
        detail = f"  {self.detail}" if self.detail else ""
        return f"{outcome:<9}{self.mutant.id:<40}{self.seconds:7.1f} s{detail}"


def load(path=None):
    """The mutants of a table file, in its order."""
    path = Path(path or TABLE)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise TableError(f"{path}: {e}") from None
    entries = data.get("mutant")
    if not isinstance(entries, list) or not entries:
        raise TableError(f"{path}: no [[mutant]] entries")
    found, seen = [], set()
    for n, entry in enumerate(entries, 1):
        where = f"{path}: mutant {n} ({entry.get('id', 'no id')})"
        missing = REQUIRED - entry.keys()
        if missing:
            raise TableError(f"{where}: missing {', '.join(sorted(missing))}")
        unknown = entry.keys() - KEYS
        if unknown:
            raise TableError(f"{where}: unknown key {', '.join(sorted(unknown))}")
        if not isinstance(entry["id"], str) or not ID_SHAPE.match(entry["id"]):
            raise TableError(f"{where}: id wants lower-case letters, digits and '-'")
        if entry["id"] in seen:
            raise TableError(f"{where}: id used twice")
        seen.add(entry["id"])
        for key in ("file", "original", "replacement", "why"):
            if not isinstance(entry[key], str):
                raise TableError(f"{where}: {key} wants a string")
        if not entry["original"] or entry["original"] == entry["replacement"]:
            raise TableError(f"{where}: original must be non-empty and differ "
                             f"from replacement")
        tests = entry["tests"]
        if (not isinstance(tests, list) or not tests
                or not all(isinstance(t, str) and t for t in tests)):
            raise TableError(f"{where}: tests wants a list of pytest arguments")
        found.append(Mutant(id=entry["id"], file=entry["file"],
                            original=entry["original"], replacement=entry["replacement"],
                            why=entry["why"], tests=tuple(tests),
                            ci=bool(entry.get("ci", False))))
    return found


def select(mutants, only=(), ci=False):
    """Those whose id matches any PATTERN of only (a glob, or a substring),
    and with ci, only the ones marked for CI."""
    def wanted(m):
        if ci and not m.ci:
            return False
        return not only or any(fnmatch.fnmatchcase(m.id, p) or p in m.id for p in only)
    return [m for m in mutants if wanted(m)]


def match_problem(root, mutant):
    """Why the mutant cannot be applied in the tree at root, or None."""
    path = Path(root) / mutant.file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return f"stale: {mutant.file} does not exist"
    count = text.count(mutant.original)
    if count == 0:
        return f"stale: its text is no longer in {mutant.file}"
    if count > 1:
        return f"ambiguous: its text occurs {count} times in {mutant.file}"
    return None


def listing(mutants, root, out):
    """One line per mutant and whether it still applies; 1 if any does not."""
    status = 0
    for m in mutants:
        problem = match_problem(root, m)
        status |= problem is not None
        mark = "ci" if m.ci else "  "
        state = f"ERROR {problem}" if problem else "ok"
        out.write(f"{m.id:<40}{mark}  {m.file:<28}{state}\n    {m.why}\n"
                  f"    kill: {' '.join(m.tests)}\n")
    return status


# --- the run ------------------------------------------------------------------------

def _unversioned_files(src):
    """A checkout without git (a copy, a tarball): every file but meson
    build folders, artifacts and caches."""
    src = Path(src)
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs
                   if d not in (".git", "artifacts", "__pycache__")
                   and not (Path(folder) / d / "meson-private").is_dir()]
        for name in files:
            yield str((Path(folder) / name).relative_to(src))


def copy_tree(src, dest):
    """The checkout's files as git sees them: tracked and untracked, not
    ignored (no build/, no artifacts/); without git, every file but build
    folders and artifacts."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=src, capture_output=True)
    names = (listed.stdout.decode().split("\0") if listed.returncode == 0
             else _unversioned_files(src))
    for name in names:
        if not name or not (Path(src) / name).is_file():
            continue  # a file deleted but not yet staged
        target = Path(dest) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(src) / name, target, follow_symlinks=False)


def run_logged(argv, cwd, log, env=None, timeout=None):
    """Run argv in its own session, its output appended to log. Returns
    the exit status, or None when it outlasted timeout (it is then killed,
    with its process group)."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, argv))}\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def first_failure(log):
    """The first test pytest's summary names as failed, for the report."""
    for line in Path(log).read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return ""


@dataclass
class Scratch:
    root: Path
    build: Path
    logs: Path
    timeout: float
    env: dict = field(default_factory=dict)

    def compile(self, log):
        if not (self.build / "build.ninja").exists():
            if run_logged(["meson", "setup", str(self.build)], self.root, log) != 0:
                return False
        return run_logged(["meson", "compile", "-C", str(self.build)], self.root,
                          log) == 0

    def pytest(self, mutant, log):
        argv = [sys.executable, "-m", "pytest", "--no-build", "-x", "-q",
                "-p", "no:cacheprovider", *mutant.tests]
        return run_logged(argv, self.root, log, env=self.env, timeout=self.timeout)


def try_mutant(scratch, mutant):
    """Apply, build, test, restore. Returns the Result."""
    log = scratch.logs / f"{mutant.id}.log"
    log.unlink(missing_ok=True)
    started = time.monotonic()

    def result(outcome, detail=""):
        return Result(mutant, outcome, time.monotonic() - started, detail, log)
    problem = match_problem(scratch.root, mutant)
    if problem:
        return result("ERROR", problem)
    path = scratch.root / mutant.file
    original = path.read_text()
    path.write_text(original.replace(mutant.original, mutant.replacement, 1))
    try:
        if mutant.compiled and not scratch.compile(log):
            return result("ERROR", f"does not build (the log: {log})")
        status = scratch.pytest(mutant, log)
    finally:
        path.write_text(original)
    if status is None:
        return result("ERROR", f"its tests still ran after {scratch.timeout:g} s")
    if status == 0:
        return result("survived", f"{' '.join(mutant.tests)} passed")
    if status == 1:
        return result("killed", first_failure(log))
    if status == 5:
        return result("ERROR", f"pytest collected no test from {' '.join(mutant.tests)}")
    return result("ERROR", f"pytest exit {status} (the log: {log})")


def run(mutants, out, timeout=DEFAULT_TIMEOUT, logs=None, source=None):
    """Try every mutant; one line each as it ends, then the counts. Returns
    the results. An unmutated tree that does not build raises BuildError."""
    from .build import BuildError
    source = Path(source or paths.REPO)
    logs = Path(logs or paths.ARTIFACTS_DIR / "mutants")
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="faultline-mutants.") as tmp:
        root = Path(tmp) / "tree"
        copy_tree(source, root)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                   FAULTLINE_ARTIFACTS=str(Path(tmp) / "artifacts"))
        # The scratch tree's package, not the checkout's, must be imported.
        env.pop("PYTHONPATH", None)
        if any(m.compiled for m in mutants):
            build_dir = Path(tmp) / "build"
        else:
            # Python edits only: the checkout's own (up-to-date) binaries do.
            build_dir = paths.BUILD_DIR
        env["FAULTLINE_BUILD_DIR"] = str(build_dir)
        scratch = Scratch(root=root, build=build_dir, logs=logs, timeout=timeout, env=env)
        started = time.monotonic()
        if build_dir != paths.BUILD_DIR:
            log = logs / "build.log"
            log.unlink(missing_ok=True)
            if not scratch.compile(log):
                raise BuildError(f"the unmutated scratch tree does not build; see {log}")
            out.write(f"built the scratch tree in {time.monotonic() - started:.1f} s\n")
            out.flush()
        for m in mutants:
            r = try_mutant(scratch, m)
            results.append(r)
            out.write(r.line() + "\n")
            out.flush()
        out.write(summary(results, time.monotonic() - started) + "\n")
    return results


def summary(results, seconds):
    counts = {k: sum(r.outcome == k for r in results)
              for k in ("killed", "survived", "ERROR")}
    return (f"mutants: {counts['killed']} killed, {counts['survived']} survived, "
            f"{counts['ERROR']} errors, of {len(results)}, in {seconds:.0f} s")


def exit_status(results):
    return 0 if all(r.outcome == "killed" for r in results) else 1
