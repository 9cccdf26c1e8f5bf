"""SIGTERM with a session open: the listener closes first (new connects are
refused), the open session echoes the line it already received, and the
server exits 0 within its drain deadline."""

import pytest

from harness import experiments

pytestmark = pytest.mark.shutdown


def test_sigterm_closes_the_listener_then_drains_the_open_session(host):
    seen = experiments.sigterm_drain(host)
    assert seen.facts["refused"], "new connects should be refused once SIGTERM came"
    assert seen.facts["last"] == b"last line\n", (
        f"the session should finish its line: {seen.verdict}")
    assert seen.facts["eof"], seen.verdict
    assert seen.facts["status"] == 0, seen.evidence
    assert seen.facts["ends"][0]["reason"] == "terminated", seen.facts["ends"]
