"""The zoo: faultline's checks proven on servers with one known defect or
none (zoo/zoo.toml, the servers in zoo/). For every server and every check
that applies, the check must give the verdict the manifest expects, so a
check made more lenient (it passes a server it must fail) or stricter (it
fails a server it must pass) fails this file. Nothing here is an xfail: a
test that records a known-wrong verdict is a test that cannot fail.

Each (server, check) pair is one test, run in-process through
checkrun.run_check with the Options `faultline check` would build from the
server's `options` (cli.check_arguments on the same argv): a fresh host and
a freshly started server per check, so one test costs what one line of
`./faultline check` costs, and xdist spreads them.

An expectation "any" (a race the server itself leaves open, zoo.toml says
which) is still run: the check must give a verdict, pass or FAIL, never an
ERROR nor a skip.

    pytest pytest/test_zoo.py -k fork_leaks_connfd       # one server
    pytest pytest/test_zoo.py -k 'zombies'               # one check, every server
"""

import subprocess
import tomllib

import pytest

from faultline import checks, cli, paths
from faultline.checkrun import NotAServer, preflight, run_check
from faultline.server import Server

pytestmark = [pytest.mark.zoo, pytest.mark.slow]

ZOO = paths.REPO / "zoo"
MANIFEST = ZOO / "zoo.toml"
VERDICTS = ("pass", "FAIL")
EVIDENCE_LIMIT = 6000  # characters of a check's evidence in a failure message
KNOWN = {c.name: c for c in checks.CHECKS}


class Expectation:
    """One manifest entry: `check = "pass"`, or an inline table
    `{verdict = "FAIL", cause = "..."}` whose cause the verdict's summary
    must contain, or `{verdict = "any", race = "..."}`."""

    def __init__(self, where, entry):
        entry = {"verdict": entry} if isinstance(entry, str) else dict(entry)
        self.verdict = entry.pop("verdict", None)
        self.cause = entry.pop("cause", None)
        self.race = entry.pop("race", None)
        if self.verdict not in (*VERDICTS, "any"):
            raise ValueError(f"{where}: verdict {self.verdict!r}; expected pass, FAIL "
                             f"or any")
        if (self.verdict == "any") != (self.race is not None):
            raise ValueError(f"{where}: 'any' and only 'any' comes with race = "
                             f"'what was observed'")
        if entry:
            raise ValueError(f"{where}: unknown keys {sorted(entry)}")


def manifest():
    with open(MANIFEST, "rb") as f:
        servers = tomllib.load(f)["server"]
    for s in servers:
        for key in ("today",):
            if key in s:
                raise ValueError(f"{MANIFEST}: {s['name']}: no {key!r} table any more")
        for check in s.get("expect", {}):
            if check not in KNOWN:
                raise ValueError(f"{MANIFEST}: {s['name']}: unknown check {check!r}")
        s["expect"] = {check: Expectation(f"{MANIFEST}: {s['name']}: {check}", e)
                       for check, e in s.get("expect", {}).items()}
    return servers


SERVERS = manifest()


def pairs():
    for s in SERVERS:
        for check, want in s["expect"].items():
            yield pytest.param(s, check, want, id=f"{s['name']}-{check}")


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


def run_options(server, command):
    """The checkrun.Options `faultline check` builds from this command line
    and the server's `options` (its --protocol, --request, --reply...)."""
    argv = ["check", "--server-cmd", command, "--port", str(server["port"]),
            *server.get("options", [])]
    _, options = cli.check_arguments(cli.make_parser().parse_args(argv))
    return options


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
                        artifact_dir, run_options(server, command))
    got = verdict.status
    allowed = VERDICTS if want.verdict == "any" else (want.verdict,)
    seen = (f"{server['name']} ({server['defect']}): {check} should "
            f"{' or '.join(allowed)}, got {got}: {verdict.summary}\n"
            f"{bounded(verdict.evidence.full())}\n"
            f"notes: {verdict.notes}\ncommand: {command} (port {server['port']}, "
            f"options {server.get('options', [])}); artifacts: {artifact_dir}")
    assert got in allowed, seen
    if want.cause is not None:
        assert want.cause in verdict.summary, f"the cause should say {want.cause!r}; {seen}"


@pytest.mark.parametrize("server", [s for s in SERVERS if "refused" in s],
                         ids=lambda s: s["name"])
def test_not_a_server_is_refused(hosts_possible, artifact_dir, server):
    command = command_line(server)
    with pytest.raises(NotAServer) as refused:
        preflight(lambda h: Server(h, command, server["port"]), artifact_dir,
                  run_options(server, command))
    message = str(refused.value)
    assert server["refused"] in message and "\n" not in message.strip(), (
        f"{server['name']} ({server['defect']}) should be refused in one line "
        f"saying {server['refused']!r}: {message!r}")


def test_manifest_has_a_must_fail_and_a_must_pass_for_every_check():
    """A check no zoo server must fail could be made lenient unseen, and one
    no server must pass could be made stricter unseen."""
    wanted = {name: set() for name in KNOWN}
    for s in SERVERS:
        for check, want in s["expect"].items():
            wanted[check].add(want.verdict)
    missing = {name: sorted(set(VERDICTS) - seen)
               for name, seen in wanted.items() if set(VERDICTS) - seen}
    assert not missing, f"checks without a server that must give each verdict: {missing}"


def test_manifest_applies_every_check_that_applies():
    """Every server is held to every check its protocol allows: an echo
    check left out of an echo server's entry is a verdict nobody asserts."""
    for s in SERVERS:
        if "refused" in s:
            continue
        options = run_options(s, s["command"])
        applies = {c.name for c in checks.CHECKS
                   if options.protocol.echoes or not c.needs_echo}
        assert set(s["expect"]) == applies, (
            f"{s['name']}: checks missing {sorted(applies - set(s['expect']))}, "
            f"not applicable {sorted(set(s['expect']) - applies)}")
