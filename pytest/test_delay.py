"""Delayed reads: delay=T@before_read. Every byte is still echoed; that in
the fork model one slow child does not hold back another connection's
echo is a scenario file (fixtures/scenarios/delayed-reads.toml), run by
test_scenarios.py under this marker."""

import pytest

from faultline import paths
from faultline.echod import Echod

pytestmark = pytest.mark.delay


def test_delayed_server_still_echoes_every_byte(host):
    with Echod(host, faults=["delay=50ms@before_read"]) as server:
        code, out, err = host.run([paths.binary("echoc"), "--bytes", "300000",
                                   "--verify", "127.0.0.1", server.port], timeout=30)
        assert code == 0, err
