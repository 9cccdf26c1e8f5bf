"""Fixtures and hooks only; the machinery is in the harness package."""

import pytest

from faultline import artifacts
from faultline.host import Host, HostUnavailable
from faultline.topology import TwoHosts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
    path = item.stash.get(ARTIFACTS_KEY, None)
    if report.failed and path is not None:
        report.sections.append(("faultline artifacts", f"kept in {path}"))


ARTIFACTS_KEY = pytest.StashKey()


@pytest.fixture
def artifact_dir(request):
    """A fresh folder for this test's pcaps, logs and outputs; kept when the
    test fails or --keep-artifacts is given, removed otherwise."""
    path = artifacts.fresh_dir(request.node.nodeid)
    request.node.stash[ARTIFACTS_KEY] = path
    yield path
    failed = any(getattr(request.node, f"report_{when}", None) is not None
                 and getattr(request.node, f"report_{when}").failed
                 for when in ("setup", "call"))
    if not failed and not request.config.getoption("--keep-artifacts"):
        artifacts.discard(path)


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
