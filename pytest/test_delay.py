"""Delayed reads: delay=T@before_read. Every byte is still echoed, the
round trip takes at least T, and in the fork model one slow child does not
hold back another connection's echo."""

import pytest

from faultline import experiments, paths
from faultline.echod import Echod

pytestmark = pytest.mark.delay

DELAY = 0.2


def test_delayed_server_still_echoes_every_byte(host):
    with Echod(host, faults=["delay=50ms@before_read"]) as server:
        code, out, err = host.run([paths.binary("echoc"), "--bytes", "300000",
                                   "--verify", "127.0.0.1", server.port], timeout=30)
        assert code == 0, err


def test_delay_on_one_connection_does_not_hold_back_another(host):
    seen = experiments.delayed_reads(host, int(DELAY * 1000))
    assert seen.facts["echoes"] == (b"slow\n", b"fast\n"), seen.facts
    assert seen.facts["slow"] >= DELAY, seen.verdict
    assert seen.facts["fast"] < seen.facts["slow"], (
        f"the undelayed connection should answer first: {seen.verdict}")
