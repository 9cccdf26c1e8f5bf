"""The ladder model: what happened to each connection, in time order, on
lanes for the client process, the two sockets and the server's processes.

Drawn from a pcap (segments become arrows between the socket lanes), the
JSON-lines event logs of echod and echoc (events become marks on the
process lanes) and, when there is one, the scenario engine's snapshots.txt
(socket states become marks on the socket lanes). The pcap, the event log
and the snapshots share one clock, CLOCK_REALTIME, so sorting by time is
all it takes to put them on one axis.

The renderers (svg, text, mermaid) only lay out what is here, so the three
pictures cannot disagree.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import capture

# A pause longer than this is drawn as one labelled break, not as its length.
GAP_SECONDS = 0.1
PREVIEW_BYTES = 16

# Events only a server writes: a log with one of them is a server's.
SERVER_EVENTS = {"listen", "accept", "fork", "child_start", "session_end", "child_exit",
                 "signal", "reaped", "stop", "spawn", "worker_start", "session_start",
                 "thread_start", "refused"}
# Events of the server's main process that concern every connection open
# at the time, not one of them.
PROCESS_WIDE = {"signal", "reaped", "stop", "drain_timeout", "reload", "reload_failed",
                "worker_exit", "respawn"}
# Left out of every ladder: they concern the run, not a connection.
RUN_EVENTS = {"fault_seed", "listen", "rlimit"}
# Left out of the overview too: every connection has them.
ROUTINE = {"child_start", "session_start", "thread_start"}


class InputError(Exception):
    """A file the ladder cannot be drawn from: one line, naming the file."""


# --- what a ladder is made of -------------------------------------------------

@dataclass
class Lane:
    """A vertical line: a process or a socket. A process lane begins when it
    was forked (None: before the first row), turns into a zombie when the
    process exits and ends when it is reaped; never reaped, it stays a
    zombie to the end of the diagram."""
    key: str
    title: str
    kind: str                   # "process" or "socket"
    pid: int = None
    born: float = None
    exited: float = None
    exit_label: str = ""
    reaped: float = None

    @property
    def zombie_to_the_end(self):
        return self.exited is not None and self.reaped is None

    def zombie_at(self, t):
        return (self.exited is not None and t >= self.exited
                and (self.reaped is None or t <= self.reaped))

    def alive_at(self, t):
        return ((self.born is None or t >= self.born)
                and (self.reaped is None or t <= self.reaped))


@dataclass(frozen=True)
class Arrow:
    """One TCP segment that matters, from one socket lane to the other."""
    time: float
    src: str            # lane key
    dst: str
    sender: str         # "client" or "server"
    kind: str           # syn, synack, ack, data, fin, rst
    label: str          # "SYN", "data 6 B", "FIN", "ACK of FIN", ...
    length: int = 0
    preview: str = ""   # the first printable bytes, "first⏎"
    cut: bool = False   # the capture kept less than the segment carried
    conn: int = None

    @property
    def text(self):
        return f"{self.label} {self.preview}".rstrip()


@dataclass(frozen=True)
class Mark:
    """Something that happened on one lane: an event, or a state seen."""
    time: float
    lane: str
    kind: str           # accept, fork, start, fault, exit, signal, reaped, state, ...
    label: str
    conn: int = None

    @property
    def text(self):
        return self.label


@dataclass(frozen=True)
class Gap:
    """A pause compressed to one row."""
    seconds: float

    @property
    def text(self):
        return f"… {self.seconds:.2f} s …"


@dataclass(frozen=True)
class Elided:
    """Rows left out to keep a picture bounded."""
    count: int

    @property
    def text(self):
        return f"… {self.count} more rows …"


@dataclass
class Ladder:
    title: str
    lanes: list
    items: list             # Arrow and Mark, in time order
    start: float
    end: float
    notes: list = field(default_factory=list)

    def lane(self, key):
        return next(lane for lane in self.lanes if lane.key == key)

    def arrows(self, kind=None):
        return [i for i in self.items if isinstance(i, Arrow)
                and (kind is None or i.kind == kind)]

    def marks(self, kind=None, lane=None):
        return [i for i in self.items if isinstance(i, Mark)
                and (kind is None or i.kind == kind) and (lane is None or i.lane == lane)]

    def zombie_lanes(self):
        """Process lanes that exited and were never reaped."""
        return [lane for lane in self.lanes if lane.zombie_to_the_end]

    def rows(self, limit=None, gap=GAP_SECONDS):
        """The time axis the renderers draw: the items, with a Gap row
        wherever more than `gap` seconds pass between two of them. Beyond
        `limit` rows, the middle ones give way to one Elided row: the start
        and the end of a story are what tell it."""
        rows, last = [], None
        for item in self.items:
            if last is not None and item.time - last > gap:
                rows.append(Gap(item.time - last))
            rows.append(item)
            last = item.time
        if last is not None and self.end - last > gap:
            rows.append(Gap(self.end - last))
        if limit is not None and len(rows) > limit:
            head = (limit - 1) // 2
            tail = limit - 1 - head
            rows = rows[:head] + [Elided(len(rows) - head - tail)] + rows[len(rows) - tail:]
        return rows

    def drawn_lanes(self, limit=None):
        """The lanes a renderer draws: all, or the first `limit` (an
        overview of many connections keeps its first serving processes);
        the items on the others are left out with them."""
        if limit is None or len(self.lanes) <= limit:
            return self
        lanes = self.lanes[:limit]
        keys = {lane.key for lane in lanes}

        def drawn(item):
            if isinstance(item, Arrow):
                return item.src in keys and item.dst in keys
            return item.lane in keys
        items = [i for i in self.items if drawn(i)]
        note = (f"{len(self.lanes) - limit} more process lanes not drawn "
                f"({len(self.items) - len(items)} events on them)")
        return Ladder(self.title, lanes, items, self.start,
                      self.end, self.notes + [note])

    def trouble(self):
        """What is wrong with this connection, in a few words, or None for
        one that opened and closed in order: what makes it the one to show
        when there are too many to draw."""
        for arrow in self.arrows("rst"):
            return f"a RST from the {arrow.sender}"
        if self.zombie_lanes():
            return "a zombie never reaped"
        arrows = self.arrows()
        if arrows and not self.arrows("synack"):
            return "no SYN-ACK"
        fins = {a.sender for a in self.arrows("fin")}
        for side in ("server", "client"):
            if arrows and side not in fins:
                return f"no FIN from the {side}"
        return None

    def shows_in_order(self, wanted):
        """Whether arrows (sender, kind) appear in this order, others between
        allowed: [("server", "fin"), ("client", "data"), ("server", "rst")]."""
        at = 0
        for a in self.arrows():
            if at < len(wanted) and (a.sender, a.kind) == tuple(wanted[at]):
                at += 1
        return at == len(wanted)


@dataclass
class Picture:
    """Every ladder of a run: one per connection and, when there are
    several, an overview of them all."""
    connections: list
    overview: Ladder = None
    notes: list = field(default_factory=list)

    @property
    def ladders(self):
        return ([self.overview] if self.overview else []) + self.connections


# --- reading the inputs ------------------------------------------------------

def read_pcaps(paths):
    """Every TCP segment of the pcaps, in time order; a packet seen in two
    of them (the same connection captured twice) counts once."""
    from scapy.error import Scapy_Exception
    segments, earlier = [], set()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file" if not path.exists()
                             else f"{path}: not a file")
        try:
            found = capture.read_segments(path)
        except (OSError, Scapy_Exception, EOFError) as e:
            raise InputError(f"{path}: cannot read it as a pcap: {e}") from None
        # Within one file a repeat is real (a duplicate ACK); across files
        # it is the same packet seen at two interfaces.
        def key(s):
            return (round(s.time, 3), s.src, s.dst, s.flags, s.seq, s.ack, s.length)
        segments += [s for s in found if key(s) not in earlier]
        earlier |= {key(s) for s in found}
    return sorted(segments, key=lambda s: s.time)


@dataclass
class EventLog:
    path: Path
    role: str       # "server" (echod) or "client" (echoc)
    events: list


def read_event_log(path):
    """A JSON-lines event log; a torn last line (a process killed
    mid-write) is skipped, a file with no event in it is an error."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "ts" in event and "event" in event:
            events.append(event)
    if text.strip() and not events:
        raise InputError(f"{path}: not an event log (no JSON line with ts and event)")
    role = "server" if any(e["event"] in SERVER_EVENTS for e in events) else "client"
    return EventLog(path, role, sorted(events, key=lambda e: e["ts"]))


@dataclass
class Snapshot:
    time: float
    label: str
    sockets: list       # (state, local (ip, port), peer (ip, port))
    processes: dict     # pid as its host sees it -> STAT


SNAPSHOT_HEAD = re.compile(r"--- after (.*) at (\d+\.\d+)$")


def _address(text):
    host, _, port = text.rpartition(":")
    return (host, int(port)) if port.isdigit() else None


def read_snapshots(path):
    """The scenario engine's snapshots.txt: ps and socket tables, each with
    the time it was taken (files written before the time was recorded are
    skipped: their states cannot be placed)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    snapshots, current, table = [], None, None
    for line in text.splitlines():
        head = SNAPSHOT_HEAD.match(line)
        if head:
            current = Snapshot(float(head.group(2)), head.group(1), [], {})
            snapshots.append(current)
            table = None
        elif current is None:
            continue
        elif line.startswith("process table:"):
            table = "ps"
        elif line.startswith("TCP sockets:"):
            table = "tcp"
        else:
            cols = line.split()
            if table == "ps" and len(cols) >= 4 and cols[2].isdigit():
                current.processes[int(cols[2])] = cols[3]
            elif table == "tcp" and len(cols) >= 5 and cols[0] != "STATE":
                local, peer = _address(cols[3]), _address(cols[4])
                if local and peer:
                    current.sockets.append((cols[0], local, peer))
    return snapshots


# --- from segments to arrows --------------------------------------------------

def preview(payload):
    """The first bytes, printable: a newline as ⏎, anything else unprintable
    as ·, and … when there is more."""
    shown = "".join("⏎" if b == 10 else chr(b) if 32 <= b < 127 else "·"
                    for b in payload[:PREVIEW_BYTES])
    return f'"{shown}{"…" if len(payload) > PREVIEW_BYTES else ""}"' if payload else ""


def arrows_of(conv, conn=None):
    """The segments of one conversation that tell its story: SYN, SYN-ACK,
    the ACK that completes the handshake, data, FIN, the ACK of each FIN,
    RST. Pure ACKs of data and window updates are left out."""
    arrows, synack, handshake_acked = [], None, False
    fin_end, fin_acked, sent_upto = {}, set(), {}
    for s in conv.segments:
        side = "client" if s.src == conv.client else "server"
        other = "server" if side == "client" else "client"
        end = (s.seq + s.length + (1 if s.has("S") or s.has("F") else 0)) % 2**32
        # Sequence space sent before, again: a retransmission.
        again = ((s.length or s.has("F")) and side in sent_upto
                 and not _seq_before(sent_upto[side], end))
        if side not in sent_upto or _seq_before(sent_upto[side], end):
            sent_upto[side] = end
        size = f"{s.length} B" + (f" (cut to {len(s.payload)} B)" if s.cut else "")
        kind, label = None, None
        if s.has("R"):
            kind, label = "rst", "RST"
        elif s.has("S") and s.has("A"):
            synack = s
            kind, label = "synack", "SYN-ACK"
        elif s.has("S"):
            kind, label = "syn", "SYN (again)" if arrows else "SYN"
        elif s.has("F"):
            fin_end[side] = end
            kind, label = "fin", f"FIN + data {size}" if s.length else "FIN"
        elif s.length:
            kind, label = "data", f"data {size}"
        elif (synack is not None and not handshake_acked and side == "client"
              and s.ack == (synack.seq + 1) % 2**32):
            handshake_acked = True
            kind, label = "ack", "ACK"
        elif other in fin_end and other not in fin_acked and s.ack == fin_end[other]:
            fin_acked.add(other)
            kind, label = "ack", "ACK of FIN"
        if kind:
            arrows.append(Arrow(s.time, f"{side}_socket", f"{other}_socket", side, kind,
                                label + (" (retransmitted)" if again else ""),
                                s.length, preview(s.payload), s.cut, conn))
    return arrows


def _seq_before(a, b):
    """a comes before b in sequence space (wrapping at 2**32)."""
    return a != b and (b - a) % 2**32 < 2**31


# --- from events to marks -----------------------------------------------------

def exit_text(event):
    """'exit 0' or 'killed by SIGKILL' from an event's exit/signal/status."""
    import signal as signals
    if "signal" in event:
        try:
            return f"killed by {signals.Signals(event['signal']).name}"
        except ValueError:
            return f"killed by signal {event['signal']}"
    return f"exit {event.get('exit', event.get('status', '?'))}"


def mark_label(e):
    """One line for an event, as a mark on its lane."""
    kind = e["event"]
    if kind == "accept":
        return f"accept from {e.get('peer')}"
    if kind == "fork":
        return f"fork → child {e.get('child')}"
    if kind in ("child_start", "session_start", "worker_start"):
        return kind.replace("_", " ")
    if kind == "session_end":
        error = f" ({e['error']})" if e.get("error") else ""
        return f"session end: {e.get('reason')}{error}, {e.get('bytes', 0)} B"
    if kind in ("child_exit", "thread_exit"):
        return exit_text(e)
    if kind == "fault":
        arg = f"={e['arg']}" if "arg" in e else ""
        return f"fault {e.get('action')}{arg}@{e.get('point')} (rule {e.get('rule')})"
    if kind == "signal":
        return f"{e.get('name')} received"
    if kind == "reaped":
        return f"reaped {e.get('child')} ({exit_text(e)})"
    if kind == "worker_exit":
        return f"worker {e.get('worker')} (pid {e.get('child')}) {exit_text(e)}"
    if kind in ("spawn", "respawn"):
        return f"{kind} worker {e.get('worker')} → pid {e.get('child')}"
    if kind == "thread_start":
        return f"thread {e.get('tid')} starts"
    if kind == "stop":
        n = e.get("connections")
        return f"stop ({n} connection{'' if n == 1 else 's'})"
    if kind == "refused":
        return f"refused ({e.get('live')} live)"
    if kind == "listen":
        return f"listen {e.get('addr')} model={e.get('model')} reap={e.get('reap')}"
    detail = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("ts", "pid", "event"))
    return f"{kind}: {detail}" if detail else kind


MARK_KINDS = {"child_exit": "exit", "thread_exit": "exit", "child_start": "start",
              "session_start": "start", "worker_start": "start", "thread_start": "start",
              "worker_exit": "reaped"}


def mark_of(e, lane, conn=None, prefix=""):
    return Mark(e["ts"], lane, MARK_KINDS.get(e["event"], e["event"]),
                prefix + mark_label(e), conn)


@dataclass
class Server:
    """What the server's event log says about its processes and connections."""
    events: list
    main: int = None                                # pid of the listening process
    conn_of_peer: dict = field(default_factory=dict)     # (ip, port) -> conn
    serving: dict = field(default_factory=dict)     # conn -> pid serving it
    model: str = ""
    port: int = None

    @classmethod
    def from_events(cls, events):
        s = cls(events)
        for e in events:
            kind = e["event"]
            if kind == "listen":
                s.main = s.main or e["pid"]
                s.model = e.get("model", "")
                addr = _address(str(e.get("addr", "")))
                s.port = addr[1] if addr else None
            elif kind == "accept":
                peer = _address(str(e.get("peer", "")))
                if peer:
                    s.conn_of_peer[peer] = e["conn"]
            elif kind == "fork":
                s.main = s.main or e["pid"]
                s.serving[e["conn"]] = e["child"]
        for e in events:
            # prefork: the worker that accepted serves the connection
            if e["event"] == "accept" and e["conn"] not in s.serving and \
                    s.main is not None and e["pid"] != s.main:
                s.serving[e["conn"]] = e["pid"]
        if s.main is None and events:
            s.main = events[0]["pid"]
        return s

    @property
    def title(self):
        name = "echod" if self.events else "server"
        return name if self.main is None else f"{name} {self.main}"

    def conn_of_pid(self, pid):
        return next((c for c, p in self.serving.items() if p == pid), None)

    def lane_of_pid(self, pid):
        return "server" if pid == self.main else f"pid:{pid}"

    def process_lane(self, pid, conn, snapshots):
        """The lane of a process serving connections: born at its fork,
        a zombie from its exit, ended by its reaping."""
        worker = self.model == "prefork"
        lane = Lane(f"pid:{pid}", f"{'worker' if worker else 'child'} {pid}"
                    + (f" (conn {conn})" if conn is not None and not worker else ""),
                    "process", pid=pid)
        for e in self.events:
            kind = e["event"]
            if kind in ("fork", "spawn", "respawn") and e.get("child") == pid:
                lane.born = e["ts"]
            elif kind == "child_exit" and e["pid"] == pid and lane.exited is None:
                lane.exited, lane.exit_label = e["ts"], exit_text(e)
            elif kind in ("reaped", "worker_exit") and e.get("child") == pid:
                if lane.exited is None:
                    # Killed, or exited without a word: the reaper is the
                    # first to know how, at its reaping.
                    lane.exited, lane.exit_label = e["ts"], f"{exit_text(e)} (seen at reap)"
                lane.reaped = lane.reaped or e["ts"]
        # A child may write its first event before its parent's fork event.
        first = next((e["ts"] for e in self.events if e["pid"] == pid), None)
        if first is not None and lane.born is not None:
            lane.born = min(lane.born, first)
        if lane.exited is None:
            zombie = next((s for s in snapshots if s.processes.get(pid) == "Z"), None)
            if zombie:
                lane.exited, lane.exit_label = zombie.time, "exited: a zombie in ps"
        return lane


# --- building the ladders -----------------------------------------------------

def _server_port(server, segments, port):
    if port is not None:
        return port
    if server.port is not None:
        return server.port
    syns = [s.dst[1] for s in segments if s.has("S") and not s.has("A")]
    if syns:
        return max(set(syns), key=syns.count)
    return None


def _state_marks(snapshots, conv, conn, lane_of_side, prefix=""):
    """A socket's state each time a snapshot saw it change."""
    marks = []
    for side, (local, peer) in (("client", (conv.client, conv.server)),
                                ("server", (conv.server, conv.client))):
        last = None
        for snap in snapshots:
            states = [st for st, lo, pe in snap.sockets if lo == local and pe == peer]
            state = states[0] if states else None
            if state and state != last:
                marks.append(Mark(snap.time, lane_of_side[side], "state",
                                  f"{prefix}{state}", conn))
            last = state if state else last
    return marks


def _exit_marks(items, lanes, server):
    """The exits of serving processes whose log had no word for them
    (killed): drawn from what the reaper or ps said."""
    said = {i.lane for i in items if isinstance(i, Mark) and i.kind == "exit"}
    return [Mark(lane.exited, lane.key, "exit", lane.exit_label, server.conn_of_pid(lane.pid))
            for lane in lanes if lane.key.startswith("pid:") and lane.exited is not None
            and lane.key not in said]


def _lanes(client_logs, server, conv=None):
    """The lanes every ladder has: the client process, its socket(s), the
    server's socket(s), the server's main process."""
    return [_client_lane(client_logs),
            Lane("client_socket", f"client {conv.client[0]}:{conv.client[1]}" if conv
                 else "client sockets", "socket"),
            Lane("server_socket", f"server {conv.server[0]}:{conv.server[1]}" if conv
                 else "server sockets", "socket"),
            Lane("server", server.title, "process", pid=server.main)]


def _client_lane(client_logs):
    pids = sorted({e["pid"] for log in client_logs for e in log.events})
    return Lane("client", "echoc " + ", ".join(map(str, pids)) if pids else "client",
                "process", pid=pids[0] if len(pids) == 1 else None)


def _client_marks(client_logs, client_conn, prefix=lambda e: ""):
    """echoc's events (faults fired) for one of its connections (its own
    numbering, in connect order), or for all when client_conn is None."""
    marks = []
    for log in client_logs:
        for e in log.events:
            if e["event"] == "fault_seed":
                continue
            if client_conn is None or e.get("conn") in (None, 0, client_conn):
                marks.append(mark_of(e, "client", None, prefix(e)))
    return marks


def _finish(title, lanes, items, end):
    # At one instant a process exits before its reaper reaps it.
    items = sorted(items, key=lambda i: (i.time, getattr(i, "kind", "") != "exit"))
    start = items[0].time if items else end
    cut = [i for i in items if isinstance(i, Arrow) and i.cut]
    notes = [f"payload cut: the capture kept only the first bytes of {len(cut)} "
             f"segment(s) (its snapshot length); previews show those"] if cut else []
    return Ladder(title, lanes, items, start, max([end] + [i.time for i in items]), notes)


def connection_ladder(conv, conn, client_index, server, snapshots, client_logs, run_end):
    """One connection: client process, client socket, server socket, server
    process and, when another process serves it (fork, prefork), that one.
    The main process's signals and reapings while the connection lasts are
    shown too, and to the end of the run if its serving process is never
    reaped: they are what the zombie waited for in vain."""
    server_pid = server.serving.get(conn) if conn is not None else None
    if server_pid == server.main:
        server_pid = None
    lanes = _lanes(client_logs, server, conv)
    serving = server.process_lane(server_pid, conn, snapshots) if server_pid else None
    if serving:
        lanes.append(serving)
    items, context = [], []
    if conv:
        items += arrows_of(conv, conn)
        items += _state_marks(snapshots, conv, conn,
                              {"client": "client_socket", "server": "server_socket"})
    items += _client_marks(client_logs, client_index)
    for e in server.events:
        if e["event"] in RUN_EVENTS:
            continue
        mine = (conn is not None and e.get("conn") == conn) or (
            server_pid is not None and (e["pid"] == server_pid or (
                e["event"] in ("reaped", "worker_exit") and e.get("child") == server_pid)))
        if mine:
            items.append(mark_of(e, server.lane_of_pid(e["pid"]), conn))
        elif e["pid"] == server.main and e["event"] in PROCESS_WIDE:
            context.append(mark_of(e, "server"))
    items += _exit_marks(items, lanes, server)
    times = [i.time for i in items] or [run_end]
    lives_on = serving is not None and serving.reaped is None
    until = run_end if lives_on else max(times)
    items += [m for m in context if min(times) <= m.time <= until]
    name = f"connection #{conn}" if conn is not None else "connection"
    peer = f" from {conv.client[0]}:{conv.client[1]}" if conv else ""
    return _finish(f"{name}{peer}", lanes, items, until)


OVERVIEW_ARROWS = {"syn", "data", "fin", "rst"}


def overview_ladder(convs, server, snapshots, client_logs, run_end):
    """Every connection on one ladder: one socket lane per side, a lane per
    serving process, the handshakes, data, FINs and RSTs labelled #conn."""
    lanes = _lanes(client_logs, server)
    items = []
    for conv, conn in convs:
        tag = f"#{conn} " if conn is not None else f":{conv.client[1]} "
        for a in arrows_of(conv, conn):
            if a.kind in OVERVIEW_ARROWS:
                items.append(Arrow(a.time, a.src, a.dst, a.sender, a.kind, tag + a.label,
                                   a.length, a.preview, a.cut, conn))
    for conn, pid in sorted(server.serving.items()):
        if pid != server.main and all(lane.key != f"pid:{pid}" for lane in lanes):
            lanes.append(server.process_lane(pid, conn, snapshots))
    for e in server.events:
        if e["event"] in RUN_EVENTS | ROUTINE:
            continue
        conn = e.get("conn")
        tag = f"#{conn} " if conn and server.lane_of_pid(e["pid"]) == "server" else ""
        items.append(mark_of(e, server.lane_of_pid(e["pid"]), conn, tag))
    items += _exit_marks(items, lanes, server)
    items += _client_marks(client_logs, None,
                           prefix=lambda e: f"#{e['conn']} " if e.get("conn") else "")
    known = {lane.key for lane in lanes}
    items = [i for i in items if not isinstance(i, Mark) or i.lane in known]
    return _finish(f"all {len(convs)} connections", lanes, items, run_end)


def build(pcaps=(), events=(), snapshots=None, server_port=None):
    """The Picture of a run from its pcap(s), its event logs (echod's, and
    echoc's if it wrote one) and, optionally, the scenario engine's
    snapshots.txt. Raises InputError for a file it cannot read."""
    segments = read_pcaps(pcaps)
    logs = [read_event_log(p) for p in events]
    snaps = read_snapshots(snapshots) if snapshots else []
    server_events = sorted((e for log in logs if log.role == "server" for e in log.events),
                           key=lambda e: e["ts"])
    client_logs = [log for log in logs if log.role == "client"]
    server = Server.from_events(server_events)
    port = _server_port(server, segments, server_port)
    convs = capture.conversations(segments, port) if port is not None else []
    convs.sort(key=lambda c: c.segments[0].time)

    notes = []
    if pcaps and not segments:
        notes.append("the pcap holds no TCP segment")
    if snapshots and not snaps:
        notes.append(f"{snapshots}: no snapshot with a time: socket states not shown")
    all_times = ([s.time for s in segments] + [e["ts"] for e in server_events]
                 + [e["ts"] for log in client_logs for e in log.events]
                 + [s.time for s in snaps])
    run_end = max(all_times) if all_times else 0.0

    # Conversations in the order of their SYNs; echoc numbers its
    # connections the same way (--conns opens them in order).
    paired = [(conv, server.conn_of_peer.get(conv.client)) for conv in convs]
    seen_conns = {conn for _, conn in paired if conn is not None}
    # Connections the log knows and the capture does not (no pcap given).
    for conn in sorted(set(server.conn_of_peer.values()) - seen_conns):
        paired.append((None, conn))
    ladders = []
    for index, (conv, conn) in enumerate(paired, 1):
        ladders.append(connection_ladder(conv, conn, index if conv else None, server,
                                         snaps, client_logs, run_end))
    with_packets = [(conv, conn) for conv, conn in paired if conv is not None]
    overview = (overview_ladder(with_packets, server, snaps, client_logs, run_end)
                if len(paired) > 1 else None)
    return Picture(ladders, overview, notes)


def from_artifacts(folder):
    """The Picture of an artifact folder: its *.pcap, its *.events.jsonl
    and its snapshots.txt, as the scenario engine and the tests leave them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    pcaps = sorted(folder.glob("*.pcap"))
    events = sorted(folder.glob("*.events.jsonl"))
    snapshots = folder / "snapshots.txt"
    if not pcaps and not events:
        raise InputError(f"{folder}: no *.pcap and no *.events.jsonl in it")
    return build(pcaps, events, snapshots if snapshots.is_file() else None)
