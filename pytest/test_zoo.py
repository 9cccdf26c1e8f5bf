"""The zoo: faultline's checks proven on servers with one known defect or
none (zoo/zoo.toml, the servers in zoo/). For every server and every check
that applies, the check must give the verdict the manifest expects, so a
check made more lenient (it passes a server it must fail) or stricter (it
fails a server it must pass) fails this file.

Each (server, check) pair is one test, run in-process through
checkrun.run_check as `./faultline check` and pytest/test_byo.py run it: a
fresh host and a freshly started server per check, so one test costs what
one line of `./faultline check` costs, and xdist spreads them.

Skipped, each with its reason: checks the manifest names that faultline
does not have yet, servers of protocol "none" (no such mode yet), and
verdicts the manifest marks "any" (a race the server leaves open). Where
the manifest's `today` table says today's faultline gets a verdict wrong,
the test is a strict xfail: fixing faultline turns it into an XPASS,
which fails until the `today` entry is removed (see known_wrong for the
two softer kinds).

    pytest pytest/test_zoo.py -k fork_leaks_connfd       # one server
    pytest pytest/test_zoo.py -k 'zombies'               # one check, every server
"""

import subprocess
import tomllib

import pytest

from faultline import checks, paths
from faultline.checkrun import NotAServer, preflight, run_check
from faultline.server import Server

pytestmark = [pytest.mark.zoo, pytest.mark.slow]

ZOO = paths.REPO / "zoo"
MANIFEST = ZOO / "zoo.toml"
VERDICTS = {"pass": True, "FAIL": False}
PLANNED = {
    "server-death": "the server died during a check (SIGPIPE, EINTR, ...)",
    "session-ends": "a session ends within a bound after its client is gone",
}
EVIDENCE_LIMIT = 6000  # characters of a check's evidence in a failure message


def manifest():
    with open(MANIFEST, "rb") as f:
        servers = tomllib.load(f)["server"]
    for s in servers:
        for check, want in s.get("expect", {}).items():
            if want not in (*VERDICTS, "any"):
                raise ValueError(f"{MANIFEST}: {s['name']}: {check} = {want!r}; "
                                 f"expected one of pass, FAIL, any")
    return servers


SERVERS = manifest()
KNOWN = {c.name: c for c in checks.CHECKS}


def pairs():
    for s in SERVERS:
        for check, want in s.get("expect", {}).items():
            marks = []
            if check not in KNOWN:
                if check not in PLANNED:
                    raise ValueError(f"{MANIFEST}: {s['name']}: unknown check {check!r}")
                marks.append(pytest.mark.skip(
                    reason=f"check {check!r} is not implemented yet ({PLANNED[check]})"))
            elif s["protocol"] != "echo":
                marks.append(pytest.mark.skip(
                    reason=f"{s['name']} speaks {s['protocol']!r}: faultline check "
                           f"has no --protocol none mode yet"))
            elif want == "any":
                marks.append(pytest.mark.skip(
                    reason=f"{s['name']}: the {check} verdict rests on a race the "
                           f"server leaves open (zoo/zoo.toml says which)"))
            elif check in s.get("today", {}):
                marks.append(known_wrong(s["today"][check]))
            yield pytest.param(s, check, want, marks=marks, id=f"{s['name']}-{check}")


def known_wrong(why):
    """Today's faultline gets this verdict wrong: a strict xfail, so that
    the fix shows as an XPASS. "race: ..." fails only sometimes (not
    strict); "hangs: ..." would only burn the test timeout (not run)."""
    reason = f"today's faultline: {why}"
    if why.startswith("hangs:"):
        return pytest.mark.xfail(run=False, reason=reason)
    return pytest.mark.xfail(strict=not why.startswith("race:"), reason=reason)


def command_line(server):
    """The manifest's command with its placeholders resolved; skips when a
    program it needs cannot be had here."""
    values = {"build": paths.BUILD_DIR, "zoo": ZOO, "port": server["port"]}
    if "{xinetd}" in server["command"]:
        fetch = subprocess.run([ZOO / "fetch-xinetd", paths.BUILD_DIR / "zoo" / "xinetd"],
                               capture_output=True, text=True, timeout=120)
        if fetch.returncode != 0:
            pytest.skip(f"xinetd could not be unpacked: {fetch.stderr.strip()}")
        values["xinetd"] = fetch.stdout.strip()
    return server["command"].format(**values)


def bounded(text):
    if len(text) <= EVIDENCE_LIMIT:
        return text
    return (text[:EVIDENCE_LIMIT // 2] + f"\n... [{len(text) - EVIDENCE_LIMIT} "
            f"characters cut] ...\n" + text[-EVIDENCE_LIMIT // 2:])


@pytest.mark.parametrize("server, check, want", pairs())
def test_check_gives_expected_verdict(host, artifact_dir, server, check, want):
    command = command_line(server)
    verdict = run_check(KNOWN[check], host,
                        lambda h: Server(h, command, server["port"]),
                        artifact_dir)
    got = "pass" if verdict.passed else "FAIL"
    assert got == want, (
        f"{server['name']} ({server['defect']}): {check} should {want}, got "
        f"{got}: {verdict.summary}\n{bounded(verdict.evidence)}\n"
        f"command: {command} (port {server['port']})")


@pytest.mark.parametrize("server", [s for s in SERVERS if "refused" in s],
                         ids=lambda s: s["name"])
def test_not_a_server_is_refused(hosts_possible, artifact_dir, server):
    command = command_line(server)
    with pytest.raises(NotAServer) as refused:
        preflight(lambda h: Server(h, command, server["port"]), artifact_dir)
    assert server["refused"] in str(refused.value), (
        f"{server['name']} ({server['defect']}) was refused, but the reason does "
        f"not say {server['refused']!r}: {refused.value}")


def test_manifest_has_a_must_fail_and_a_must_pass_for_every_check():
    """A check no zoo server must fail could be made lenient unseen, and one
    no server must pass could be made stricter unseen."""
    wanted = {name: set() for name in [*KNOWN, *PLANNED]}
    for s in SERVERS:
        for check, want in s.get("expect", {}).items():
            if s["protocol"] == "echo":
                wanted[check].add(want)
    missing = {name: sorted({"pass", "FAIL"} - seen)
               for name, seen in wanted.items() if {"pass", "FAIL"} - seen}
    assert not missing, f"checks without a server that must give each verdict: {missing}"
