"""UNP 5.12, "termination of server process": the child serving a client
is killed. Its kernel sends a FIN; the blocking client, waiting on stdin,
does not see it, and its socket sits in CLOSE_WAIT. Its next line goes out,
the server host answers with RST, and the client's read finds the FIN:
"server terminated prematurely". The select() client notices at once.

Expected packets on the connection, in order:
    server FIN   (the child died)
    client data  (the next line, sent into a half-closed connection)
    server RST   (no socket there any more)
"""

import pytest

from faultline import experiments
from faultline.echod import Echod

pytestmark = pytest.mark.premature


@pytest.mark.pcap
@pytest.mark.close_wait
@pytest.mark.parametrize("kill_with", ["outside", "hook"])
def test_blocking_client_misses_the_fin_until_its_next_line(host, kill_with):
    seen = experiments.premature_termination(host, "block", kill_with)
    assert seen.facts["alive_in_close_wait"], (
        f"the blocking client should not notice the FIN while it waits on stdin\n"
        f"{seen.facts['close_wait']}")
    assert seen.facts["status"] == 4, seen.evidence
    assert experiments.PREMATURE in seen.facts["stderr"], seen.evidence
    assert seen.facts["fin_data_rst"], (
        f"expected server FIN, then the client's line, then server RST\n"
        f"{seen.evidence}\npcap: {seen.artifacts[0]}")


def test_select_client_reports_premature_termination_at_once(host):
    seen = experiments.premature_termination(host, "select", "outside")
    assert seen.facts["status"] == 4, seen.evidence
    assert experiments.PREMATURE in seen.facts["stderr"], seen.evidence


def test_kill_after_read_leaves_the_waiting_client_without_its_echo(host):
    with Echod(host, faults=["kill@after_read,nth=2"]) as server:
        client = experiments.start_client(host, server.port, mode="block")
        experiments.talk(client, "first")
        client.stdin.write(b"second\n")
        client.stdin.flush()
        assert client.wait() == 4, client.stderr()
        assert experiments.PREMATURE in client.stderr()
        assert "second" not in client.stdout()
        assert server.reaped_event(1).get("signal") == 9, server.events()[-4:]
