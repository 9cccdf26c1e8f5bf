"""faultline bench works and its report is whole: a --quick run on real
hosts, the validation of a report (one that must pass it, ones that must
fail it), the parsing of strace's table, the usage errors. No figure is
asserted here: timings are the bench's to report (docs/PERFORMANCE.md),
never a test's to hold."""

import json

import pytest

from faultline import bench

from test_cli import clean_env, faultline, seen

pytestmark = pytest.mark.harness


def fake_report(rounds=2, **change):
    """A report as build_report makes it, from made-up rounds: every echod
    model and its minimal server, one peer, the scale runs."""
    settings = bench.Settings(rounds=rounds, client_workers=(1, 4), stream_conns=(1,))
    chosen = [s for s in bench.subjects(settings) if s.family != "peer"
              or s.name == "socat-pipe"]
    one = {"conn_per_s_w1": 1000.0, "conn_per_s_w4": 2000.0, "mb_per_s_c1": 300.0,
           "cpu_us_per_conn": 50.0, "cpu_s_per_gb": 1.5, "client_errors": 0,
           **{f"{q}_us_w{w}": 100.0 for q in ("p50", "p99", "max") for w in (1, 4)}}
    rounds_ = {s.name: [dict(one) for _ in range(rounds)] for s in chosen}
    syscalls = {s.name: {"connections": 10, "per_conn": 12.0, "by_syscall": {}}
                for s in chosen}
    scaled = {"echod-fork": {"wanted": 10, "held": 10, "open_seconds": 0.1,
                             "client_error": "", "children_at_peak": 10,
                             "children_after": 0, "zombies_after": 0,
                             "reap_seconds": 0.1},
              "echod-epoll": {"wanted": 100, "held": 100, "open_seconds": 0.1,
                              "client_error": "", "server_fds_at_peak": 104}}
    for name, (metric, value) in change.items():
        rounds_[name.replace("_", "-")][0][metric] = value
    ms = {"median": 4.0, "min": 3.0, "max": 9.0}
    harness = {"ready_ms_spare": ms, "host_ms_spare": ms, "ready_ms_on_demand": ms,
               "host_ms_on_demand": ms}
    return bench.build_report(settings, chosen, rounds_, syscalls, scaled, {}, harness)


def test_a_whole_report_validates():
    report = fake_report()
    assert bench.validate(report) == [], bench.validate(report)
    assert report["ratios"]["echod-fork"]["conn_per_s_w1"] == 1.0, report["ratios"]


@pytest.mark.parametrize("breakage, expected", [
    (lambda r: r["subjects"]["echod-poll"]["rounds"][1].pop("mb_per_s_c1"),
     "echod-poll round 2: mb_per_s_c1 is None"),
    (lambda r: r["subjects"]["min-thread"]["rounds"][0].update(conn_per_s_w1=0.0),
     "min-thread round 1: no connection was echoed"),
    (lambda r: r["subjects"]["socat-pipe"]["rounds"].pop(),
     "socat-pipe: 1 round(s), not 2"),
    (lambda r: r["subjects"]["echod-thread"].update(syscalls=None),
     "echod-thread: no syscall count"),
    (lambda r: r["scale"]["echod-fork"].update(zombies_after=3),
     "scale echod-fork: 3 zombie(s) after"),
    (lambda r: r["scale"]["echod-epoll"].update(held=50, client_error="Too many open files"),
     "scale echod-epoll: held 50 of 100 (Too many open files)"),
    (lambda r: r["ratios"].pop("echod-prefork"),
     "echod-prefork: no conn/s ratio against min-prefork"),
    (lambda r: r["harness"].pop("ready_ms_spare"),
     "harness: no ready ms spare figure"),
    (lambda r: r["subjects"].update({"echod-poll+events": r["subjects"]["echod-poll"]}),
     "echod-poll+events: no ratio against echod-poll"),
    (lambda r: (r["settings"].update(suite=True),
                r["harness"].update(suite={"exit": 0, "summary": "1 passed"},
                                    k_zombie_warm={"exit": 1, "summary": "1 failed"})),
     "harness: k zombie warm did not pass: 1 failed"),
], ids=["metric-missing", "nothing-echoed", "round-missing", "no-syscalls", "zombies",
        "scale-short", "ratio-missing", "harness-missing", "events-ratio-missing",
        "suite-failed"])
def test_a_broken_report_does_not_validate(breakage, expected):
    report = fake_report()
    breakage(report)
    problems = bench.validate(report)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_timed_test_run_says_how_long_and_how_it_ended(tmp_path):
    """bench --suite's timer, on a run of one quick test and on one that
    selects nothing (pytest's exit 5: not a pass)."""
    quiet = bench.Progress(1, stream=open(tmp_path / "progress", "w"))
    run = bench.time_pytest(["pytest", "--no-build", "-q", "-p", "no:xdist",
                             "pytest/test_bench.py::test_paired_ratio_pairs_rounds"],
                            quiet, "one test")
    assert run["exit"] == 0 and run["summary"].startswith("1 passed") \
        and run["seconds"] > 0, run
    run = bench.time_pytest(["pytest", "--no-build", "-q", "-p", "no:xdist", "-k",
                             "no_test_has_this_name"], quiet, "none")
    assert run["exit"] == 5 and "deselected" in run["summary"], run


def test_paired_ratio_pairs_rounds():
    """A ratio is of two servers in the same round: a slow round slows both."""
    ours = [{"m": 100.0}, {"m": 50.0}, {"m": 200.0}]
    theirs = [{"m": 200.0}, {"m": 100.0}, {"m": 400.0}]
    assert bench.paired_ratio(ours, theirs, "m") == 0.5


def test_strace_summary_is_read_whole():
    text = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.000400          20        20           read
 30.00    0.000300          15        20         2 accept
 30.00    0.000300          15        10           clone
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000          20        50         2 total
"""
    assert bench.parse_strace_summary(text) == {"read": 20, "accept": 20, "clone": 10}


@pytest.mark.parametrize("argv, says", [
    (["--client-workers", "0"], "--client-workers wants numbers from 1 to 1024"),
    (["--stream-conns", "a,b"], "--stream-conns wants numbers separated by commas"),
    (["--only", "echod-nope"], "--only: no server named echod-nope"),
    (["--seconds", "0"], "--seconds wants a number above 0"),
    (["--rounds", "0"], "--rounds wants a number from 1 to 100"),
], ids=["client-workers", "stream-conns", "only", "seconds", "rounds"])
def test_bench_usage_error_is_one_line(argv, says, tmp_path):
    proc = faultline("bench", *argv, env=clean_env(FAULTLINE_ARTIFACTS=tmp_path), timeout=20)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], seen(proc)
    assert not any(tmp_path.iterdir()), f"it ran something: {list(tmp_path.iterdir())}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_bench_writes_a_whole_report(hosts_possible, faultline_built, tmp_path):
    """Every server, every step (loads, strace, scale), the table, the JSON
    and the chart; not one figure judged."""
    out = tmp_path / "out"
    proc = faultline("bench", "--quick", "--out", out, timeout=580,
                     env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    assert proc.returncode == 0, seen(proc)
    report = json.loads((out / "bench.json").read_text())
    assert bench.validate(report) == [], f"{bench.validate(report)}{seen(proc)}"
    names = [s.name for s in bench.subjects(bench.Settings())]
    measured = set(report["subjects"]) | set(report["skipped"])
    assert measured == set(names), f"measured {sorted(measured)}, not {names}"
    table = (out / "bench.md").read_text()
    missing = [n for n in report["subjects"] if f"| {n} |" not in table]
    assert not missing and table in proc.stdout, f"rows missing {missing}:\n{table}"
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", \
        f"{out / 'bench.png'} is not a PNG"
    assert "bench [100%]" in proc.stderr, f"no progress line reached the end{seen(proc)}"
    assert "| spare host (a test's usual case) |" in table, table
