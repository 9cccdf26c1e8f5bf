"""Running checks and reporting their verdicts: `faultline check`, and the
pytest suite through run_check (pytest/test_conformance.py,
pytest/test_byo.py).

Whatever the server does, every check ends in a verdict and the run
reaches its summary line:

  pass   the server did what the check asks;
  FAIL   it did not, with the evidence. A server that dies during a check
         is a FAIL whatever the check concluded: "server died during
         eintr: exit status 1", with the end of its stderr;
  ERROR  the check could not say, by the harness's own fault: one line,
         and the traceback in the check's artifacts;
  skip   the check does not apply (an echo check under --protocol none).

A server slow to stop is sent SIGKILL after Options.stop_timeout, and the
verdict carries a note that says so: the run goes on.

Artifacts, in the run's folder: report.txt (every verdict with all of its
evidence), report.json, junit.xml, preflight/, and one folder per check
(the server's output, bounded; the pcap; evidence.txt; traceback.txt);
cli.py adds report.html (report.py). On the terminal each table shows at
most evidence.SCREEN_ROWS rows; a failed check's evidence ends with the
text ladder of its most troubled connection.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import procs, tcpstate
from .server import status_words
from .checks import DEFAULT_SETTLE, Context, Verdict, server_tables
from .evidence import Evidence, Table, Text, plural
from .interrupts import INTERRUPTS, cleanup
from .protocol import ECHO
from .waiting import WaitTimeout, wait_until

OUTPUT_KEPT = 1 << 20   # bytes of a server's stdout or stderr kept per check
STDERR_LINES = 10       # the end of a server's stderr, in a verdict
SIGKILL_WAIT = 5.0      # for a process to go after SIGKILL (it may be in D state)
INTERRUPTED_STOP_GRACE = 1.0  # SIGTERM to SIGKILL when a Ctrl-C is on its way out

# Errors a check meets on its sockets: what the server did, not the harness.
NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED,
                  errno.EPIPE, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                  errno.ENETUNREACH, errno.EADDRNOTAVAIL}


@dataclass
class Options:
    protocol: object = ECHO
    start_timeout: float = 5.0   # for the server to listen
    settle: float = DEFAULT_SETTLE
    stop_timeout: float = 2.0    # from SIGTERM to SIGKILL
    snaplen: int = None          # bytes captured of each packet; None: the check's own


# --- one check --------------------------------------------------------------------

def run_check(chk, host, make_server, workdir, options=None):
    """Run one check on a fresh server made by make_server(host). Returns
    its verdict, with the artifacts left in workdir; never raises (but
    KeyboardInterrupt)."""
    options = options or Options()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    verdict = not_applicable(chk, options)
    if verdict is None:
        verdict = run_on_host(chk, host, make_server, workdir, options)
    verdict.seconds = time.monotonic() - started
    verdict.artifacts = [workdir]
    if verdict.evidence:
        (workdir / "evidence.txt").write_text(
            f"{verdict.status} {chk.name}: {verdict.summary}\n\n"
            f"{verdict.evidence.full()}\n")
    return verdict


def not_applicable(chk, options):
    if chk.needs_echo and not options.protocol.echoes:
        return Verdict.skip(f"needs an echo server (this run's protocol: "
                            f"{options.protocol.name})")
    return None


def run_on_host(chk, host, make_server, workdir, options):
    from . import capture
    capturer = server = None
    captured = False
    notes = []
    try:
        if chk.capture:
            capturer = capture.Capture(host, workdir / f"{chk.name}.pcap",
                                       snaplen=options.snaplen or chk.snaplen).start()
        server = make_server(host)
        try:
            server.start(options.start_timeout)
        except Exception as e:
            verdict = did_not_start(chk, server, e, workdir)
        else:
            ctx = Context(host, server, workdir, options.protocol, options.settle)
            with thread_errors(workdir) as stray:
                try:
                    outcome = chk.run(ctx)
                except Exception as e:
                    outcome = e
                settle(server, options.settle)
            verdict = judge(chk, ctx, outcome, workdir)
            if stray:
                verdict.notes.append(f"{plural(len(stray), 'thread')} of the check "
                                     f"raised ({stray[0]}); tracebacks in "
                                     f"{workdir / 'threads.txt'}")
    except Exception as e:  # the harness's own set-up (tcpdump, the server object)
        verdict = harness_error(chk, e, workdir)
    finally:
        if server is not None:
            # After a Ctrl-C, SIGKILL follows SIGTERM soon: the run must end
            # within seconds, whatever the server's own drain.
            grace = (min(options.stop_timeout, INTERRUPTED_STOP_GRACE)
                     if isinstance(sys.exception(), INTERRUPTS) else options.stop_timeout)
            with cleanup(f"stopping the server of check {chk.name}"):
                notes.append(stop(server, grace))
                bound_output(server)
        if capturer is not None:
            try:
                capturer.stop()
                captured = True
            except Exception as e:
                notes.append(f"the packet capture: {first_line(e)}")
    # Only here is there a verdict: a Ctrl-C in the try leaves none, and
    # goes on out of the finally clause untouched.
    if captured and verdict.status == "FAIL" and server is not None:
        notes.append(add_ladder(verdict, capturer.path, server.port))
    verdict.notes += [n for n in notes if n]
    return verdict


LADDER_ROWS = 12   # rows of the text ladder in a failed check's terminal evidence


def add_ladder(verdict, pcap, port):
    """The text ladder of the connection that shows the trouble (a RST, no
    FIN...), or of the first, appended to a failed verdict's evidence,
    bounded (LADDER_ROWS rows, the middle elided). Returns a note when it
    cannot be drawn; the verdict stands either way."""
    from . import report
    try:
        drawn = report.text_ladder(pcap, port, rows=LADDER_ROWS)
    except Exception as e:  # noqa: BLE001 - a picture is never worth a verdict
        return f"no ladder of the capture: {type(e).__name__}: {first_line(e)}"
    if drawn is not None:
        title, ladder = drawn
        verdict.evidence = Evidence(verdict.evidence, Text(ladder, title=title))
    return None


def settle(server, seconds):
    """Give what the check set off (a child exiting, its SIGCHLD) the time to
    land before the verdict: a server that dies of the last exit of the
    check dies during the check. Quiescent: idle in its accept wait with no
    SIGCHLD pending and no child running or half-way through exit."""
    def landed():
        return not server.alive() or server.quiescent()
    try:
        wait_until(landed, seconds, "the server to be quiescent after the check")
    except Exception:  # a busy server, or one that went while we looked
        pass


@contextlib.contextmanager
def thread_errors(workdir):
    """Exceptions that end a check's own threads (a sender thread meeting a
    reset) go to threads.txt in the artifacts, not to the terminal; the
    list they are counted in is yielded."""
    stray = []
    previous = threading.excepthook

    def keep(args):
        stray.append(f"{args.exc_type.__name__}: {args.exc_value}")
        with open(Path(workdir) / "threads.txt", "a") as f:
            f.write(f"thread {args.thread.name if args.thread else '?'}:\n")
            f.write("".join(traceback.format_exception(
                args.exc_type, args.exc_value, args.exc_traceback)) + "\n")
    threading.excepthook = keep
    try:
        yield stray
    finally:
        threading.excepthook = previous


def judge(chk, ctx, outcome, workdir):
    """The verdict from what the check returned or raised, and from
    whether the server is still alive."""
    ended = ctx.server.how_it_ended()
    if ended is not None:
        return died(chk, ctx, ended, outcome)
    if isinstance(outcome, Verdict):
        if not outcome.passed and not outcome.error and not outcome.skipped:
            outcome.evidence = Evidence(outcome.evidence, stderr_tail(ctx.server))
        return outcome
    if isinstance(outcome, BaseException) and is_finding(outcome):
        first, _, rest = str(outcome).partition("\n")
        name = "" if isinstance(outcome, AssertionError) else f"{type(outcome).__name__}: "
        return Verdict(False, f"{name}{first}{what_it_did(ctx)}",
                       Evidence(rest, ctx.evidence(), stderr_tail(ctx.server)))
    if isinstance(outcome, BaseException):
        return harness_error(chk, outcome, workdir)
    return Verdict.harness_error(f"the check returned {type(outcome).__name__}, "
                                 f"not a Verdict")


def is_finding(e):
    """An exception that says something about the server (a reset, a
    refused connection, a timeout, a wrong reply, a wait that expired), not
    about the harness."""
    if isinstance(e, (AssertionError, ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return isinstance(e, OSError) and e.filename is None and e.errno in NETWORK_ERRNOS


def what_it_did(ctx):
    if ctx.doing:
        return f" (the check was {ctx.doing})"
    if ctx.connections:
        return f", after {plural(ctx.connections, 'connection')} from the check"
    return ""


def died(chk, ctx, ended, outcome):
    if isinstance(outcome, Verdict):
        saw = f"the check {'passed' if outcome.passed else 'saw'}: {outcome.summary}"
    elif isinstance(outcome, BaseException):
        saw = f"the check then met: {type(outcome).__name__}: {first_line(outcome)}"
    else:
        saw = None
    # Its process table and descriptors are gone with it; the sockets its
    # children may still hold are not.
    sockets = server_tables((f"TCP sockets on port {ctx.port}", lambda: Table.from_text(
        f"TCP sockets on port {ctx.port}", ctx.server.sockets(), "STATE")))
    summary = f"server died during {chk.name}: {ended}{what_it_did(ctx)}"
    if isinstance(outcome, Verdict) and not outcome.passed:
        # The check's own words say what it was doing when the server died
        # (and which reply, signal or stderr line showed it): keep them in
        # the one line a reader sees first.
        summary, saw = f"{summary}; {saw}", None
    return Verdict(False, summary, Evidence(saw, stderr_tail(ctx.server), *sockets))


def did_not_start(chk, server, e, workdir):
    from .host import HostError
    from .server import ServerCrashed
    if not isinstance(e, (ServerCrashed, WaitTimeout, HostError)):
        return harness_error(chk, e, workdir)
    return Verdict(False, f"the server did not start for this check: {first_line(e)}",
                   Evidence(stderr_tail(server) if server.proc else None))


def harness_error(chk, e, workdir):
    path = workdir / "traceback.txt"
    text = "".join(traceback.format_exception(e))
    try:
        path.write_text(text)
        where = f"traceback in {path}"
    except OSError as write_error:
        where = f"and its traceback could not be written: {write_error}"
    return Verdict.harness_error(
        f"harness error: {type(e).__name__}: {first_line(e)} ({where})")


def first_line(e):
    return (str(e).strip().splitlines() or [""])[0]


# --- the server's end -----------------------------------------------------------

def stderr_tail(server, lines=STDERR_LINES):
    """The last lines of the server's stderr, as a section (None when it
    said nothing)."""
    said = server.stderr_lines(lines) if server is not None else []
    if not any(line.strip() for line in said):
        return None
    return Text("\n".join(said),
                title=f"the end of the server's stderr ({server.proc.stderr_path})")


def stop(server, grace):
    """SIGTERM (after SIGCONT, if stopped) to the server and the command it
    runs under; SIGKILL after `grace` seconds. Returns a note when it had
    to go that far, or when stopping itself went wrong; never raises."""
    proc = server.proc
    if proc is None:
        return None
    pids = [p for p in dict.fromkeys((server.pid, proc.pid)) if p]

    def gone():
        return not proc.alive() and all(procs.state(p) in (None, "Z") for p in pids)

    def send(signo):
        netns = server.host.netns_inode
        for pid in pids:
            if procs.state(pid) == "T" and signo != signal.SIGKILL:
                procs.send_signal(pid, signal.SIGCONT, netns)
            procs.send_signal(pid, signo, netns)
    try:
        send(signal.SIGTERM)
        try:
            wait_until(gone, grace, "the server to exit after SIGTERM")
            return None
        except WaitTimeout:
            pass
        send(signal.SIGKILL)
        try:
            wait_until(gone, SIGKILL_WAIT, "the server to exit after SIGKILL")
        except WaitTimeout:
            return (f"the server was still there {SIGKILL_WAIT:g} s after SIGKILL "
                    f"({procs.describe(server.pid or proc.pid)}); closing its host "
                    f"ends it")
        return f"the server did not exit within {grace:g} s of SIGTERM: stopped with SIGKILL"
    except Exception as e:
        return f"stopping the server: {type(e).__name__}: {first_line(e)}"


def bound_output(server, keep=OUTPUT_KEPT):
    """Cut the middle out of a server's stdout and stderr files past `keep`
    bytes (a server that traces every byte it echoes writes megabytes), once
    it has exited and writes no more."""
    proc = server.proc
    if proc is None or proc.alive():
        return
    for path in (proc.stdout_path, proc.stderr_path):
        try:
            with open(path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                if size <= keep:
                    continue
                f.seek(0)
                head = f.read(keep // 2)
                f.seek(size - keep // 2)
                tail = f.read()
                f.seek(0)
                f.truncate()
                f.write(head + f"\n[faultline: {size - len(head) - len(tail)} bytes "
                               f"cut here, of {size}]\n".encode() + tail)
        except OSError:
            pass


# --- before the checks ------------------------------------------------------------

class NotAServer(Exception):
    """The command does not start, or does not listen where it was said to."""


def preflight(make_server, workdir, options=None):
    """Start the server once on a scratch host: a command that cannot start
    or never listens on its port is a usage error, not 13 failed checks."""
    from .host import Host, HostError, StartFailed
    from .server import ServerCrashed
    options = options or Options()
    with Host("preflight", workdir) as host:
        server = make_server(host)
        try:
            server.start(options.start_timeout)
            refused_where_checked(host, server, options.start_timeout)
        except HostError as e:
            not_found = isinstance(e, StartFailed) and (e.call, e.errno) == ("exec",
                                                                             errno.ENOENT)
            raise NotAServer(f"{e}{not_in_path(server) if not_found else ''}") from None
        except (ServerCrashed, WaitTimeout) as e:
            raise NotAServer(not_serving(host, server, e)) from None
        finally:
            with cleanup("stopping the server"):
                stop(server, options.stop_timeout)


def not_in_path(server):
    """A program named without a slash is looked for in PATH only, as a
    shell does: say so, and whether this folder has it (a user's
    `my-server` for `./my-server`)."""
    from .host import command_path
    program = server.argv()[0]
    if "/" in program or shutil.which(program, path=command_path(server.env)) is not None:
        return ""
    here = (f"; ./{program} is in this folder" if os.path.isfile(program)
            else "")
    return f" ({program} is not in PATH{here})"


def refused_where_checked(host, server, timeout):
    """The checks connect to 127.0.0.1: a server listening on its port
    elsewhere only (::1, another address) is one line, not every check
    failing with ECONNREFUSED."""
    try:
        host.connect(server.port, timeout=timeout).close()
    except ConnectionRefusedError as e:
        where = ", ".join(tcpstate.listening_on(host.outer_pid, server.port))
        if not where or not server.proc.alive():  # it ended meanwhile
            raise NotAServer(not_serving(host, server, e)) from None
        raise NotAServer(f"it listens on {where} only, and the checks connect to "
                         f"127.0.0.1:{server.port}: listen on 0.0.0.0, 127.0.0.1, or "
                         f"[::] without IPV6_V6ONLY") from None
    except OSError:
        pass  # slow or odd, not refused: the checks will say what it is


def not_serving(host, server, e):
    """Why a server is not one, in one line: how it ended and what it said
    (Server.said), or where it listens if not on its port."""
    proc = server.proc
    if proc is not None and not proc.alive():
        said = server.said()
        return (f"the server ended ({status_words(proc.returncode)}) before it served on port "
                f"{server.port}" + (f"; it said: {said}" if said else ""))
    listening = sorted({s.local[1] for s in tcpstate.in_state(host.outer_pid, "LISTEN")})
    where = (f"it listens on {', '.join(map(str, listening))}" if listening
             else "it listens on no TCP port")
    if len(listening) == 1:
        where += f": is --port {listening[0]} what you meant?"
    return f"{first_line(e)} ({where})"


# --- many checks: the run -------------------------------------------------------

class Report:
    """The verdicts of one run, as they come, and its reports."""

    def __init__(self, describe, root, options, chosen):
        self.describe = describe
        self.root = Path(root)
        self.options = options
        self.chosen = chosen
        self.results = []
        self.interrupted = False
        self.started = datetime.now(timezone.utc)
        self.clock = time.monotonic()

    def count(self, status):
        return sum(1 for _, v in self.results if v.status == status)

    @property
    def failures(self):
        return [(c, v) for c, v in self.results if v.status in ("FAIL", "ERROR")]

    @property
    def exit_status(self):
        return 1 if self.failures or self.interrupted else 0

    def summary(self):
        parts = [f"{self.count('pass')} passed", f"{self.count('FAIL')} failed"]
        if self.count("ERROR"):
            parts.append(plural(self.count("ERROR"), "error"))
        if self.count("skip"):
            parts.append(f"{self.count('skip')} skipped")
        line = f"{plural(len(self.results), 'check')}: {', '.join(parts)}"
        if self.interrupted:
            line += f" (interrupted; {len(self.chosen) - len(self.results)} not run)"
        return line

    def header(self):
        return (f"faultline check: {self.describe}; {plural(len(self.chosen), 'check')}, "
                f"each on a fresh host")

    def text(self):
        """report.txt: what the terminal showed, with every row."""
        lines = [self.header()]
        for chk, verdict in self.results:
            lines += verdict_lines(chk, verdict, bounded=False)
        return "\n".join(lines + [self.summary(), ""])

    def as_json(self):
        return {
            "describe": self.describe,
            "protocol": self.options.protocol.describe(),
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - self.clock, 3),
            "artifacts": str(self.root),
            "interrupted": self.interrupted,
            "totals": {"checks": len(self.results), "passed": self.count("pass"),
                       "failed": self.count("FAIL"), "errors": self.count("ERROR"),
                       "skipped": self.count("skip")},
            "exit_status": self.exit_status,
            "checks": [{"name": chk.name, "title": chk.title, "status": v.status,
                        "summary": v.summary, "evidence": v.evidence.full(),
                        "sections": v.evidence.as_json(), "notes": v.notes,
                        "artifacts": [str(a) for a in v.artifacts],
                        "seconds": round(v.seconds, 3)} for chk, v in self.results],
        }

    def junit(self):
        """JUnit XML as CI servers and pytest's junitxml write it (the
        shape fixtures/junit.xsd holds it to): one testcase per check; a
        failure or error names its artifact folder."""
        seconds = f"{time.monotonic() - self.clock:.3f}"
        counts = {"tests": str(len(self.results)), "failures": str(self.count("FAIL")),
                  "errors": str(self.count("ERROR")), "skipped": str(self.count("skip"))}
        suites = ET.Element("testsuites", name="faultline check", time=seconds,
                            **{k: v for k, v in counts.items() if k != "skipped"})
        suite = ET.SubElement(suites, "testsuite", name=xml_text(self.header()),
                              time=seconds, hostname=socket.gethostname(),
                              timestamp=self.started.isoformat(timespec="seconds"),
                              **counts)
        props = ET.SubElement(suite, "properties")
        for name, value in (("protocol", self.options.protocol.describe()),
                            ("artifacts", str(self.root))):
            ET.SubElement(props, "property", name=name, value=xml_text(value))
        for chk, v in self.results:
            case = ET.SubElement(suite, "testcase", classname="faultline.check",
                                 name=chk.name, time=f"{v.seconds:.3f}")
            where = f"artifacts: {v.artifacts[0]}/" if v.artifacts else ""
            if v.status in ("FAIL", "ERROR"):
                tag = "failure" if v.status == "FAIL" else "error"
                body = ET.SubElement(case, tag, type=v.status,
                                     message=xml_text(f"{v.summary} ({where})"))
                # bounded, as on the terminal: all of it is in the artifacts
                body.text = xml_text("\n".join([v.summary, *v.notes, str(v.evidence),
                                                where]))
            elif v.status == "skip":
                ET.SubElement(case, "skipped", message=xml_text(v.summary))
            out = ET.SubElement(case, "system-out")
            out.text = xml_text("\n".join([*(f"note: {n}" for n in v.notes), where]))
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    def write(self, json_path=None, junit_path=None):
        """report.txt, report.json and junit.xml in the run's folder, and
        copies where --json and --junit said. Returns the paths written."""
        data = json.dumps(self.as_json(), indent=2) + "\n"
        xml = self.junit()
        written = []
        for path, text in ((self.root / "report.txt", self.text()),
                           (self.root / "report.json", data),
                           (self.root / "junit.xml", xml),
                           (json_path, data), (junit_path, xml)):
            if path is not None:
                Path(path).write_text(text)
                written.append(Path(path))
        return written


def xml_text(text):
    """Text XML 1.0 can hold: the control characters a server's output may
    carry are written as \\xNN."""
    return "".join(c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or
                   ("\ue000" <= c <= "\ufffd") or c >= "\U00010000"
                   else f"\\x{ord(c):02x}" for c in str(text))


def verdict_lines(chk, verdict, bounded=True):
    lines = [f"  {verdict.status:<5} {chk.name:<19}{verdict.summary}"]
    lines += [f"        note: {note}" for note in verdict.notes]
    if verdict.status in ("FAIL", "ERROR"):
        evidence = str(verdict.evidence) if bounded else verdict.evidence.full()
        lines += [f"        {line}" for line in evidence.splitlines()]
        lines += [f"        artifacts: {a}/" for a in verdict.artifacts]
    return lines


def run_one(chk, make_server, workdir, options):
    """One check on its own fresh host. A host that cannot be made here
    at all (HostUnavailable) ends the run: exit 3."""
    from .host import Host, HostError, HostUnavailable
    skipped = not_applicable(chk, options)
    if skipped is not None:
        skipped.artifacts = []
        return skipped
    try:
        host = Host(chk.name, workdir)
    except HostUnavailable:
        raise
    except (HostError, OSError, WaitTimeout) as e:
        return harness_error(chk, e, Path(workdir))
    try:
        return run_check(chk, host, make_server, workdir, options)
    finally:
        with cleanup(f"closing the host of check {chk.name}"):
            host.close()


def run_against(make_server, describe, root, chosen=None, out=None, options=None,
                json_path=None, junit_path=None):
    """Run the checks (all, or `chosen`) each on a fresh host, printing one
    line per check and, for failures, bounded evidence; then the summary
    line, whatever happened, and the reports. Returns the Report."""
    from . import checks
    out = out or sys.stdout
    options = options or Options()
    report = Report(describe, root, options, chosen or checks.CHECKS)
    print(report.header(), file=out, flush=True)
    try:
        for chk in report.chosen:
            verdict = run_one(chk, make_server, report.root / chk.name, options)
            report.results.append((chk, verdict))
            print("\n".join(verdict_lines(chk, verdict)), file=out, flush=True)
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        print(report.summary(), file=out, flush=True)
        report.write(json_path, junit_path)
    return report
