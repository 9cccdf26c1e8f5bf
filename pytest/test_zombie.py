"""Zombie children and the three reapers of UNP chapter 5.

UNP 5.8-5.10: a client with five connections (client-v2) exits, the five
server children exit together. server-v1 has no SIGCHLD handler: five
zombies. server-v2 calls wait() once per SIGCHLD: signals do not queue, so
some children stay zombies. server-v3 loops on waitpid(WNOHANG): none.
"""

import pytest

from faultline import capture, experiments, procs
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.zombie


def test_no_reaper_leaves_every_child_a_zombie(host):
    seen = experiments.close_together(host, "none", deterministic=False,
                                      capture=False)
    assert seen.client_status == 0, seen.evidence()
    assert len(seen.zombies) == 5, (
        f"server-v1 (no SIGCHLD handler) should leave all 5 children as "
        f"zombies\n{seen.evidence()}")
    assert seen.sigchld_events == [], seen.evidence()


def test_waitpid_reaper_leaves_no_zombie(host):
    seen = experiments.close_together(host, "waitpid", deterministic=False,
                                      capture=False)
    assert seen.zombies == [], (
        f"server-v3 (waitpid loop) should reap all 5 children\n{seen.evidence()}")
    assert len(seen.reaped_events) == 5, seen.evidence()


def test_one_wait_per_sigchld_loses_signals_of_simultaneous_exits(host):
    """The lost-signal experiment made certain: the server is stopped while
    the five children exit, so their SIGCHLDs merge into one pending signal;
    continued, it runs its handler once, and one wait() reaps one child."""
    seen = experiments.close_together(host, "wait", deterministic=True,
                                      capture=False)
    assert len(seen.sigchld_events) == 1, (
        f"expected exactly one SIGCHLD delivery for five exits\n{seen.evidence()}")
    assert len(seen.reaped_events) == 1, seen.evidence()
    assert len(seen.zombies) == 4, (
        f"server-v2 should reap 1 of 5 children on one SIGCHLD and leave 4 "
        f"zombies\n{seen.evidence()}")


def test_waitpid_loop_reaps_all_children_on_one_sigchld(host):
    seen = experiments.close_together(host, "waitpid", deterministic=True,
                                      capture=False)
    assert len(seen.sigchld_events) == 1, seen.evidence()
    assert seen.zombies == [], (
        f"server-v3 should reap all 5 children on one SIGCHLD\n{seen.evidence()}")
    assert sorted(e["child"] for e in seen.reaped_events) == sorted(
        c.nspid for c in seen.children), seen.evidence()


@pytest.mark.pcap
def test_close_together_capture_shows_five_handshakes_and_five_closes(host):
    seen = experiments.close_together(host, "none", deterministic=False)
    segments = capture.read_segments(seen.pcap)
    conns = capture.conversations(segments, 9877)
    summary = f"pcap {seen.pcap}:\n{capture.describe(segments)}"
    assert len(conns) == 5, f"expected 5 connections to 9877\n{summary}"
    assert all(c.handshake for c in conns), f"a handshake is missing\n{summary}"
    assert all(c.closed for c in conns), (
        f"every connection should end with a FIN from each side\n{summary}")
    assert not any(c.rsts_from("client") or c.rsts_from("server") for c in conns), (
        f"an orderly close has no RST\n{summary}")


def test_waitpid_reaper_zombie_count_returns_to_zero_after_churn(host):
    """300 connect-and-close cycles as fast as the kernel takes them: the
    exits overlap, and every one is reaped."""
    churn = 300
    with Echod(host, reap="waitpid") as server:
        def connect_and_close():
            for _ in range(churn):
                sock = host.connect(server.port)
                sock.close()
        host.in_netns(connect_and_close)
        wait_until(lambda: len(server.events("fork")) == churn, 10.0,
                   f"{churn} forks", seen=lambda: f"{len(server.events('fork'))} forks")
        wait_until(lambda: not server.children(), 10.0,
                   "every child of the churn to be reaped",
                   seen=lambda: f"{len(server.zombies())} zombies of "
                                f"{len(server.children())} children\n{server.ps()}")
        server.wait_idle()
        assert server.zombies() == [], server.ps()
        assert len(server.events("reaped")) == churn


@pytest.mark.parametrize("reap, zombies", [("none", 1), ("waitpid", 0)],
                         ids=["without-handler", "with-handler"])
def test_uc3m_sigchld_handler_decides_whether_a_closed_client_leaves_a_zombie(
        host, reap, zombies):
    """UC3M sockets lab, exercise 5: the same server with and without the
    SIGCHLD handler; look at the process table after a client closes."""
    with Echod(host, reap=reap, leaves={"zombies"} if zombies else ()) as server:
        client = experiments.start_client(host, server.port)
        experiments.talk(client, "hola")
        wait_until(lambda: len(server.children()) == 1, 5.0, "the serving child",
                   seen=server.ps)
        child = server.children()[0]
        client.stdin.close()
        assert client.wait() == 0, client.stderr()
        wait_until(lambda: experiments.all_exited([child.pid]), 5.0,
                   "the child to exit after its client closed", seen=server.ps)
        server.wait_idle()
        table = server.ps()
        assert len(server.zombies()) == zombies, (
            f"--reap {reap}: expected {zombies} <defunct> row(s)\n{table}")
        if zombies:
            assert procs.info(child.pid).state == "Z", table
