"""Fixtures and hooks only; the machinery is in the harness package."""

import pytest

from faultline import artifacts
from faultline.host import Host, HostUnavailable
from faultline.topology import TwoHosts


ARTIFACTS_KEY = pytest.StashKey()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test's artifact folder is kept when any phase failed: the
    teardown's report, made after every fixture has finished, decides, so
    a failure raised in teardown (a server fixture's check at exit, in a
    yield fixture) keeps the folder too."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
    path = item.stash.get(ARTIFACTS_KEY, None)
    if path is None:
        return
    if report.failed:
        report.sections.append(("faultline artifacts", f"kept in {path}"))
    if report.when == "teardown":
        failed = any(getattr(item, f"report_{when}", None) is not None
                     and getattr(item, f"report_{when}").failed
                     for when in ("setup", "call", "teardown"))
        if not failed and not item.config.getoption("--keep-artifacts"):
            artifacts.discard(path)


@pytest.fixture
def artifact_dir(request):
    """A fresh folder for this test's pcaps, logs and outputs; kept when the
    test fails (in any phase) or --keep-artifacts is given, removed
    otherwise."""
    path = artifacts.fresh_dir(request.node.nodeid)
    request.node.stash[ARTIFACTS_KEY] = path
    return path


@pytest.fixture(scope="session")
def hosts_possible(tmp_path_factory):
    """Skip, once and with the reason, where this machine cannot make hosts
    (no root, no namespaces)."""
    try:
        Host("probe", tmp_path_factory.mktemp("probe")).close()
    except HostUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def host(hosts_possible, artifact_dir):
    """An isolated host (network + PID namespace) that dies with the test."""
    with Host("server", artifact_dir) as h:
        yield h


@pytest.fixture
def net(hosts_possible, artifact_dir):
    """Two hosts, client and server, joined by a veth pair in 198.18.0.0/24."""
    with TwoHosts(artifact_dir) as two:
        yield two
