"""UNP 5.12, "termination of server process", beyond the seed experiments.
The killed child and the blocking client that notices only at its next
line (killed from outside, or by a fault hook) and the select() client
that notices at once (UNP 6.4) are scenario files
(fixtures/scenarios/unp-5.12-*, unp-6.4-*, two-hosts-premature), run by
test_scenarios.py under this marker: `pytest -m premature` selects them
with this file."""

import pytest

from faultline.clients import PREMATURE, start_client, talk
from faultline.echod import Echod

pytestmark = pytest.mark.premature


def test_kill_after_read_leaves_the_waiting_client_without_its_echo(host):
    with Echod(host, faults=["kill@after_read,nth=2"]) as server:
        client = start_client(host, server.port, ["--mode", "block"])
        talk(client, "first")
        client.stdin.write(b"second\n")
        client.stdin.flush()
        assert client.wait() == 4, client.stderr()
        assert PREMATURE in client.stderr()
        assert "second" not in client.stdout()
        assert server.reaped_event(1).get("signal") == 9, server.events()[-4:]
