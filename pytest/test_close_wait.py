"""CLOSE_WAIT: the client closed, the server's kernel acknowledged the FIN,
and the server never closed its end. With --leak-connfd the parent keeps a
copy of every accepted socket, so the child's close is not the last one:
the socket stays in CLOSE_WAIT and the parent's descriptors grow. The
sound server has neither."""

import pytest

from faultline import experiments

pytestmark = pytest.mark.close_wait

def test_leaked_connfd_leaves_the_server_socket_in_close_wait(host):
    seen = experiments.close_wait(host, leak=True, sessions=3)
    assert len(seen.facts["close_wait"]) == 3, seen.evidence
    assert seen.facts["held_by_parent"], (
        f"the parent should hold every CLOSE_WAIT socket\n{seen.evidence}")
    assert seen.facts["growth"] == 3, seen.evidence


def test_sound_server_returns_to_baseline_with_no_close_wait(host):
    seen = experiments.close_wait(host, leak=False, sessions=3)
    assert seen.facts["close_wait"] == [], seen.evidence
    assert seen.facts["growth"] == 0, seen.evidence
