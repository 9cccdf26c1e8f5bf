"""SIGHUP reload, from the FreeBSD handbook: "many servers also process
SIGHUP, and typically interpret it as the signal ... to reread their
configuration files". Sessions already open go on as they were; new
connections follow the new configuration; a broken file changes nothing
and the server says why."""

import pytest

from faultline.clients import echo
from faultline.echod import Echod
from faultline.waiting import wait_until

pytestmark = pytest.mark.reload


def test_new_connection_limit_applies_to_new_connections_only(host):
    with Echod(host, config="# no limit yet\n") as server:
        open_session = host.connect(server.port)
        assert echo(open_session) == b"ping\n"
        event = server.reload("max_conns = 1\n")
        assert event["event"] == "reload" and event["max_conns"] == 1, event
        assert echo(open_session) == b"ping\n", "the open session must go on"
        refused = host.connect(server.port)
        assert refused.recv(16) == b"", "a second session is over the limit"
        assert server.events("refused"), server.events()[-5:]


def test_new_faults_apply_to_new_sessions_only(host):
    with Echod(host, config="") as server:
        old = host.connect(server.port)
        assert echo(old) == b"ping\n"
        server.reload("fault = drop@after_read\n")
        new = host.connect(server.port)
        new.sendall(b"lost\n")
        wait_until(lambda: server.events("fault"), 5.0, "the new session's drop")
        assert echo(old) == b"ping\n", "the old session keeps its (empty) faults"


def test_broken_config_keeps_the_old_one_and_says_why(host):
    with Echod(host, config="max_conns = 1\n") as server:
        event = server.reload("max_conns = 1\nbogus = 3\n")
        assert event["event"] == "reload_failed", event
        assert "echod.conf:2" in event["error"] and "bogus" in event["error"], event
        first = host.connect(server.port)
        assert echo(first) == b"ping\n"
        second = host.connect(server.port)
        assert second.recv(16) == b"", "max_conns = 1 is still in force"
