"""The ladder as text, for a terminal or a CI log: bounded in width (every
line at most `width` characters) and in length (`rows` rows a ladder, the
middle ones elided; `ladders` ladders a picture).

       ms  A   B   C   D   E
      0.0      |-->|           B→C SYN
      0.1      |<--|           C→B SYN-ACK
     18.3      |   |   *   |   D: SIGCHLD received
                               … 0.40 s …

A lane is `|` while its process lives, `:` while it is a zombie (exited,
not reaped), blank before its fork and after its reaping.
"""

from .model import Arrow, Elided, Gap, Ladder

WIDTH = 100
ROWS = 40
LADDERS = 8
TIME_COLUMN = 9
LEAST_DESCRIPTION = 30


def clip(line, width):
    line = line.rstrip()
    return line if len(line) <= width else line[:width - 1] + "…"


def letter(i):
    return chr(ord("A") + i) if i < 26 else f"{i}"


def ladder_text(ladder, width=WIDTH, rows=ROWS):
    """One ladder, as lines no longer than width."""
    most = max(1, (width - TIME_COLUMN - LEAST_DESCRIPTION) // 4)
    ladder = ladder.drawn_lanes(most)
    lanes = ladder.lanes
    spacing = max(4, min(8, (width - TIME_COLUMN - LEAST_DESCRIPTION) // len(lanes)))
    column = {lane.key: TIME_COLUMN + 2 + i * spacing for i, lane in enumerate(lanes)}
    name = {lane.key: letter(i) for i, lane in enumerate(lanes)}
    description_at = TIME_COLUMN + 2 + len(lanes) * spacing

    def lane_chars(t):
        cells = [" "] * description_at
        for lane in lanes:
            if lane.kind == "socket" or lane.alive_at(t):
                cells[column[lane.key]] = ":" if lane.zombie_at(t) else "|"
        return cells

    def row(cells, t, said):
        stamp = f"{(t - ladder.start) * 1000:{TIME_COLUMN}.1f}" if t is not None else ""
        cells[:len(stamp)] = stamp
        return clip("".join(cells) + " " + said, width)

    span = ladder.end - ladder.start
    out = [clip(f"{ladder.title} ({span:.2f} s, {len(ladder.items)} events)", width)]
    legend, line = [], "lanes:"
    for lane in lanes:
        entry = f" {name[lane.key]} {lane.title}"
        if len(line) + len(entry) + 1 > width and line != "lanes:":
            legend.append(line)
            line = "      "
        line += entry + ("," if lane is not lanes[-1] else "")
    legend.append(line)
    out += [clip(line, width) for line in legend]
    header = [" "] * description_at
    header[TIME_COLUMN - 2:TIME_COLUMN] = "ms"
    for lane in lanes:
        header[column[lane.key]] = name[lane.key]
    out.append(clip("".join(header), width))

    last = ladder.start
    for item in ladder.rows(limit=rows):
        if isinstance(item, (Gap, Elided)):
            out.append(row(lane_chars(last), None, item.text))
            continue
        last = item.time
        cells = lane_chars(item.time)
        if isinstance(item, Arrow):
            a, b = column[item.src], column[item.dst]
            low, high = min(a, b), max(a, b)
            cells[low + 1:high] = "-" * (high - low - 1)
            head = "x" if item.kind == "rst" else (">" if b > a else "<")
            cells[b - 1 if b > a else b + 1] = head
            said = f"{name[item.src]}→{name[item.dst]} {item.text}"
        else:
            cells[column[item.lane]] = "*"
            said = f"{name[item.lane]}: {item.text}"
        out.append(row(cells, item.time, said))

    for lane in ladder.zombie_lanes():
        since = (lane.exited - ladder.start) * 1000
        out.append(clip(f"{name[lane.key]} {lane.title}: a zombie from {since:.1f} ms "
                        f"to the end ({lane.exit_label}, never reaped)", width))
    out += [clip(f"note: {note}", width) for note in ladder.notes]
    return "\n".join(out)


def render(picture, width=WIDTH, rows=ROWS, ladders=LADDERS):
    """A Picture (the overview first, then each connection) or one Ladder."""
    if isinstance(picture, Ladder):
        return ladder_text(picture, width, rows)
    every = picture.ladders
    parts = [ladder_text(ladder, width, rows) for ladder in every[:ladders]]
    if len(every) > ladders:
        parts.append(f"… {len(every) - ladders} more ladders (--svg draws every one)")
    parts += [f"note: {note}" for note in picture.notes]
    if not every:
        parts.append("no connection to draw (no TCP segment on the server's port, "
                     "no accept in the event log)")
    return "\n\n".join(parts)
