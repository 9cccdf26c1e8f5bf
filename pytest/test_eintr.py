"""Children exiting while the parent waits for connections: each SIGCHLD
interrupts the wait (EINTR, UNP 5.9), and the server must go on serving."""

import pytest

from faultline import experiments

pytestmark = pytest.mark.eintr

@pytest.mark.parametrize("reap", ["waitpid", "wait", "none"])
def test_server_keeps_serving_after_children_exit_during_its_wait(host, reap):
    seen = experiments.eintr_survival(host, reap, sessions=20)
    if reap != "none":
        assert seen.facts["interrupted"] >= 1, "SIGCHLD should interrupt the wait"
    assert seen.holds, seen.verdict
