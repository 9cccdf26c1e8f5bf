"""The event log's contract: every event echod and echoc write, its fields,
their types, which are optional, and who writes it.

The log is an interface other tools read, so this table is its one
definition: docs/ARCHITECTURE.md's event table is generated from it
(`python3 -m faultline.eventschema --write docs/ARCHITECTURE.md`, and
test_eventlog checks the two agree), and the harness's reader
(echod.read_events) validates every event it reads against it, so a field
renamed in C fails whichever test reads that event.

    problems({"ts": 1.5, "pid": 7, "event": "stop"})
    -> ["stop: missing required field 'connections'"]
"""

import sys
from dataclasses import dataclass
from pathlib import Path

ECHOD = "echod"
ECHOC = "echoc"


@dataclass(frozen=True)
class Field:
    name: str
    type: type          # int, str or float (what json.loads gives)
    note: str = ""
    required: bool = True


@dataclass(frozen=True)
class Event:
    names: tuple        # one row of the table may name several events
    fields: tuple
    by: str             # who writes it, and when
    programs: tuple = (ECHOD,)
    one_of: tuple = ()  # field names of which exactly one is present
    # Why no test provokes it (an error echod never expects to see);
    # empty when the suite provokes it and reads its fields.
    unprovoked: str = ""


def F(name, type_, note=""):
    return Field(name, type_, note)


def opt(name, type_, note=""):
    return Field(name, type_, note, required=False)


# Every event has these, first.
COMMON = (
    F("ts", float, "seconds since the epoch, microseconds"),
    F("pid", int, "as the process sees itself (the host's PID namespace)"),
    F("event", str),
)

CONN = F("conn", int, "1, 2, ...")
CALL_ERROR = (F("call", str), F("error", str, "strerror"))
EXIT_OR_SIGNAL = (opt("exit", int), opt("signal", int))

TABLE = (
    Event(("listen",), (F("addr", str, "ADDR:PORT bound"), F("model", str), F("reap", str),
                        F("leak_connfd", int, "0 or 1"), F("max_conns", int, "0: no limit"),
                        F("idle_timeout_ms", int, "0: none"),
                        F("session_timeout_ms", int, "0: none"),
                        F("keepalive_idle", int, "seconds; 0: off"),
                        F("emfile", str, "backoff or reserve"),
                        F("fault_hooks", int, "0 or 1: built with them"),),
          "parent, once listening"),
    Event(("accept",), (CONN, F("peer", str, "ADDR:PORT")),
          "parent; prefork: the worker that took it (one numbering for the pool)"),
    Event(("fork",), (CONN, F("child", int)), "parent"),
    Event(("child_start",), (CONN,), "child"),
    Event(("session_end",), (CONN, F("bytes", int, "echoed"), F("reason", str),
                             opt("error", str, "strerror, with read/write/poll")),
          "whoever served the session"),
    Event(("session_timeout",), (CONN, F("reason", str, "idle or session"),
                                 F("limit_ms", int, "--idle-timeout or --session-timeout")),
          "whoever serves the session; its session_end (reason idle_timeout or "
          "session_timeout) follows"),
    Event(("child_exit",), (CONN, F("status", int)), "child"),
    Event(("thread_start",), (CONN, F("tid", int, "gettid")),
          "thread model: the session thread, first thing"),
    Event(("thread_exit",), (CONN, F("tid", int), F("status", int)),
          "thread model: the session thread, after it closed the connection"),
    Event(("thread_error",), (F("call", str, "`pthread_create`, or `pthread_create (injected)` "
                                "for fork_fail@accept"), F("error", str)),
          "thread model: main thread; the connection is closed"),
    Event(("spawn", "respawn"), (F("worker", int, "slot 0..N-1"), F("child", int)),
          "prefork master: a worker forked at start / to replace a dead one"),
    Event(("worker_start",), (F("worker", int),),
          "prefork: the worker, once, before it first accepts"),
    Event(("session_start",), (CONN, opt("worker", int, "prefork only")),
          "prefork: the worker, as it starts serving a connection; poll, epoll: "
          "the loop, once the connection is registered"),
    Event(("worker_exit",), (F("worker", int), F("child", int)) + EXIT_OR_SIGNAL,
          "prefork master, after the reaper took that worker", one_of=(("exit", "signal"),)),
    Event(("signal",), (F("signo", int), F("name", str, "SIGCHLD, ...")), "handler"),
    Event(("reaped",), (F("child", int),) + EXIT_OR_SIGNAL, "SIGCHLD handler, shutdown",
          one_of=(("exit", "signal"),)),
    Event(("accept_error",), CALL_ERROR,
          "parent; never fatal: 100 ms back-off (EMFILE without `--emfile reserve`, "
          "ENOBUFS, ENOMEM, anything unexpected), or none (EPERM, EACCES)"),
    Event(("keepalive_error",), CALL_ERROR,
          "whoever accepted: --keepalive could not be set; the session is served anyway",
          unprovoked="setsockopt of a keepalive option on a fresh TCP socket"),
    Event(("fork_error",), (F("call", str, "`fork`, or `fork (injected)` for fork_fail@accept"),
                            F("error", str, "strerror")),
          "parent; fork_fail@accept: whoever accepted (prefork: the worker)"),
    Event(("lock_error", "drain_error", "child_table_error", "rlimit_error"),
          CALL_ERROR,
          "not expected: a prefork worker's pool lock failed (it exits 1 and is "
          "replaced); the thread model could not watch a session's connection for its drain; the child table could "
          "not grow; poll/epoll could not raise RLIMIT_NOFILE",
          unprovoked="a failing ppoll, mutex, realloc or setrlimit"),
    Event(("refused",), (CONN, opt("live", int), opt("error", str, "strerror")),
          "parent, at the max_conns limit, with live (thread: live sessions; prefork: the "
          "worker, live = busy workers); or with error, shed at EMFILE with the "
          "`--emfile reserve` descriptor", one_of=(("live", "error"),)),
    Event(("fault",), (F("action", str), F("point", str), CONN, F("rule", int, "0-based"),
                       opt("arg", int, "actions that take one"),
                       F("hit", int, "the rule's hits so far")),
          "whoever the fault fired in", programs=(ECHOD, ECHOC)),
    Event(("fault_seed",), (F("seed", str, "replay with seed=S"), F("faults", int, "rules")),
          "parent, at start, in a build with fault hooks"),
    Event(("reload",), (F("max_conns", int), F("faults", int)), "parent, after SIGHUP"),
    Event(("reload_failed",), (F("error", str, "FILE:LINE: ..."),), "parent, config kept"),
    Event(("stop",), (F("connections", int, "accepted in all"),),
          "parent, after SIGTERM/SIGINT"),
    Event(("drain_timeout",), (F("live", int),),
          "parent, sessions SIGKILLed after --drain-timeout (thread model: the process "
          "exits with them)"),
    Event(("fault_error",), (CONN, F("error", str, "call(fd N): strerror")),
          "whoever carried out a socket fault (rst, close, shutdown_wr) whose call failed, "
          "e.g. shutdown on a connection the peer had reset; the fault still ends or "
          "shuts the connection"),
    Event(("rlimit",), (F("resource", str, "nofile"), F("soft", int, "-1: unlimited"),
                        F("was", int)),
          "poll, epoll: at start, after raising the descriptor limit to the hard one"),
)

EVENTS = {name: ev for ev in TABLE for name in ev.names}

TYPE_NAMES = {int: "int", str: "str", float: "float"}


class EventLogError(ValueError):
    """A line of an event log that is not a valid event: its text says
    which file and line, and why."""


def _type_ok(value, type_):
    if type_ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type_) and not isinstance(value, bool)


def problems(event, program=None):
    """What is wrong with one parsed event (a list of sentences, empty when
    it is valid); program: echod or echoc, when the log's writer is known."""
    if not isinstance(event, dict):
        return [f"not a JSON object: {event!r}"]
    found = []
    for f in COMMON:
        if f.name not in event:
            found.append(f"missing common field {f.name!r}")
        elif not _type_ok(event[f.name], f.type):
            found.append(f"{f.name!r} is {type(event[f.name]).__name__}, not "
                         f"{TYPE_NAMES[f.type]}")
    name = event.get("event")
    schema = EVENTS.get(name) if isinstance(name, str) else None
    if schema is None:
        return found + [f"unknown event {name!r} (eventschema.TABLE names every event)"]
    if program is not None and program not in schema.programs:
        found.append(f"{name}: written by {program}, but only "
                     f"{'/'.join(schema.programs)} writes it")
    fields = {f.name: f for f in schema.fields}
    common = {f.name for f in COMMON}
    for key, value in event.items():
        if key in common:
            continue
        f = fields.get(key)
        if f is None:
            found.append(f"{name}: unknown field {key!r} (known: {', '.join(fields)})")
        elif not _type_ok(value, f.type):
            found.append(f"{name}: field {key!r} is {type(value).__name__} {value!r}, "
                         f"not {TYPE_NAMES[f.type]}")
    for f in schema.fields:
        if f.required and f.name not in event:
            found.append(f"{name}: missing required field {f.name!r}")
    for group in schema.one_of:
        present = [k for k in group if k in event]
        if len(present) != 1:
            found.append(f"{name}: exactly one of {', '.join(group)} expected, "
                         f"got {present or 'none'}")
    return found


# --- the table in docs/ARCHITECTURE.md ------------------------------------

TABLE_HEAD = "| event | fields | by | program |\n|---|---|---|---|\n"


def _field_text(f):
    text = f"{f.name}{'' if f.required else '?'}: {TYPE_NAMES[f.type]}"
    return f"{text} ({f.note})" if f.note else text


def markdown_table():
    """The event table as docs/ARCHITECTURE.md holds it."""
    rows = []
    for ev in TABLE:
        fields = ", ".join(_field_text(f) for f in ev.fields)
        rows.append(f"| {', '.join(ev.names)} | {fields} | {ev.by} | "
                    f"{', '.join(ev.programs)} |\n")
    return TABLE_HEAD + "".join(rows)


def doc_table(text):
    """The event table inside a document's text: from its header line to
    the first line that is not a table row; None when it has none."""
    start = text.find(TABLE_HEAD)
    if start < 0:
        return None
    end = start + len(TABLE_HEAD)
    while text.startswith("|", end):
        end = text.index("\n", end) + 1
    return text[start:end]


def write_doc(path):
    path = Path(path)
    text = path.read_text()
    old = doc_table(text)
    if old is None:
        raise SystemExit(f"{path}: no event table (a line {TABLE_HEAD.splitlines()[0]!r})")
    path.write_text(text.replace(old, markdown_table()))


def main(argv):
    if argv[:1] == ["--write"] and len(argv) == 2:
        write_doc(argv[1])
    elif not argv:
        sys.stdout.write(markdown_table())
    else:
        raise SystemExit("usage: python3 -m faultline.eventschema [--write DOC.md]")


if __name__ == "__main__":
    main(sys.argv[1:])
