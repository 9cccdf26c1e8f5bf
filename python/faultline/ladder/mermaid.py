"""The ladder as a Mermaid sequenceDiagram, for Markdown (a GitHub job
summary renders it): one participant per lane, one message per arrow
(`-x` for a RST), a note for each mark, a pause or an elision as a note
across every lane. A zombie is a note where its process exits, and one at
the bottom when it is never reaped.
"""

from .model import Arrow, Elided, Gap, Ladder
from .text import letter

ROWS = 200

# Characters Mermaid reads as syntax in a message: written as its entity codes.
ENTITIES = {"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;", "%": "#37;"}


def words(text):
    return "".join(ENTITIES.get(c, c) for c in text.replace("\n", " "))


def diagram(ladder, rows=ROWS):
    """One Ladder as a sequenceDiagram (the first line says so)."""
    name = {lane.key: letter(i) for i, lane in enumerate(ladder.lanes)}
    first, last = name[ladder.lanes[0].key], name[ladder.lanes[-1].key]
    out = ["sequenceDiagram"]
    for lane in ladder.lanes:
        out.append(f"    participant {name[lane.key]} as {words(lane.title)}")
    for row in ladder.rows(limit=rows):
        if isinstance(row, (Gap, Elided)):
            out.append(f"    Note over {first},{last}: {words(row.text)}")
        elif isinstance(row, Arrow):
            line = "-x" if row.kind == "rst" else "->>"
            out.append(f"    {name[row.src]}{line}{name[row.dst]}: {words(row.text)}")
        else:
            lane = ladder.lane(row.lane)
            said = row.text
            if row.kind == "exit" and lane.exited == row.time != lane.reaped:
                said += ", a zombie until reaped"
            out.append(f"    Note over {name[row.lane]}: {words(said)}")
    for lane in ladder.zombie_lanes():
        out.append(f"    Note over {name[lane.key]}: a zombie to the end, never reaped")
    for note in ladder.notes:
        out.append(f"    Note over {first},{last}: {words(note)}")
    return "\n".join(out) + "\n"


def markdown(picture, rows=ROWS):
    """Every ladder of a Picture (or one Ladder) as Markdown: a heading and
    a mermaid block each."""
    ladders = [picture] if isinstance(picture, Ladder) else picture.ladders
    parts = [f"#### {ladder.title}\n\n```mermaid\n{diagram(ladder, rows)}```\n"
             for ladder in ladders]
    if not isinstance(picture, Ladder):
        parts += [f"{note}\n" for note in picture.notes]
    return "\n".join(parts) if parts else "no connection to draw\n"
