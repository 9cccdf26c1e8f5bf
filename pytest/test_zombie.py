"""Zombie children beyond the seed experiments. UNP 5.8-5.10's three
reapers (no handler, one wait() per SIGCHLD, the waitpid loop) and the
UC3M lab's exercise 5 are scenario files (fixtures/scenarios/unp-5.10-*,
uc3m-ex5-*), run by test_scenarios.py under this marker: `pytest -m
zombie` or `-k zombie` selects them with this file."""

import pytest

from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.zombie


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
