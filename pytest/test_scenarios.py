"""Every scenario file in fixtures/scenarios, run by the same engine as
`./faultline run`, so a scenario and its test cannot drift apart. Each
carries its phenomenon's marker (`pytest -m premature` runs its files)."""

import shutil
import subprocess

import pytest

from faultline import demo, scenario

FILES = scenario.all_scenarios()


def _param(path):
    marks = [getattr(pytest.mark, m) for m in scenario.markers(scenario.load(path))]
    return pytest.param(path, id=path.stem, marks=[pytest.mark.scenario, *marks])


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_scenario(hosts_possible, artifact_dir, path):
    result = scenario.run(path, artifact_dir / "run")
    assert result.passed, result.report() + "\n\n" + "\n\n".join(result.failures)


def test_there_is_a_scenario_for_every_seed_experiment():
    sources = {scenario.load(p).get("source", "") for p in FILES}
    for needed in ("UNP 5.9", "UNP 5.10", "UNP 5.12", "UNP 5.13", "UNP 6.4",
                   "UC3M ex. 5", "FreeBSD 7.7", "SIGTERM", "SO_LINGER 0"):
        assert needed in sources, f"no scenario file for {needed}: {sorted(sources)}"


@pytest.mark.pcap
def test_a_scenario_pcap_opens_in_tshark(hosts_possible, artifact_dir):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (ci/install-deps installs it)")
    path = scenario.SCENARIO_DIR / "unp-5.10-no-reaper.toml"
    result = scenario.run(path, artifact_dir / "run")
    assert result.passed, result.report()
    shown = subprocess.run(["tshark", "-r", str(artifact_dir / "run" / f"{path.stem}.pcap"),
                            "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 5, shown.stdout


def test_every_step_and_expectation_is_documented():
    text = (scenario.paths.REPO / "docs" / "SCENARIOS.md").read_text()
    missing = [f"`{name}`" for name in [*scenario.STEPS, *scenario.EXPECTATIONS]
               if f"`{name}`" not in text and f"`{name} =" not in text]
    assert not missing, f"docs/SCENARIOS.md does not describe {', '.join(missing)}"


# --- the verdict line and the demo that prints it ---------------------------

def test_a_verdict_is_filled_from_the_measurements(tmp_path):
    state = scenario.Run({}, None, tmp_path)
    state.measured.update({"c.status": 4, "slow.echo_ms": 1003.6})
    spec = {"verdict": "exit {c.status}, echo after {slow.echo_ms:.0f} ms"}
    assert scenario.judge(state, spec) == "exit 4, echo after 1004 ms"
    assert not state.failures, state.failures


def test_a_verdict_naming_what_no_step_recorded_fails_the_run(tmp_path):
    state = scenario.Run({}, None, tmp_path)
    state.measured["c.status"] = 4
    assert scenario.judge(state, {"verdict": "exit {d.status}"}) is None
    assert state.failures and "nothing measured 'd.status'" in state.failures[0], (
        state.failures)


def test_a_verdict_naming_no_gauge_is_refused_when_the_file_loads(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('# no packets\ntitle = "t"\nverdict = "{zombiez} zombies"\n'
                    '[[step]]\ndo = "wait_idle"\n')
    with pytest.raises(scenario.ScenarioError, match="'zombiez', which nothing measures"):
        scenario.load(path)


@pytest.mark.parametrize("server, said", [
    ('drain = 5000', "[server] unknown key 'drain'"),
    ('drain_ms = "5s"', "[server] drain_ms = '5s': wants echod --drain-timeout in ms"),
    ('faults = "delay=1s@before_read"', "wants echod --fault specs, a list"),
])
def test_a_server_table_typo_is_refused_when_the_file_loads(tmp_path, server, said):
    path = tmp_path / "typo.toml"
    path.write_text(f'# no packets\ntitle = "t"\n[server]\n{server}\n'
                    '[[step]]\ndo = "wait_idle"\n')
    with pytest.raises(scenario.ScenarioError) as refused:
        scenario.load(path)
    assert said in str(refused.value), str(refused.value)


def test_every_server_key_is_documented():
    text = (scenario.paths.REPO / "docs" / "SCENARIOS.md").read_text()
    missing = [key for key in scenario.SERVER_KEYS if f"\n{key} =" not in text
               and f"# {key} =" not in text]
    assert not missing, f"docs/SCENARIOS.md's [server] example lacks {', '.join(missing)}"


def test_at_least_holds_at_the_bound_and_fails_below_it(tmp_path):
    state = scenario.Run({}, None, tmp_path)
    state.measured.update({"slow.echo_ms": 1000.0, "fast.echo_ms": 999.9})
    scenario.expect_at_least(state, {"slow.echo_ms": 1000})
    assert not state.failures, state.failures
    scenario.expect_at_least(state, {"fast.echo_ms": 1000})
    assert len(state.failures) == 1 and "expected at least 1000" in state.failures[0]


class ReloadingServer:
    """A server whose answer to SIGHUP is given: what step_reload reads."""

    def __init__(self, workdir, event):
        self.config_path = workdir / "echod.conf"
        self.event = event

    def reload(self, config):
        return self.event


def test_a_failed_reload_must_give_the_error_the_file_names(tmp_path):
    state = scenario.Run({}, None, tmp_path)
    said = "echod.conf:2: unknown key 'bogus'"
    state.server = ReloadingServer(tmp_path, {"event": "reload_failed",
                                              "error": f"{tmp_path}/{said}"})
    step = {"do": "reload", "config": "bogus = 3\n", "result": "reload_failed",
            "as": "broken"}
    scenario.step_reload(state, {**step, "error_has": said})
    assert state.measured["broken.error"] == said, state.measured
    with pytest.raises(scenario.Failed, match="does not say 'echod.conf:3'"):
        scenario.step_reload(state, {**step, "error_has": "echod.conf:3"})


def test_the_demo_shows_every_seed_experiment_from_its_file_in_order():
    shown = [(path.stem, demo.label(spec), bool(spec["demo"].get("table")))
             for path, spec in demo.demo_scenarios()]
    assert shown == [
        ("unp-5.10-no-reaper", "none", True),
        ("unp-5.10-lost-sigchld", "wait", True),
        ("unp-5.10-waitpid-loop", "waitpid", True),
        ("unp-5.12-premature-block", "premature", False),
        ("unp-6.4-premature-select", "premature", False),
        ("unp-5.13-sigpipe", "sigpipe", False),
        ("rst-before-close", "rst", False),
        ("delayed-reads", "delay", False),
        ("freebsd-leaked-connfd", "close_wait", False),
        ("freebsd-sighup-reload", "reload", False),
        ("sigterm-drain", "shutdown", False),
        ("unp-5.9-eintr", "eintr", False),
    ], shown


DEMO_FILE = '''# Expected packets: one handshake, "hi" and its echo.
title = "{name}"
source = "test"
marker = "rst"
verdict = "{verdict}"

[demo]
order = {order}
table = {table}

[server]
{server}

[[step]]
do = "connect"
as = "a"

[[step]]
do = "send"
on = "{on}"
data = "hi\\n"

[[step]]
do = "expect_echo"
on = "a"
data = "hi\\n"

[expect]
zombies = {zombies}
'''


def test_the_demo_prints_a_fail_line_for_a_failing_or_raising_file_and_goes_on(
        hosts_possible, artifact_dir, tmp_path, capsys):
    never = "never printed"
    files = [  # name, server, group sent on, zombies expected, verdict
        ("raises", 'command = "false"', "a", 0, never),   # never listens
        ("wrong-step", "", "nobody", 0, never),          # a group no step made
        ("fails", "", "a", 3, never),
        ("holds", "", "a", 0, "{zombies} zombies, {a.echo}"),
    ]
    chosen = []
    for order, (name, server, on, zombies, verdict) in enumerate(files, 1):
        path = tmp_path / f"{name}.toml"
        path.write_text(DEMO_FILE.format(name=name, order=order, server=server, on=on,
                                         zombies=zombies, verdict=verdict,
                                         table="false"))
        chosen.append((path, scenario.load(path)))
    row = tmp_path / "row.toml"  # a failing row of the reaper table
    row.write_text(DEMO_FILE.format(name="row", order=0, server="", on="a", zombies=3,
                                    verdict=never, table="true"))
    chosen.insert(0, (row, scenario.load(row)))
    status = demo.run(chosen, artifact_dir / "demo")
    out, err = capsys.readouterr()
    said = [line.strip() for line in out.splitlines()
            if line.strip().startswith(("ok ", "FAIL "))]
    assert status == 1, out
    assert "rst             ?        0  ? opened, ? closed  FAIL: 0 zombie children " \
           "(expected 3)" in out.splitlines(), out
    assert "None" not in out, out
    assert said[0].startswith("FAIL rst        test         ServerCrashed: server exited (1) "
                              "before listening on port 9877"), out
    assert said[1] == ("FAIL rst        test         step 2 (send): no connections named "
                       "'nobody' (connect as = ... first)"), out
    assert said[2] == "FAIL rst        test         0 zombie children (expected 3)", out
    assert said[3] == "ok   rst        test         0 zombies, b'hi\\n'", out
    assert never not in out and "Traceback" not in out + err, out + err
    assert "fails: the phenomenon did not show as expected" in err, err
