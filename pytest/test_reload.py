"""SIGHUP reload, from the FreeBSD handbook: "many servers also process
SIGHUP, and typically interpret it as the signal ... to reread their
configuration files". Sessions already open go on as they were; new
connections follow the new configuration; a broken file changes nothing
and the server says why: that is a scenario file
(fixtures/scenarios/freebsd-sighup-reload.toml), run by test_scenarios.py
under this marker; this file holds the faults a reload brings."""

import pytest

from faultline.clients import echo
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.reload


def test_new_faults_apply_to_new_sessions_only(host):
    with Echod(host, config="") as server:
        old = host.connect(server.port)
        assert echo(old) == b"ping\n"
        server.reload("fault = drop@after_read\n")
        new = host.connect(server.port)
        new.sendall(b"lost\n")
        wait_until(lambda: server.events("fault"), 5.0, "the new session's drop")
        assert echo(old) == b"ping\n", "the old session keeps its (empty) faults"
