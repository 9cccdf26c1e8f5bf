"""faultline's pytest plugin: its fixtures and reporting hooks, for this
project's own suite and for anyone's tests of their own server.

Load it with `pytest -p faultline.plugin`, or in a conftest.py at the
root of your tests:

    pytest_plugins = ["faultline.plugin"]

Fixtures:
  artifact_dir      a fresh folder for this test's files, kept when the test
                    fails (in any phase) or with --keep-artifacts
  hosts_possible    skips, with the reason, where hosts cannot be made here
  host              an isolated host (network + PID namespace) for the test
  net               two hosts, client and server, joined by a veth pair
  capture           tcpdump on the host's loopback, into artifact_dir; the
                    pcap is complete once capture.stop() returns
  faultline_server  faultline_server(command, port, leaves=..., ...) starts
                    a server on the host; at teardown it must still be
                    alive and have left no zombies, descriptors or
                    CLOSE_WAIT sockets (server.Server's check at exit)
  faultline_check   faultline_check("zombies", command, port) runs one
                    check of `faultline check` on a fresh host and returns
                    its Verdict (verdict.passed, .summary, .evidence)

A kept artifact folder gets report.html (the test's failure, the ladders
of its pcap, its files) and outcome.json; a failed test's folder is named
in its report and, in JUnit XML
(--junitxml), as the testcase's property `artifacts`. The folders are
ARTIFACTS_DIR/<test>/ in faultline's checkout (or where FAULTLINE_ARTIFACTS
says); another project's go to faultline-artifacts/ in its rootdir.
"""

import contextlib
import json
import os

import pytest

from . import artifacts, build, checkrun, checks, paths
from .capture import Capture
from .host import Host, HostUnavailable
from .interrupts import cleanup
from .server import Server
from .topology import TwoHosts

ARTIFACTS_KEY = pytest.StashKey()
ARTIFACTS_ROOT_KEY = pytest.StashKey()
PHASES = ("setup", "call", "teardown")


def pytest_addoption(parser):
    group = parser.getgroup("faultline")
    group.addoption("--keep-artifacts", action="store_true",
                    default=bool(os.environ.get("FAULTLINE_KEEP")),
                    help="keep every test's artifact folder, not only failed ones "
                         "(also FAULTLINE_KEEP=1)")


def pytest_configure(config):
    config.stash[ARTIFACTS_ROOT_KEY] = artifacts_root(config)


def artifacts_root(config):
    """Where the tests' artifact folders go: faultline's own (its checkout's
    artifacts/, or FAULTLINE_ARTIFACTS) for its own suite or when asked;
    otherwise the testing project's rootdir, not faultline's checkout."""
    if os.environ.get("FAULTLINE_ARTIFACTS") or config.rootpath == paths.REPO:
        return paths.ARTIFACTS_DIR
    return config.rootpath / "faultline-artifacts"


def failed_so_far(item):
    return any(getattr(item, f"report_{when}", None) is not None
               and getattr(item, f"report_{when}").failed for when in PHASES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test's artifact folder is kept when any phase failed: the
    teardown's report, made after every fixture has finished, decides, so
    a failure raised in teardown (a server fixture's check at exit, in a
    yield fixture) keeps the folder too. The teardown report's
    user_properties are the ones junitxml writes, for every phase."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
    path = item.stash.get(ARTIFACTS_KEY, None)
    if path is None:
        return
    if report.failed:
        report.sections.append(("faultline artifacts",
                                f"kept in {path} (open {path / 'report.html'})"))
    if report.when == "teardown":
        if failed_so_far(item):
            report.user_properties.append(("artifacts", str(path)))
            write_report(item, path)
        elif not item.config.getoption("--keep-artifacts"):
            artifacts.discard(path, root=item.config.stash[ARTIFACTS_ROOT_KEY])
        else:
            write_report(item, path)


OUTCOME_CHARS = 20000  # of a failure's report, in outcome.json


def write_report(item, path):
    """A kept folder's outcome.json (the test, how it ended, its failure)
    and report.html. A report that cannot be made costs the test nothing:
    report-error.txt says why."""
    failed = [getattr(item, f"report_{when}", None) for when in PHASES]
    failed = [r for r in failed if r is not None and r.failed]
    said = failed[0].longreprtext if failed else ""
    if len(said) > OUTCOME_CHARS:
        said = said[:OUTCOME_CHARS // 2] + "\n...\n" + said[-OUTCOME_CHARS // 2:]
    try:
        from . import report
        (path / "outcome.json").write_text(json.dumps({
            "test": item.nodeid,
            "outcome": f"failed in {failed[0].when}" if failed else "passed",
            "longrepr": said}, indent=2) + "\n")
        report.write(path)
    except Exception as e:  # noqa: BLE001 - the test's verdict stands whatever this does
        with contextlib.suppress(OSError):
            (path / "report-error.txt").write_text(f"{type(e).__name__}: {e}\n")


@pytest.fixture
def artifact_dir(request):
    """A fresh folder for this test's pcaps, logs and outputs; kept when the
    test fails (in any phase) or --keep-artifacts is given, removed
    otherwise."""
    path = artifacts.fresh_dir(request.node.nodeid,
                               root=request.config.stash[ARTIFACTS_ROOT_KEY])
    request.node.stash[ARTIFACTS_KEY] = path
    return path


@pytest.fixture(scope="session")
def faultline_built():
    """echod, echoc and the host keeper are there (a checkout's build, or
    an installed faultline's); one line saying what is missing otherwise."""
    try:
        build.require_binaries()
    except build.BuildError as e:
        hint = ("" if paths.INSTALLED else
                f"; build it with {paths.REPO}/faultline build, or point "
                f"FAULTLINE_BUILD_DIR at a build")
        pytest.fail(f"faultline: {e}{hint}", pytrace=False)


@pytest.fixture(scope="session")
def hosts_possible(tmp_path_factory):
    """Skip, once and with the reason, where this machine cannot make hosts
    (no root, no namespaces)."""
    try:
        Host("probe", tmp_path_factory.mktemp("probe")).close()
    except HostUnavailable as e:
        pytest.skip(str(e))


def interrupted(request):
    """Whether pytest caught a Ctrl-C: it then tears the fixtures down, and
    their errors (tcpdump, a server, got the SIGINT too) come after the
    KeyboardInterrupt, not instead (interrupts.py)."""
    return request.session.exitstatus == pytest.ExitCode.INTERRUPTED


@pytest.fixture
def host(request, faultline_built, hosts_possible, artifact_dir):
    """An isolated host (network + PID namespace) that dies with the test."""
    h = Host("server", artifact_dir)
    try:
        yield h
    finally:
        with cleanup(f"closing host {h.name}", interrupted(request)):
            h.close()


@pytest.fixture
def net(request, faultline_built, hosts_possible, artifact_dir):
    """Two hosts, client and server, joined by a veth pair in 198.18.0.0/24."""
    two = TwoHosts(artifact_dir).start()
    try:
        yield two
    finally:
        with cleanup("closing the two hosts", interrupted(request)):
            two.close()


@pytest.fixture
def capture(request, host, artifact_dir):
    """tcpdump on the host's loopback, writing artifact_dir/capture.pcap:
    capturing when the test starts; capture.stop() returns the pcap once
    every packet sent so far is in it (read it with
    faultline.capture.read_segments). Stopped at teardown otherwise."""
    cap = Capture(host, artifact_dir / "capture.pcap").start()
    try:
        yield cap
    finally:
        with cleanup("stopping the packet capture", interrupted(request)):
            cap.stop(complete=not interrupted(request))


@pytest.fixture
def faultline_server(request, host):
    """faultline_server(command, port, **options) starts a server on this
    test's host once it listens and sleeps waiting for connections, and
    returns it (a faultline.server.Server; options are its leaves=,
    stopped_by_test=, exit_status=, env=, name=, user=). At teardown each server
    is checked as Server's exit checks it: alive, no zombies, no
    descriptors over its count at start, no CLOSE_WAIT, unless declared in
    leaves; a test that failed already only stops them."""
    servers = contextlib.ExitStack()

    def start(command, port, **options):
        return servers.enter_context(Server(host, command, port, **options))
    yield start
    if failed_so_far(request.node) or interrupted(request):
        # What Server's exit does when the test raised: stop, check nothing.
        failure = AssertionError("the test failed")
        with cleanup("stopping the servers", interrupted(request)):
            servers.__exit__(AssertionError, failure, failure.__traceback__)
    else:
        servers.close()


@pytest.fixture
def faultline_check(faultline_built, hosts_possible, artifact_dir):
    """faultline_check(name, server, port=None, options=None) runs the check
    of that name (`faultline check --list` names them) on a fresh host and
    returns its Verdict. server: a command line (then port is needed), or
    a function making a Server on the host it is given. options: a
    faultline.checkrun.Options (protocol, timeouts). The check's files are
    in artifact_dir/<name>/."""
    def run(name, server, port=None, options=None):
        try:
            chk, = checks.by_name([name])
        except KeyError as e:
            unknown = e.args[0]
        else:
            unknown = None
        if unknown:  # failed outside the except: no KeyError chained to it
            pytest.fail(f"faultline_check: {unknown}", pytrace=False)
        if callable(server):
            make_server = server
        elif port is None:
            raise TypeError("faultline_check: a server command needs its port")
        else:
            def make_server(h):
                return Server(h, server, port)
        return checkrun.run_one(chk, make_server, artifact_dir / chk.name,
                                options or checkrun.Options())
    return run
