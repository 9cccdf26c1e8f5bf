"""The event log as a contract (python/faultline/eventschema.py): the table
in docs/ARCHITECTURE.md is the schema's; the reader rejects, with file and
line, whatever is not a valid event; the log stays UTF-8 JSON whatever
bytes come from outside; and every field of every event the suite can
provoke is provoked here and its value asserted (READERS, checked by
test_every_field_of_every_provoked_event_is_asserted)."""

import inspect
import json
import os
import signal
import socket
import struct

import pytest

from faultline import eventschema, faults, paths, scenario
from faultline.clients import echo, start_client, talk
from faultline.echod import Echod, EventLogError, read_events
from faultline.eventschema import ECHOC, ECHOD
from faultline.waiting import wait_until
from test_accept_errors import at_the_limit

pytestmark = pytest.mark.eventlog

ARCHITECTURE = paths.REPO / "docs" / "ARCHITECTURE.md"
FAULTS_DOC = paths.REPO / "docs" / "FAULTS.md"
COMMON = {f.name for f in eventschema.COMMON}
EAGAIN_TEXT = os.strerror(11)


def assert_fields(event, expected):
    """Every field the event carries beyond ts/pid/event is named in
    expected, with its value or a predicate on it; so no field goes
    unread, and a renamed one fails here as well as in the reader."""
    carried = set(event) - COMMON
    assert carried == set(expected), (
        f"{event.get('event')}: carries {sorted(carried)}, the test expects "
        f"{sorted(expected)}: {event}")
    for key, want in expected.items():
        ok = want(event[key]) if callable(want) else event[key] == want
        assert ok, f"{event['event']}: {key} = {event[key]!r}, expected {want!r}: {event}"


def only(server, name, timeout=5.0, count=1):
    """The server's `name` events, once there are `count` of them."""
    return wait_until(lambda: server.events(name) if len(server.events(name)) >= count
                      else None, timeout, f"{count} {name!r} event(s)",
                      seen=lambda: server.events()[-8:])


def addr_text(addr):
    return f"{addr[0]}:{addr[1]}"


# --- the schema and the documents -------------------------------------------

def test_architecture_event_table_is_the_schema():
    doc = eventschema.doc_table(ARCHITECTURE.read_text())
    want = eventschema.markdown_table()
    assert doc is not None, f"{ARCHITECTURE}: no event table"
    assert doc == want, (
        f"{ARCHITECTURE}'s event table differs from eventschema.TABLE; regenerate it with\n"
        f"  PYTHONPATH=python /usr/bin/python3 -m faultline.eventschema --write "
        f"docs/ARCHITECTURE.md\nschema's table:\n{want}")


def test_doc_table_with_a_renamed_field_is_told_apart():
    text = ARCHITECTURE.read_text().replace("peer: str", "remote: str", 1)
    assert "remote: str" in text
    assert eventschema.doc_table(text) != eventschema.markdown_table()


def test_faults_md_example_and_fields_are_the_schemas():
    text = FAULTS_DOC.read_text()
    example = next(line for line in text.splitlines() if line.startswith('{"ts"'))
    assert eventschema.problems(json.loads(example)) == []
    lines = text[text.index("| field | |"):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1])
    documented = {name.strip() for row in rows for name in row.split(",")}
    fault = eventschema.EVENTS["fault"]
    assert documented == {f.name for f in fault.fields}, (
        f"docs/FAULTS.md lists {sorted(documented)}, the schema "
        f"{[f.name for f in fault.fields]}")


VALID_STOP = {"ts": 1.5, "pid": 7, "event": "stop", "connections": 2}


def test_schema_accepts_a_valid_event():
    assert eventschema.problems(VALID_STOP) == []
    assert eventschema.problems({"ts": 1.0, "pid": 1, "event": "reaped", "child": 3,
                                 "signal": 9}, ECHOD) == []


@pytest.mark.parametrize("event, says", [
    ({**VALID_STOP, "event": "halt"}, "unknown event 'halt'"),
    ({**VALID_STOP, "conns": 2}, "stop: unknown field 'conns'"),
    ({"ts": 1.5, "pid": 7, "event": "stop"}, "stop: missing required field 'connections'"),
    ({**VALID_STOP, "connections": "2"}, "field 'connections' is str"),
    ({**VALID_STOP, "connections": True}, "field 'connections' is bool"),
    ({**VALID_STOP, "pid": 7.5}, "'pid' is float"),
    ({"pid": 7, "event": "stop", "connections": 2}, "missing common field 'ts'"),
    ({"ts": 1.0, "pid": 1, "event": "reaped", "child": 3, "exit": 0, "signal": 9},
     "exactly one of exit, signal"),
    ({"ts": 1.0, "pid": 1, "event": "reaped", "child": 3}, "exactly one of exit, signal"),
    ([1, 2], "not a JSON object"),
], ids=["unknown-event", "unknown-field", "missing", "wrong-type", "bool-for-int",
        "common-type", "no-ts", "exit-and-signal", "neither", "not-object"])
def test_schema_rejects(event, says):
    found = eventschema.problems(event)
    assert any(says in p for p in found), f"expected {says!r} among {found}"


def test_schema_rejects_an_event_from_a_program_that_does_not_write_it():
    event = {"ts": 1.0, "pid": 1, "event": "accept", "conn": 1, "peer": "127.0.0.1:1"}
    assert eventschema.problems(event, ECHOD) == []
    assert "written by echoc" in " ".join(eventschema.problems(event, ECHOC))


# --- the reader ------------------------------------------------------------

STOP_LINE = b'{"ts":1.5,"pid":7,"event":"stop","connections":2}\n'


@pytest.mark.parametrize("bad, says", [
    (b'{"ts":1.5,"pid":7,"event":"reload_failed","error":"x\xff"}\n', "not UTF-8"),
    (b'echod: listening on 0.0.0.0:1 model=fork\n', "not JSON"),
    (b'{"ts":1.5,"pid":7,"event":"stop","connection":2}\n', "stop: unknown field 'connection'"),
], ids=["not-utf8", "not-json", "invalid-event"])
def test_reader_names_file_and_line_of_a_bad_line(tmp_path, bad, says):
    log = tmp_path / "e.jsonl"
    log.write_bytes(STOP_LINE + bad + STOP_LINE)
    with pytest.raises(EventLogError) as raised:
        read_events(log)
    assert f"{log}:2: {says}" in str(raised.value), str(raised.value)


def test_reader_skips_only_a_torn_last_line(tmp_path):
    log = tmp_path / "e.jsonl"
    log.write_bytes(STOP_LINE + STOP_LINE[:20])
    assert [e["event"] for e in read_events(log)] == ["stop"]


def test_echod_exit_validates_the_whole_log_read_or_not(host):
    """An event no test reads is validated too, when the server's context
    ends: a line appended as another writer would is caught there."""
    server = Echod(host)
    with pytest.raises(EventLogError, match=r"echod\.events\.jsonl:\d+: unknown event 'idle'"):
        with server:
            assert echo(host.connect(server.port)) == b"ping\n"
            with open(server.events_path, "ab") as log:
                log.write(b'{"ts":1.5,"pid":2,"event":"idle","conns":0}\n')
    assert server.proc.returncode == 0, "the server itself stopped as usual"


SCENARIO = """# Expected packets: one handshake, "hi" and its echo.
title = "contract"
source = "test"
marker = "rst"
verdict = "echoed"

[server]

[[step]]
do = "connect"
as = "a"

[[step]]
do = "send"
on = "a"
data = "hi\\n"

[[step]]
do = "expect_echo"
on = "a"
data = "hi\\n"
"""


@pytest.mark.parametrize("breach", [False, True], ids=["holds", "listen-unknown"])
def test_a_scenario_run_checks_its_whole_log(hosts_possible, tmp_path, monkeypatch, breach):
    """A scenario whose steps read no event still has its log validated
    at the end: a breach is one of its failures."""
    if breach:
        monkeypatch.delitem(eventschema.EVENTS, "listen")
    path = tmp_path / "contract.toml"
    path.write_text(SCENARIO)
    result = scenario.run(path, tmp_path / "run")
    failures = "\n".join(result.failures)
    assert result.passed is not breach, failures or result.lines
    assert ("unknown event 'listen'" in failures) is breach, failures


# --- bytes from outside, --events - and --events FILE ----------------------

def test_raw_config_bytes_in_reload_failed_are_escaped(host):
    """reload_failed quotes the bad config line: its invalid bytes become
    \\u00XX, so the line is UTF-8 JSON, and a well-formed character stays."""
    with Echod(host, config="max_conns = 1\n") as server:
        server.config_path.write_bytes(b"max_conns = 1\nbogus\xff\xfe\xc3\xa9 = 3\n")
        server.send_signal(signal.SIGHUP)
        event, = only(server, "reload_failed")
        raw = server.events_path.read_bytes()
        assert b"bogus\\u00ff\\u00fe\xc3\xa9" in raw, raw[-300:]
        assert_fields(event, {"error": lambda e: "echod.conf:2" in e
                              and "bogus\u00ff\u00fe\u00e9" in e})


def test_events_to_stdout_carry_only_json_and_the_readiness_line_goes_to_stderr(host):
    proc = host.spawn([paths.binary("echod"), "--port", 0, "--events", "-"], name="echod-stdout")
    try:
        proc.wait_for_output("listening on", 5.0, stream="stderr")
        port = int(proc.stderr().split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        assert echo(host.connect(port)) == b"ping\n"
        wait_until(lambda: '"event":"reaped"' in proc.stdout(), 5.0, "the reaped event",
                   seen=proc.stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10.0)
    lines = proc.stdout().splitlines()
    for number, line in enumerate(lines, start=1):
        assert eventschema.problems(json.loads(line), ECHOD) == [], f"stdout:{number}: {line}"
    assert "listen" in [json.loads(line)["event"] for line in lines], lines
    assert "listening on" not in proc.stdout(), proc.stdout()


@pytest.mark.parametrize("program, rest", [(ECHOD, ["--port", 0]), (ECHOC, ["127.0.0.1", 9])])
def test_events_file_that_is_a_symlink_is_refused(host, program, rest):
    target = host.workdir / "elsewhere.log"
    link = host.workdir / "events-link.jsonl"
    link.symlink_to(target)
    code, out, err = host.run([paths.binary(program), "--events", link, *rest])
    assert code == 1, f"exit {code}, stderr {err!r}"
    assert err.strip() == (f"{program}: open({link}, O_NOFOLLOW): {os.strerror(40)}: "
                           "a symbolic link is not followed"), err
    assert not target.exists(), "echod wrote through the link"


# --- every field, provoked -------------------------------------------------

def test_fork_session_events(host):
    with Echod(host) as server:
        sock = host.connect(server.port)
        sock.sendall(b"hello\n")
        assert sock.recv(16) == b"hello\n"
        fork, = only(server, "fork")
        child = fork["child"]
        peer = addr_text(sock.getsockname())
        sock.close()
        reaped, = only(server, "reaped")
        listen, = server.events("listen")
        seed, = server.events("fault_seed")
        accept, = server.events("accept")
        start, = server.events("child_start")
        end, = server.events("session_end")
        child_exit, = server.events("child_exit")
        sigchld = [e for e in server.events("signal") if e["signo"] == signal.SIGCHLD]
    stop, = server.events("stop")
    assert_fields(listen, {"addr": addr_text(server.addr), "model": "fork",
                           "reap": "waitpid", "leak_connfd": 0, "max_conns": 0,
                           "idle_timeout_ms": 0, "session_timeout_ms": 0,
                           "keepalive_idle": 0, "emfile": "backoff", "fault_hooks": 1})
    assert_fields(seed, {"seed": str.isdigit, "faults": 0})
    assert_fields(accept, {"conn": 1, "peer": peer})
    assert_fields(fork, {"conn": 1, "child": lambda pid: pid > 1 and pid != listen["pid"]})
    assert start["pid"] == child and end["pid"] == child, (start, end)
    assert_fields(start, {"conn": 1})
    assert_fields(end, {"conn": 1, "bytes": 6, "reason": "eof"})
    assert_fields(child_exit, {"conn": 1, "status": 0})
    assert sigchld, server.events("signal")
    assert_fields(sigchld[0], {"signo": signal.SIGCHLD, "name": "SIGCHLD"})
    assert_fields(reaped, {"child": child, "exit": 0})
    assert_fields(stop, {"connections": 1})


def test_session_end_names_the_read_error_of_a_reset_peer(host):
    with Echod(host) as server:
        sock = host.connect(server.port)
        assert echo(sock) == b"ping\n"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        end, = only(server, "session_end")
        reaped, = only(server, "reaped")
    assert_fields(end, {"conn": 1, "bytes": 5, "reason": "read",
                        "error": os.strerror(104)})
    # A session that ended in an error exits 1.
    assert_fields(reaped, {"child": server.events("fork")[0]["child"], "exit": 1})


def test_reaped_names_the_signal_that_killed_the_child(host):
    with Echod(host, faults=["kill@child_start"]) as server:
        host.connect(server.port)
        reaped, = only(server, "reaped")
        fault, = server.events("fault")
    assert_fields(reaped, {"child": server.events("fork")[0]["child"],
                           "signal": signal.SIGKILL})
    assert_fields(fault, {"action": "kill", "point": "child_start", "conn": 1,
                          "rule": 0, "hit": 1})


def test_fault_with_an_argument_logs_it(host):
    with Echod(host, faults=["delay=1ms@before_read,nth=2"]) as server:
        assert echo(host.connect(server.port)) == b"ping\n"
        fault, = only(server, "fault")
    assert_fields(fault, {"action": "delay", "point": "before_read", "conn": 1,
                          "rule": 0, "arg": 1000, "hit": 2})


def test_fork_fail_at_accept_logs_fork_error(host):
    with Echod(host, faults=["fork_fail@accept"]) as server:
        sock = host.connect(server.port)
        assert sock.recv(16) == b"", "the connection is closed unserved"
        error, = only(server, "fork_error")
    assert_fields(error, {"call": "fork (injected)", "error": EAGAIN_TEXT})


def test_thread_model_session_and_error_events(host):
    with Echod(host, model="thread", faults=["fork_fail@accept,conn=2"]) as server:
        first = host.connect(server.port)
        assert echo(first) == b"ping\n"
        first.close()
        exit_, = only(server, "thread_exit")
        start, = server.events("thread_start")
        assert host.connect(server.port).recv(16) == b""
        error, = only(server, "thread_error")
    assert_fields(start, {"conn": 1, "tid": lambda tid: tid > 0 and tid != start["pid"]})
    assert_fields(exit_, {"conn": 1, "tid": start["tid"], "status": 0})
    assert_fields(error, {"call": "pthread_create (injected)", "error": EAGAIN_TEXT})


def test_prefork_worker_events(host):
    with Echod(host, model="prefork", args=["--workers", "2"]) as server:
        spawns = only(server, "spawn", count=2)
        starts = only(server, "worker_start", count=2)
        sock = host.connect(server.port)
        assert echo(sock) == b"ping\n"
        session, = only(server, "session_start")
        slot_of = {e["child"]: e["worker"] for e in spawns}
        serving = session["pid"]
        faults.kill_serving(host, sock.getsockname())
        worker_exit, = only(server, "worker_exit")
        respawn, = only(server, "respawn")
    assert sorted(slot_of.values()) == [0, 1], spawns
    for spawn in spawns:
        assert_fields(spawn, {"worker": slot_of[spawn["child"]], "child": spawn["child"]})
    for start in starts:
        assert_fields(start, {"worker": slot_of.get(start["pid"])})
    assert_fields(session, {"conn": 1, "worker": slot_of[serving]})
    assert_fields(worker_exit, {"worker": slot_of[serving], "child": serving,
                                "signal": signal.SIGKILL})
    assert_fields(respawn, {"worker": slot_of[serving],
                            "child": lambda pid: pid not in slot_of})


def test_prefork_worker_exit_names_the_exit_status(host):
    with Echod(host, model="prefork", args=["--workers", "1"],
               faults=["exit=3@after_read"]) as server:
        spawn, = only(server, "spawn")
        sock = host.connect(server.port)
        sock.sendall(b"hello\n")
        assert sock.recv(16) == b"", "the worker exited before the echo"
        worker_exit, = only(server, "worker_exit")
    assert_fields(worker_exit, {"worker": 0, "child": spawn["child"], "exit": 3})


@pytest.mark.parametrize("model", ["poll", "epoll"])
def test_event_loop_rlimit_and_session_start(host, model):
    with Echod(host, model=model) as server:
        assert echo(host.connect(server.port)) == b"ping\n"
        session, = only(server, "session_start")
        rlimit, = server.events("rlimit")
    assert_fields(session, {"conn": 1})
    assert_fields(rlimit, {"resource": "nofile",
                           "soft": lambda soft: soft == -1 or soft >= rlimit["was"],
                           "was": lambda was: was == -1 or was > 0})


def test_refused_and_reload_events(host):
    with Echod(host, config="max_conns = 2\n") as server:
        reload = server.reload("max_conns = 1\nfault = delay=1ms@after_write\n")
        first = host.connect(server.port)
        assert echo(first) == b"ping\n"
        assert host.connect(server.port).recv(16) == b"", "over max_conns"
        refused, = only(server, "refused")
    assert_fields(reload, {"max_conns": 1, "faults": 1})
    assert_fields(refused, {"conn": 2, "live": 1})


def test_listen_names_each_limit_and_session_timeout_names_its_own(host):
    with Echod(host, model="poll", args=["--idle-timeout", "0.2", "--session-timeout", "30",
                                         "--keepalive", "7", "--emfile", "reserve",
                                         "--max-conns", "3"]) as server:
        sock = host.connect(server.port)
        assert echo(sock) == b"ping\n"
        timeout, = only(server, "session_timeout")
        listen, = server.events("listen")
        sock.close()
    assert_fields(listen, {"addr": addr_text(server.addr), "model": "poll",
                           "reap": "waitpid", "leak_connfd": 0, "max_conns": 3,
                           "idle_timeout_ms": 200, "session_timeout_ms": 30000,
                           "keepalive_idle": 7, "emfile": "reserve", "fault_hooks": 1})
    assert_fields(timeout, {"conn": 1, "reason": "idle", "limit_ms": 200})


@pytest.mark.parametrize("emfile", ["backoff", "reserve"])
def test_at_the_descriptor_limit_accept_error_or_refused_names_emfile(host, emfile):
    """backoff: accept fails, logged and paused; reserve: the waiting
    connection is taken with the spare descriptor and refused."""
    with Echod(host, model="epoll", args=["--emfile", emfile]) as server:
        first = host.connect(server.port)
        assert echo(first) == b"ping\n"
        with at_the_limit(server):
            extra = host.connect(server.port)
            name = "accept_error" if emfile == "backoff" else "refused"
            event = only(server, name)[0]
        extra.close()
        first.close()
    if emfile == "backoff":
        assert_fields(event, {"call": "accept", "error": os.strerror(24)})
    else:
        assert_fields(event, {"conn": 2, "error": os.strerror(24)})


def test_drain_timeout_counts_the_killed_sessions(host):
    with Echod(host, drain_ms=200, faults=["stall@before_read"],
               stopped_by_test=True) as server:
        host.connect(server.port)
        host.connect(server.port)
        only(server, "fork", count=2)
        server.send_signal(signal.SIGTERM)
        server.proc.wait(10.0)
    drain, = server.events("drain_timeout")
    assert_fields(drain, {"live": 2})


def test_a_failed_socket_fault_logs_fault_error(host):
    """shutdown(SHUT_WR) on a connection the peer reset fails: ENOTCONN."""
    with Echod(host, faults=["shutdown_wr@before_close"]) as server:
        sock = host.connect(server.port)
        assert echo(sock) == b"ping\n"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        error, = only(server, "fault_error")
    assert_fields(error, {"conn": 1, "error": lambda text: text.startswith("shutdown SHUT_WR(fd ")
                          and text.endswith(os.strerror(107))})


def test_echoc_fault_events(host):
    log = host.workdir / "echoc.events.jsonl"
    with Echod(host) as server:
        client = start_client(host, server.port,
                              ["--fault", "short=2@before_write", "--events", log])
        talk(client, "hello")
        client.stdin.close()
        assert client.wait(5.0) == 0, client.stderr()
    fault, = read_events(log, program=ECHOC)
    assert_fields(fault, {"action": "short", "point": "before_write", "conn": 1,
                          "rule": 0, "arg": 2, "hit": 1})


# --- every field has a reader ------------------------------------------------

# The tests that provoke each event and assert all its fields between them.
READERS = {
    "listen": test_fork_session_events,
    "fault_seed": test_fork_session_events,
    "accept": test_fork_session_events,
    "fork": test_fork_session_events,
    "child_start": test_fork_session_events,
    "session_end": test_session_end_names_the_read_error_of_a_reset_peer,
    "child_exit": test_fork_session_events,
    "signal": test_fork_session_events,
    "reaped": (test_fork_session_events, test_reaped_names_the_signal_that_killed_the_child),
    "stop": test_fork_session_events,
    "fault": test_fault_with_an_argument_logs_it,
    "fork_error": test_fork_fail_at_accept_logs_fork_error,
    "thread_start": test_thread_model_session_and_error_events,
    "thread_exit": test_thread_model_session_and_error_events,
    "thread_error": test_thread_model_session_and_error_events,
    "spawn": test_prefork_worker_events,
    "respawn": test_prefork_worker_events,
    "worker_start": test_prefork_worker_events,
    "session_start": test_prefork_worker_events,
    "worker_exit": (test_prefork_worker_events,
                    test_prefork_worker_exit_names_the_exit_status),
    "rlimit": test_event_loop_rlimit_and_session_start,
    "refused": (test_refused_and_reload_events,
                test_at_the_descriptor_limit_accept_error_or_refused_names_emfile),
    "accept_error": test_at_the_descriptor_limit_accept_error_or_refused_names_emfile,
    "session_timeout": test_listen_names_each_limit_and_session_timeout_names_its_own,
    "reload": test_refused_and_reload_events,
    "reload_failed": test_raw_config_bytes_in_reload_failed_are_escaped,
    "drain_timeout": test_drain_timeout_counts_the_killed_sessions,
    "fault_error": test_a_failed_socket_fault_logs_fault_error,
}


def test_every_field_of_every_provoked_event_is_asserted():
    """Each event the suite can provoke has a reader above whose source
    names each of its fields (assert_fields then fails on any field the
    event carries that the test does not name); the others say why not."""
    missing = []
    for ev in eventschema.TABLE:
        for name in ev.names:
            if ev.unprovoked:
                assert name not in READERS, f"{name}: has a reader, drop `unprovoked`"
                continue
            readers = READERS.get(name)
            if readers is None:
                missing.append(f"{name}: no reader in READERS")
                continue
            readers = readers if isinstance(readers, tuple) else (readers,)
            source = "".join(inspect.getsource(r) for r in readers)
            for f in ev.fields:
                if f'"{f.name}"' not in source:
                    missing.append(f"{name}.{f.name}: not named in "
                                   f"{', '.join(r.__name__ for r in readers)}")
    assert not missing, "\n".join(missing)


def test_reader_check_finds_a_field_no_test_names(monkeypatch):
    """The check above must fail when a field has no reader: a field added
    to the schema that no test names."""
    stop = eventschema.EVENTS["stop"]
    grown = eventschema.Event(stop.names, stop.fields + (eventschema.F("uptime", int),),
                              stop.by)
    table = tuple(grown if ev is stop else ev for ev in eventschema.TABLE)
    monkeypatch.setattr(eventschema, "TABLE", table)
    with pytest.raises(AssertionError, match=r"stop\.uptime: not named in"):
        test_every_field_of_every_provoked_event_is_asserted()

