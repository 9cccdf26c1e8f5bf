"""The check runner (python/faultline/checkrun.py) against the zoo's broken
servers (zoo/*.c): whatever the server does -- dies of SIGPIPE, dies on an
EINTR from accept(), ignores SIGTERM, dies at start, listens on another
port, floods its output -- `faultline check` ends in a verdict for every
check, its summary line, an exit status that says which, and complete
artifacts (report.txt, report.json, junit.xml), with the terminal's
evidence bounded. Each detector of the runner has a case that must trip
it and one that must not.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from faultline import checkrun, checks, paths, procs
from faultline.checks import Check, Verdict
from faultline.evidence import SCREEN_ROWS, Evidence, Table
from faultline.server import Server
from faultline.waiting import wait_until

pytestmark = pytest.mark.check

FAULTLINE = paths.REPO / "faultline"
ZOO = paths.BUILD_DIR / "zoo"
SCHEMA = paths.REPO / "fixtures" / "junit.xsd"
PORT = 9877
SCREENFUL = 60   # lines a failing check may print, its evidence included


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Run:
    """One `faultline check` as a process, and what it left."""

    def __init__(self, tmp_path, command, *args, timeout=180):
        self.root = tmp_path / "run"
        self.json_path = tmp_path / "report.json"
        self.junit_path = tmp_path / "junit.xml"
        argv = [str(FAULTLINE), "check", "--server-cmd", command,
                "--artifacts", str(self.root), "--json", str(self.json_path),
                "--junit", str(self.junit_path), *args]
        proc = subprocess.run(argv, cwd=paths.REPO, capture_output=True, text=True,
                              timeout=timeout,
                              env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
        self.argv, self.status = argv, proc.returncode
        self.out, self.err = proc.stdout, proc.stderr

    def seen(self, limit=4000):
        """What it printed, for a failure message (bounded)."""
        return (f"\n$ {' '.join(self.argv)}\nexit {self.status}\n--- stdout\n"
                f"{self.out[-limit:]}\n--- stderr\n{self.err[-limit:]}")

    def line(self, name):
        """The verdict line of check `name`."""
        found = [line for line in self.out.splitlines()
                 if re.match(rf"  (pass|FAIL|ERROR|skip) +{re.escape(name)} ", line)]
        assert len(found) == 1, f"no single verdict line for {name}{self.seen()}"
        return found[0]

    def block(self, name):
        """The verdict line of `name` and the indented lines under it."""
        lines = self.out.splitlines()
        start = lines.index(self.line(name))
        end = start + 1
        while end < len(lines) and lines[end].startswith("        "):
            end += 1
        return lines[start:end]

    def report(self):
        return json.loads(self.json_path.read_text())


def zoo(name):
    return f"{ZOO / name} {PORT}"


def assert_ran_to_its_summary(run, status):
    assert "Traceback" not in run.out + run.err, f"a traceback{run.seen()}"
    assert run.status == status, f"exit {run.status}, not {status}{run.seen()}"
    assert re.search(r"^\d+ checks?: \d+ passed, \d+ failed", run.out, re.M), \
        f"no summary line{run.seen()}"
    for name in ("report.txt", "report.json", "junit.xml"):
        assert (run.root / name).is_file(), f"no {name} in {run.root}{run.seen()}"


def validate_junit(path):
    """xmllint against fixtures/junit.xsd: (exit status, what it said)."""
    proc = subprocess.run(["xmllint", "--noout", "--schema", str(SCHEMA), str(path)],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stderr


# --- a server that dies is a finding ------------------------------------------------

def test_a_server_killed_by_sigpipe_fails_with_its_signal(hosts_possible, tmp_path):
    """poll_sigpipe_default leaves SIGPIPE at its default: the slow
    consumer's close resets a connection it still owes bytes, and the
    flush kills it (the traceback this used to end in: FileNotFoundError
    on /proc/PID/fd of the dead server)."""
    run = Run(tmp_path, zoo("poll_sigpipe_default"), "--check", "slow-consumer")
    assert_ran_to_its_summary(run, 1)
    block = "\n".join(run.block("slow-consumer"))
    assert run.line("slow-consumer").startswith(
        "  FAIL  slow-consumer      server died during slow-consumer: killed by signal "
        "13 (SIGPIPE)"), run.seen()
    assert "Connection reset by peer; flushing what it is owed" in block, \
        f"its last stderr line is not in the evidence{run.seen()}"


def test_a_sound_server_does_not_die_during_the_same_check(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_correct"), "--check", "slow-consumer")
    assert_ran_to_its_summary(run, 0)
    assert run.line("slow-consumer").startswith("  pass  slow-consumer"), run.seen()


def test_a_server_whose_accept_eintr_is_fatal_fails_with_its_exit_status(
        hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_accept_eintr_fatal"), "--check", "eintr")
    assert_ran_to_its_summary(run, 1)
    assert run.line("eintr").startswith(
        "  FAIL  eintr              server died during eintr: exit status 1"), \
        run.seen()
    said = "ppoll(the wait for a connection): Interrupted system call"
    assert said in "\n".join(run.block("eintr")), run.seen()


def test_a_server_that_retries_eintr_passes_it(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_correct"), "--check", "eintr")
    assert_ran_to_its_summary(run, 0)
    assert run.line("eintr").startswith("  pass  eintr"), run.seen()


# --- a server slow to stop is stopped, and the verdict says so ----------------------

def test_a_server_that_ignores_sigterm_is_killed_and_noted(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_ignores_sigterm"), "--check", "zombies",
              "--check", "close-wait")
    assert_ran_to_its_summary(run, 0)
    for name in ("zombies", "close-wait"):
        assert run.block(name)[1:] == [
            "        note: the server did not exit within 2 s of SIGTERM: stopped "
            "with SIGKILL"], run.seen()
    notes = [c["notes"] for c in run.report()["checks"]]
    assert all(len(n) == 1 for n in notes), f"notes in report.json: {notes}"


def test_a_server_that_stops_on_sigterm_gets_no_note(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_correct"), "--check", "zombies")
    assert_ran_to_its_summary(run, 0)
    assert run.block("zombies") == [run.line("zombies")], run.seen()


# --- servers that are not servers: one line, exit 2 -------------------------------

def test_a_server_that_dies_at_start_is_refused_in_one_line(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("dies_at_start"))
    lines = run.err.splitlines()
    assert run.status == 2 and len(lines) == 1 and not run.out, run.seen()
    assert "exit status 1" in lines[0] and "cannot open" in lines[0], run.seen()


def test_a_server_on_another_port_is_refused_with_that_port(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("listens_on_wrong_port"), "--start-timeout", "1")
    lines = run.err.splitlines()
    assert run.status == 2 and len(lines) == 1 and not run.out, run.seen()
    assert "timed out after 1s" in lines[0] and f"it listens on {PORT + 1}" in lines[0], \
        run.seen()


def test_a_server_that_never_listens_is_refused_and_stopped(hosts_possible, tmp_path):
    """Alive but listening nowhere (it neither dies, like dies_at_start,
    nor listens elsewhere): refused once its start timeout is spent, in one
    line, and not left running."""
    never = "sleep 617"
    run = Run(tmp_path, never, "--start-timeout", "1")
    lines = run.err.splitlines()
    assert run.status == 2 and len(lines) == 1 and not run.out, run.seen()
    assert "timed out after 1s" in lines[0] and "it listens on no TCP port" in lines[0], \
        run.seen()
    try:
        wait_until(lambda: not running(never), 5, f"'{never}' to be gone")
    except AssertionError:
        pytest.fail(f"'{never}' left running: pids {running(never)}{run.seen()}")


def running(command):
    """The pids on the machine whose argv is the words of command."""
    argv = command.encode().split()
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:-1] == argv:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


# --- bounded on the terminal, whole in the artifacts --------------------------------

def test_a_flooding_server_keeps_bounded_output(hosts_possible, tmp_path):
    """fork_floods_output copies every echoed byte to stdout: more than the
    8 MiB of binary-echo's largest payload."""
    run = Run(tmp_path, zoo("fork_floods_output"), "--check", "binary-echo")
    assert_ran_to_its_summary(run, 0)
    stdout = run.root / "binary-echo" / "server.stdout"
    size = stdout.stat().st_size
    assert size <= checkrun.OUTPUT_KEPT + 200, f"{stdout}: {size} bytes kept"
    assert b"bytes cut here" in stdout.read_bytes(), f"{stdout}: no mark where it was cut"


def test_small_output_is_kept_whole(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_correct"), "--check", "binary-echo")
    assert_ran_to_its_summary(run, 0)
    stderr = run.root / "binary-echo" / "server.stderr"
    assert b"cut here" not in stderr.read_bytes(), f"{stderr} was cut"


@pytest.mark.slow
def test_a_failing_churn_prints_at_most_a_screenful(hosts_possible, tmp_path):
    """A server that never reaps: 2,000 zombies and 2,000 TIME_WAIT sockets
    after churn, printed a few rows of each, every row in the artifacts."""
    run = Run(tmp_path, zoo("fork_no_sigchld_handler"), "--check", "churn")
    assert_ran_to_its_summary(run, 1)
    block = run.block("churn")
    assert run.line("churn").startswith("  FAIL  churn"), run.seen()
    assert len(block) <= SCREENFUL, f"{len(block)} lines{run.seen()}"
    kept = (run.root / "churn" / "evidence.txt").read_text().splitlines()
    assert len(kept) > 1000 > len(block), (f"evidence.txt holds {len(kept)} lines, the "
                                           f"terminal showed {len(block)}{run.seen()}")


@pytest.mark.slow
def test_churn_diagnoses_2000_live_children_within_its_bound(hosts_possible, tmp_path):
    """fork_children_never_exit keeps every child: churn leaves up to 2,000
    live ones. Each look at them is one process table of the host, not a
    scan of the machine per child (434 s once, against the 20 s bound), so
    the check ends within its cycles' bound plus the most its settle may
    take (10 s)."""
    churn = checks.by_name(["churn"])[0]
    cycles_bound, settle_bound = 20.0, 10.0
    assert f"(at most {cycles_bound:g} s)" in churn.title, churn.title
    run = Run(tmp_path, zoo("fork_children_never_exit"), "--check", "churn")
    assert_ran_to_its_summary(run, 1)
    assert re.match(r"  FAIL  churn +after ([\d,]+) cycles, \1 children still running",
                    run.line("churn")), run.seen()
    seconds = run.report()["checks"][0]["seconds"]
    assert seconds <= cycles_bound + settle_bound, (
        f"churn took {seconds:.1f} s on 2,000 live children{run.seen()}")


def test_json_and_junit_reports_are_complete_and_valid(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_no_sigchld_handler"), "--check", "zombies",
              "--check", "descriptors")
    assert_ran_to_its_summary(run, 1)
    report = run.report()
    assert report == json.loads((run.root / "report.json").read_text())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {"zombies": "FAIL", "descriptors": "pass"}, statuses
    assert report["exit_status"] == 1 and report["totals"]["failed"] == 1, report
    status, said = validate_junit(run.junit_path)
    assert status == 0, f"{run.junit_path} is not valid JUnit XML: {said}"
    xml = run.junit_path.read_text()
    assert xml == (run.root / "junit.xml").read_text()
    failure = re.search(r'<failure type="FAIL" message="([^"]*)"', xml)
    assert failure and f"artifacts: {run.root / 'zombies'}/" in failure.group(1), xml[:3000]
    assert (run.root / "zombies" / "evidence.txt").is_file()
    assert "FAIL  zombies" in (run.root / "report.txt").read_text()


def test_the_junit_schema_rejects_what_consumers_would(tmp_path):
    """The other side of the validation above: a testcase without a name
    and two outcomes in one testcase are not JUnit."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?>\n<testsuites><testsuite name="s" tests="1" '
                   'failures="1" errors="0"><testcase classname="c"><failure/>'
                   '<error/></testcase></testsuite></testsuites>\n')
    status, said = validate_junit(bad)
    assert status != 0, f"{bad} passed the schema: {said}"


# --- the run's artifact folder --------------------------------------------------------

def test_an_earlier_runs_artifacts_are_never_deleted(hosts_possible, tmp_path):
    earlier = tmp_path / "run"
    earlier.mkdir()
    (earlier / "mine.txt").write_text("an earlier run's\n")
    run = Run(tmp_path, zoo("fork_correct"), "--check", "zombies")
    lines = run.err.splitlines()
    assert run.status == 2 and len(lines) == 1 and "--artifacts" in lines[0], run.seen()
    assert (earlier / "mine.txt").read_text() == "an earlier run's\n"


def test_the_default_folder_moves_aside_for_an_earlier_run(hosts_possible, tmp_path):
    argv = [str(FAULTLINE), "check", "--server-cmd", zoo("fork_correct"), "--check",
            "descriptors"]
    env = clean_env(FAULTLINE_ARTIFACTS=tmp_path)
    first, second = (subprocess.run(argv, capture_output=True, text=True, env=env,
                                     timeout=120) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stdout + second.stdout
    assert f"artifacts: {tmp_path / 'check'}/" in first.stdout, first.stdout
    assert f"artifacts: {tmp_path / 'check.2'}/" in second.stdout, second.stdout
    assert "check/ holds an earlier run's, kept" in second.stdout, second.stdout
    assert (tmp_path / "check" / "report.txt").is_file()


@pytest.mark.parametrize("args", [
    ["--protocol", "none", "--request", "x"],
    ["--json", "/nonexistent-folder/r.json"],
    ["--settle", "0"],
    ["--request", "\\x4"],
    ["--server-cmd", ""],
    ["--server-cmd", "  "],
], ids=lambda a: " ".join(map(repr, a)))
def test_usage_error_is_one_line_and_exit_2(args, tmp_path):
    proc = subprocess.run([str(FAULTLINE), "check", "--server-cmd", "x", *args],
                          capture_output=True, text=True, timeout=30,
                          env=clean_env(FAULTLINE_ARTIFACTS=tmp_path))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and not proc.stdout, \
        f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


# --- checks that need no echo --------------------------------------------------------

def test_protocol_none_runs_the_hygiene_checks_on_a_server_that_is_no_echo(
        hosts_possible, tmp_path):
    """fork_banner_first greets before it echoes: wrong as an echo server,
    fine as a TCP server. Under --protocol none the echo checks are skipped,
    with the reason, and the hygiene checks pass."""
    run = Run(tmp_path, zoo("fork_banner_first"), "--protocol", "none",
              "--check", "binary-echo", "--check", "zombies", "--check", "close-wait")
    assert_ran_to_its_summary(run, 0)
    assert run.line("binary-echo") == ("  skip  binary-echo        needs an echo server "
                                       "(this run's protocol: none)"), run.seen()
    assert run.line("zombies").startswith("  pass  zombies            5 children"), \
        run.seen()
    assert run.report()["totals"]["skipped"] == 1


def test_a_server_in_this_folder_named_without_dot_slash_is_pointed_at(hosts_possible,
                                                                       tmp_path):
    """As in a shell, `my-server` is looked for in PATH only; the refusal
    says so, and that ./my-server is here."""
    (tmp_path / "my-server").write_text("#!/bin/sh\nexec sleep 60\n")
    (tmp_path / "my-server").chmod(0o755)
    proc = subprocess.run([str(FAULTLINE), "check", "--server-cmd", "my-server"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, f"exit {proc.returncode}: {proc.stderr}"
    assert "(my-server is not in PATH; ./my-server is in this folder)" in lines[0], lines


def test_a_missing_program_given_by_path_gets_no_path_hint(hosts_possible, tmp_path):
    """The other side: a path is not looked up in PATH, and says only what
    failed."""
    proc = subprocess.run([str(FAULTLINE), "check", "--server-cmd",
                           str(tmp_path / "no-such-server")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, f"exit {proc.returncode}: {proc.stderr}"
    assert lines[0].endswith("exec: No such file or directory"), lines


def test_a_check_named_twice_runs_once(hosts_possible, tmp_path):
    """Twice, it ran twice into one artifact folder."""
    run = Run(tmp_path, zoo("fork_correct"), "--check", "descriptors", "--check",
              "descriptors")
    assert_ran_to_its_summary(run, 0)
    assert run.report()["totals"]["checks"] == 1, run.seen()


def test_protocol_none_still_finds_zombies(hosts_possible, tmp_path):
    run = Run(tmp_path, zoo("fork_no_sigchld_handler"), "--protocol", "none",
              "--check", "zombies")
    assert_ran_to_its_summary(run, 1)
    assert run.line("zombies").startswith(
        "  FAIL  zombies            5 of 5 children exited together were never reaped"), run.seen()


HTTPD = "busybox httpd -f -p 9877 -h {}"


@pytest.fixture
def httpd(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    if not shutil.which("busybox"):
        pytest.fail("busybox is missing: ci/install-deps installs it")
    return HTTPD.format(www)


def test_a_forking_http_server_passes_with_its_request_and_reply(hosts_possible,
                                                                 tmp_path, httpd):
    run = Run(tmp_path, httpd, "--request", "GET / HTTP/1.0\\r\\n\\r\\n",
              "--reply", "HTTP/1.", "--check", "close-wait", "--check", "eintr")
    assert_ran_to_its_summary(run, 0)
    assert run.line("eintr").startswith("  pass  eintr"), run.seen()


def test_a_reply_that_is_not_the_expected_one_fails(hosts_possible, tmp_path, httpd):
    run = Run(tmp_path, httpd, "--request", "GET / HTTP/1.0\\r\\n\\r\\n",
              "--reply", "SSH-2.0", "--check", "close-wait")
    assert_ran_to_its_summary(run, 1)
    assert run.line("close-wait").startswith(
        "  FAIL  close-wait         session 1 of 3: sent b'GET / HTTP/1.0\\r\\n\\r\\n' (18 bytes); wanted "
        "a reply starting b'SSH-2.0', got b'HTTP/1."), run.seen()


# --- the harness's own faults are ERRORs, the server's are FAILs ---------------------

def in_process(tmp_path, *checks_to_run, options=None):
    """run_against in this process, with test-only checks; (report, output)."""
    out = io.StringIO()
    report = checkrun.run_against(lambda h: Server(h, [str(ZOO / "fork_correct"), PORT],
                                                   PORT),
                                  "fork_correct", tmp_path / "run", list(checks_to_run),
                                  out=out, options=options)
    return report, out.getvalue()


def proc_of_a_gone_process(ctx):
    procs.open_fds(2 ** 22 + 1)  # no such pid: the harness lost a race
    return Verdict(True, "not reached")


def kill_then_read_proc(ctx):
    ctx.server.send_signal(9)
    wait_until(lambda: not ctx.server.alive(), 5.0, "the server to die")
    procs.open_fds(ctx.server.pid)
    return Verdict(True, "not reached")


def reset_by_the_server(ctx):
    raise ConnectionResetError(104, "Connection reset by peer")


def adds_a_str(ctx):
    return Verdict(True, "never " + 1)


def passes(ctx):
    return Verdict(True, "fine")


def test_a_bug_in_a_check_is_an_error_with_its_traceback_kept(hosts_possible, tmp_path):
    buggy = Check("buggy", "a check with a bug", adds_a_str, capture=False, needs_echo=False)
    after = Check("after", "the next check", passes, capture=False, needs_echo=False)
    report, out = in_process(tmp_path, buggy, after)
    lines = out.splitlines()
    error = [line for line in lines if "buggy" in line and "ERROR" in line]
    assert len(error) == 1 and "harness error: TypeError:" in error[0], out
    traceback_path = tmp_path / "run" / "buggy" / "traceback.txt"
    assert "in adds_a_str" in traceback_path.read_text(), traceback_path.read_text()
    assert "Traceback" not in out, out
    assert "  pass  after" in out, f"the next check did not run\n{out}"
    assert lines[-1] == "2 checks: 1 passed, 0 failed, 1 error", out
    assert report.exit_status == 1


@pytest.mark.parametrize("fn, status, says", [
    (proc_of_a_gone_process, "ERROR", "harness error: FileNotFoundError"),
    (kill_then_read_proc, "FAIL", "server died during it: killed by signal 9 (SIGKILL)"),
    (reset_by_the_server, "FAIL", "ConnectionResetError: [Errno 104]"),
    (passes, "pass", "fine"),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_what_a_check_raises_is_judged_by_whose_fault_it_is(hosts_possible, tmp_path,
                                                           fn, status, says):
    report, out = in_process(tmp_path, Check("it", "a check", fn, capture=False,
                                             needs_echo=False))
    (_, verdict), = report.results
    assert verdict.status == status and verdict.summary.startswith(says), out


# --- evidence: structured, bounded as text ------------------------------------------

def zombie_table(count):
    rows = ["  100  1  1  S    server"] + [f"  {200 + i}  100  {i}  Z    server <defunct>"
                                          for i in range(count)]
    return "    PID PPID NSPID  STAT COMMAND\n" + "\n".join(rows)


def test_a_long_table_shows_every_state_and_counts_the_rest():
    evidence = Evidence(Table.from_text("process table", zombie_table(2000), "STAT"))
    lines = str(evidence).splitlines()
    assert len(lines) <= SCREEN_ROWS + 3, lines
    assert "S    server" in lines[2], "the one row in state S is not shown"
    assert lines[-1].startswith(f"  ... and {2001 - (len(lines) - 3)} more: "), lines[-1]
    assert "Z" in lines[-1] and len(evidence.full().splitlines()) == 2003


def test_a_short_table_is_shown_whole():
    evidence = Evidence(Table.from_text("process table", zombie_table(5), "STAT"))
    assert str(evidence) == evidence.full() and "more" not in evidence


def test_a_verdict_takes_plain_text_evidence_as_before():
    verdict = Verdict(False, "summary", "line one\nline two")
    assert verdict.evidence == "line one\nline two" and verdict.status == "FAIL"
    assert verdict.evidence.splitlines() == ["line one", "line two"]
    assert Verdict(True, "ok").evidence == "" and Verdict(True, "ok").status == "pass"



# --- Ctrl-C during a check ----------------------------------------------------------

def interrupted_by_ctrl_c(ctx):
    interrupted_by_ctrl_c.server_pid = ctx.server.pid
    raise KeyboardInterrupt


def test_ctrl_c_during_a_captured_check_comes_out_as_ctrl_c(hosts_possible, tmp_path):
    """A captured check's clean-up draws a failed verdict's ladder once the
    capture stops; a Ctrl-C leaves no verdict, and must still come out as
    KeyboardInterrupt (it came out as an UnboundLocalError, and the suite's
    Ctrl-C test saw pytest exit 1, not interrupted)."""
    chk = Check("interrupted", "Ctrl-C in the middle", interrupted_by_ctrl_c,
                capture=True, needs_echo=False)
    with pytest.raises(KeyboardInterrupt):
        checkrun.run_against(lambda h: Server(h, [str(ZOO / "fork_correct"), PORT], PORT),
                             "fork_correct", tmp_path / "run", [chk], out=io.StringIO())
    assert procs.state(interrupted_by_ctrl_c.server_pid) is None, (
        procs.describe(interrupted_by_ctrl_c.server_pid))


def test_a_python_server_raising_at_start_is_refused_naming_its_exception(
        hosts_possible, tmp_path):
    """Of a traceback, the exception (its last line) is what went wrong;
    of other output, the first line (zoo dies_at_start: its usage text
    comes after)."""
    server = ("/usr/bin/python3 -c 'import socket; s = socket.create_server((\"\", 9877)); "
              "raise RuntimeError(\"no zoo.conf here\")'")
    run = Run(tmp_path, server)
    lines = run.err.splitlines()
    assert run.status == 2 and len(lines) == 1, run.seen()
    assert "; it said: RuntimeError: no zoo.conf here" in lines[0], run.seen()


def test_sigterm_ends_a_run_as_ctrl_c_does_with_its_summary_and_reports(hosts_possible,
                                                                        tmp_path):
    """CI stops a job that overran its time with SIGTERM: the run must end
    as after Ctrl-C, its summary printed and its reports written (it died
    at once, exit -15, and wrote none)."""
    json_path = tmp_path / "report.json"
    argv = [str(FAULTLINE), "check", "--server-cmd", zoo("fork_correct"),
            "--artifacts", str(tmp_path / "run"), "--json", str(json_path),
            "--check", "descriptors", "--check", "churn", "--check", "zombies"]
    proc = subprocess.Popen(argv, cwd=paths.REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=clean_env(FAULTLINE_ARTIFACTS=tmp_path / "artifacts"))
    try:
        seen = []
        for line in proc.stdout:  # the first verdict: churn is running now
            seen.append(line)
            if re.match(r"  (pass|FAIL|ERROR) ", line):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + out
    said = f"\n$ {' '.join(argv)}\nexit {proc.returncode}\n{out[-3000:]}\n{err[-2000:]}"
    assert proc.returncode == 128 + signal.SIGTERM, said
    assert re.search(r"\(interrupted; [1-2] not run\)", out), said
    assert "terminated (SIGTERM)" in err, said
    assert json.loads(json_path.read_text())["interrupted"] is True, said


@pytest.mark.parametrize("stop_timeout", [30.0, 0.5], ids=["long-stop-timeout", "short"])
def test_ctrl_c_during_a_check_kills_a_server_deaf_to_sigterm_within_seconds(
        hosts_possible, tmp_path, stop_timeout):
    """A server that ignores SIGTERM gets SIGKILL after INTERRUPTED_STOP_GRACE
    once a Ctrl-C is on its way out, not after the run's stop timeout (which
    a user may set long for a server that drains slowly)."""
    chk = Check("interrupted", "Ctrl-C in the middle", interrupted_by_ctrl_c,
                capture=False, needs_echo=False)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        checkrun.run_against(lambda h: Server(h, [str(ZOO / "fork_ignores_sigterm"), PORT],
                                              PORT),
                             "fork_ignores_sigterm", tmp_path / "run", [chk],
                             out=io.StringIO(),
                             options=checkrun.Options(stop_timeout=stop_timeout))
    took = time.monotonic() - started
    bound = min(stop_timeout, checkrun.INTERRUPTED_STOP_GRACE) + checkrun.SIGKILL_WAIT
    assert took < bound + 5.0, (f"the run took {took:.1f} s to end after the Ctrl-C "
                                f"(stop timeout {stop_timeout:g} s)")
    assert procs.state(interrupted_by_ctrl_c.server_pid) is None, (
        procs.describe(interrupted_by_ctrl_c.server_pid))
