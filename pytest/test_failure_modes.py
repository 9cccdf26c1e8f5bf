"""docs/FAILURE-MODES.md names, for each failure mode, the tests that prove
it: every name there must be a test, scenario, check or zoo server that
exists, so the catalogue cannot drift from the suite unnoticed."""

import ast
import re
import tomllib

import pytest

from faultline import checks, paths

pytestmark = pytest.mark.catalogue

CATALOGUE = paths.REPO / "docs" / "FAILURE-MODES.md"
# The rows the catalogue must hold at least (issue 11's list).
REQUIRED = [
    "SIGCHLD", "EINTR in accept", "Unsafe handler under churn", "fork() fails",
    "EMFILE accept storm", "Other accept errors", "RST before accept", "SIGPIPE",
    "ECONNRESET", "RST mid-transfer", "Half-close", "CLOSE_WAIT leak",
    "Inherited descriptors", "Close with unread data", "Peer never reads",
    "Slow client stalls an event loop", "Oversized line", "Idle client",
    "Dribbling client", "Silent peer", "Binary bytes", "Partial writes",
    "Cross-client mix-up", "Connect-close flood", "Too many clients",
    "Backlog overflow", "FD_SETSIZE", "Prefork worker death", "Thread or memory leak",
    "SIGHUP with sessions", "SIGTERM drain", "Stop escalation", "Restart in TIME_WAIT",
    "Log flooding"]


def rows(text):
    """{number: [cells]} of the catalogue's table."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            found[int(cells[0])] = cells
    return found


def functions_in(file):
    tree = ast.parse((paths.REPO / "pytest" / file).read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def missing_names(text):
    """Every name the catalogue cites that the tree does not have."""
    checks_known = {c.name for c in checks.CHECKS}
    zoo = {s["name"] for s in
           tomllib.loads((paths.REPO / "zoo" / "zoo.toml").read_text())["server"]}
    missing = []
    for file, name in re.findall(r"`(test_\w+\.py)::(test_\w+)`", text):
        if not (paths.REPO / "pytest" / file).exists() or name not in functions_in(file):
            missing.append(f"{file}::{name}")
    for name in re.findall(r"`scenario:([a-z0-9][\w.-]*)`", text):
        if not (paths.REPO / "fixtures" / "scenarios" / f"{name}.toml").exists():
            missing.append(f"scenario:{name}")
    missing += [f"check:{n}" for n in re.findall(r"`check:([a-z][\w-]*)`", text)
                if n not in checks_known]
    missing += [f"zoo {n}" for n in re.findall(r"zoo `(\w+)`", text) if n not in zoo]
    return missing


def test_every_name_the_catalogue_cites_exists():
    missing = missing_names(CATALOGUE.read_text())
    assert not missing, f"{CATALOGUE} cites what the tree does not have: {missing}"


def test_a_renamed_test_is_caught():
    """The check above can fail: each kind of name, misspelt."""
    text = ("`test_zombie.py::test_no_such_thing` `scenario:unp-9.99` `check:zombie` "
            "zoo `fork_nothing`")
    assert missing_names(text) == ["test_zombie.py::test_no_such_thing", "scenario:unp-9.99",
                                   "check:zombie", "zoo fork_nothing"]


def test_every_failure_mode_has_its_row_and_every_row_its_proof():
    table = rows(CATALOGUE.read_text())
    assert sorted(table) == list(range(1, len(table) + 1)), \
        f"rows are not numbered 1..{len(table)}: {sorted(table)}"
    titles = [cells[1] for cells in table.values()]
    absent = [r for r in REQUIRED if not any(r in t for t in titles)]
    assert not absent, f"failure modes with no row in {CATALOGUE}: {absent}"
    malformed = [n for n, cells in table.items() if len(cells) != 6]
    assert not malformed, f"rows without their 6 cells: {malformed}"
    # A row proves something, or says it is not built or not provoked yet.
    unproven = [n for n, cells in table.items()
                if "`" not in cells[5] and "not yet" not in " ".join(cells)]
    assert not unproven, f"rows that name no test and do not say 'not yet': {unproven}"
