"""faultline storm (docs/STORM.md): a seeded storm that sound echod passes
on every model, a planted defect it finds and shrinks to a scenario file
that fails on replay (and passes once the defect is gone), the judging
of cut and corrupted connections on both sides of its line, replay from
the seed, and one-line usage errors."""

import subprocess
import sys

import pytest

from faultline import paths, shrink, storm

from test_cli import faultline, seen

pytestmark = pytest.mark.faults

SEED = 20261207


def described(runs):
    lines = [storm.table(runs)]
    for r in runs:
        lines += [f"{r.model}: {name}: {said}" for name, said in r.failed.items()]
        lines.append(f"{r.model} plan: {r.rules}; artifacts {r.workdir}")
    return "\n".join(lines)


@pytest.mark.slow
def test_a_5000_connection_storm_leaves_sound_echod_whole_on_every_model(
        faultline_built, hosts_possible, artifact_dir):
    # 1,000 connections on each of the five models: 5,000 in all, ~15 s.
    settings = storm.Settings(seed=SEED, connections=1000, duration=30, shrink=False)
    runs, _ = storm.storm(settings, artifact_dir, out=sys.stdout, err=sys.stdout)
    assert [r.model for r in runs] == list(storm.MODELS)
    assert all(r.passed for r in runs), described(runs)
    # Not a storm that did nothing: faults fired and cut connections, and
    # every connection came to an end.
    assert all(r.counts["faults"] > 0 for r in runs), described(runs)
    assert sum(r.counts["cut_explained"] for r in runs) > 0, described(runs)
    assert all(sum(r.client["outcomes"].values()) == 1000 and
               not {"pending", "unstarted", "unfinished"} & set(r.client["outcomes"]) for r in runs), \
        described(runs)


def test_the_same_seed_replays_the_same_plan_and_client_actions(
        faultline_built, hosts_possible, artifact_dir):
    first, again = (storm.run_model("fork", 5, 100, 20, artifact_dir / name)
                    for name in ("first", "again"))
    other = storm.run_model("fork", 6, 100, 20, artifact_dir / "other")

    def actions(run):
        return [(length, action) for _p, length, *_rest, action in run.client["conn"]]
    assert first.rules == again.rules and actions(first) == actions(again), \
        f"{first.rules} vs {again.rules}"
    assert (first.rules, actions(first)) != (other.rules, actions(other)), \
        "seeds 5 and 6 gave the same storm"


def test_a_storm_finds_reap_wait_and_shrinks_it_to_a_scenario_that_fails_on_replay(
        faultline_built, hosts_possible, artifact_dir):
    settings = storm.Settings(seed=SEED, connections=300, models=("fork",), duration=20,
                              defect="reap-wait")
    runs, files = storm.storm(settings, artifact_dir, out=sys.stdout, err=sys.stdout)
    assert "zombies" in runs[0].failed, described(runs)
    assert len(files) == 1, f"no scenario file written\n{described(runs)}"
    text = files[0].read_text()
    assert len(text.splitlines()) <= 20, text
    replay = faultline("run", str(files[0]), timeout=60)
    assert replay.returncode == 1 and "zombie children (expected 0)" in replay.stdout, \
        seen(replay) + "\n" + text
    # The file fails for the defect, not for itself: without it, it passes.
    sound = artifact_dir / "without-the-defect.toml"
    sound.write_text(text.replace('reap = "wait"\n', ""))
    control = faultline("run", str(sound), timeout=60)
    assert control.returncode == 0, seen(control) + "\n" + sound.read_text()


def events_for(port, conn, fault=None):
    evs = [{"event": "accept", "conn": conn, "peer": f"127.0.0.1:{port}"}]
    if fault:
        evs.append({"event": "fault", "action": fault, "conn": conn})
    return evs


@pytest.mark.parametrize("outcome, fault, corrupted, broken", [
    ("ok", None, 0, set()),
    ("short", "rst", 0, set()),
    ("reset", "kill", 0, set()),
    ("short", None, 0, {"unexplained_cut"}),
    ("timeout", "short", 0, {"unexplained_cut"}),   # short=N cuts nothing
    ("short", "drop", 3, set()),
    ("ok", None, 3, {"corrupted"}),
    ("short", "rst", 3, {"corrupted"}),
    ("unstarted", None, 0, {"client"}),
    ("unfinished", None, 0, {"client"}),   # open when --duration ran out: no cut
])
def test_cut_and_corrupted_connections_are_judged_against_the_fault_events(
        outcome, fault, corrupted, broken):
    run = storm.ModelRun("fork", [], [])
    run.client = {"conn": [[40000, 100, 100, 50, outcome, 7 if corrupted else -1,
                            corrupted, "echo"]]}
    storm.judge_clients(run, events_for(40000, 1, fault))
    assert set(run.failed) == broken, run.failed


def test_a_shrunk_file_names_what_it_needs_and_nothing_else():
    c = shrink.Candidate("fork", "wait", (), (), 2, "zombies", seed=1, talk=False)
    text = shrink.render(c)
    assert text.startswith("# Expected packets") and 'reap = "wait"' in text, text
    assert "faults" not in text and "echod =" not in text, text
    withrules = shrink.render(shrink.Candidate("thread", "waitpid", ("--sigpipe", "ignore"),
                                               ("rst@after_read,conn=1",), 3, "fds"))
    assert 'faults = ["rst@after_read,conn=1"]' in withrules, withrules
    assert '"mark_fds"' in withrules and "fd_growth = 0" in withrules, withrules
    assert shrink.split_reap(["--reap", "none", "--leak-connfd"]) == ("none",
                                                                     ("--leak-connfd",))


@pytest.mark.parametrize("argv, says", [
    (["--models", "fork,bogus"], "unknown model 'bogus'"),
    (["--connections", "0"], "--connections 0: out of range"),
    (["--duration", "0"], "--duration 0: out of range"),
    (["--defect", "typo"], "invalid choice: 'typo'"),
])
def test_a_bad_storm_argument_is_one_line_and_exit_2(argv, says):
    proc = faultline("storm", *argv)
    assert proc.returncode == 2 and says in proc.stderr, seen(proc)
    assert len(proc.stderr.strip().splitlines()) == 1, seen(proc)


def test_stormc_refuses_a_bad_argument_in_one_line(faultline_built):
    proc = subprocess.run([storm.stormc_path(), "--port", "9877", "--conns", "0",
                           "--concurrency", "1", "--seed", "1"],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "--conns '0'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert paths.BUILD_DIR in storm.stormc_path().parents


def test_a_server_that_dies_in_the_storm_breaks_server_alive(
        faultline_built, hosts_possible, artifact_dir):
    # kill in the thread model ends the whole server: what the storm's own
    # plans never draw, given here as the plan.
    run = storm.run_model("thread", SEED, 100, 20, artifact_dir,
                          rules=["kill@after_read,conn=3"])
    assert "server_alive" in run.failed, described([run])
    assert run.counts.get("unexplained", 0) > 0, described([run])


def test_echod_that_cannot_start_is_a_broken_run_not_a_traceback(
        faultline_built, hosts_possible, artifact_dir):
    run = storm.run_model("fork", SEED, 10, 5, artifact_dir, rules=["kill@nowhere"])
    assert "echod did not start" in run.failed.get("server_alive", ""), described([run])


def test_a_failure_that_needs_a_fault_shrinks_to_that_rule_alone(
        faultline_built, hosts_possible, artifact_dir):
    # The seed's own plan for thread, plus a rule that ends the server at
    # the 3rd connection's first read: the shrinker must keep that rule,
    # drop the others, and keep the 3 connections it needs. The killer
    # comes first: the plan's drop@after_read fires on a tenth of the reads,
    # in whatever order the threads reach them, and a rule that fires ends
    # the evaluation at its point (docs/FAULTS.md), so after it the killer
    # could miss that read.
    killer = "kill@after_read,conn=3"
    settings = storm.Settings(seed=9, connections=200, models=("thread",), duration=20)
    rules = [killer] + storm.plan(9, "thread", 200)
    run = storm.run_model("thread", 9, 200, 20, artifact_dir / "thread", rules=rules)
    assert "server_alive" in run.failed, described([run])
    path = storm.shrink_run(run, settings, artifact_dir, out=sys.stdout)
    assert path is not None, described([run])
    spec = shrink.scenario.load(path)
    assert spec["server"].get("faults") == [killer], path.read_text()
    assert spec["step"][0]["count"] == 3, path.read_text()
    replay = faultline("run", str(path), timeout=60)
    assert replay.returncode == 1 and "server alive: False (expected True)" in \
        replay.stdout, seen(replay)


def test_the_storm_command_prints_its_seed_and_table(faultline_built, hosts_possible,
                                                     artifact_dir):
    proc = faultline("storm", "--seed", "4", "--connections", "50", "--models", "poll",
                     "--duration", "20", "--out", str(artifact_dir / "cli"))
    assert proc.returncode == 0, seen(proc)
    assert proc.stdout.startswith("storm seed 4:") and "\npoll " in proc.stdout, seen(proc)
    assert "seed 4; replay: faultline storm --seed 4 --connections 50 --models poll" in \
        proc.stdout, seen(proc)


def test_connections_open_when_the_duration_ends_are_unfinished_not_cut(
        faultline_built, hosts_possible, artifact_dir):
    """Every session stalls: when --duration runs out the open connections
    are the run's length, not the server's doing (once they were counted
    as unexplained cuts)."""
    run = storm.run_model("fork", SEED, 20, 1, artifact_dir,
                          rules=["stall@before_read"])
    outcomes = run.client["outcomes"]
    assert outcomes.get("unfinished", 0) > 0 and "timeout" not in outcomes, described([run])
    assert "client" in run.failed and "unexplained_cut" not in run.failed, described([run])
