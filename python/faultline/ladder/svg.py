"""The ladder as a standalone SVG: no script, no external font or image, so
it opens the same in a browser, in a GitHub artifact viewer and inline in
report.html.

Rows are evenly spaced (time is compressed; a pause longer than
GAP_SECONDS is one labelled break) and the time of each row, in ms from
the first, is in the left column. Process lanes are solid while the
process lives and dashed while it is a zombie; a zombie never reaped runs
to the bottom and says so. Each lane is a <g class="lane">, each arrow a
<g class="arrow">, each mark a <g class="mark">: what a test, or a
reader of the source, counts.
"""

from xml.sax.saxutils import escape, quoteattr

from .model import Arrow, Elided, Gap, Ladder

LANE_SPACING = 170
ROW = 24
TIME_COLUMN = 80
HEADER = 74
LABEL_ROOM = 290
LABEL_CHARS = 52
MAX_LANES = 16
MAX_ROWS = 400

COLOURS = {"syn": "#3465a4", "synack": "#3465a4", "ack": "#729fcf", "data": "#2e3436",
           "fin": "#ce5c00", "rst": "#cc0000"}
# Every selector under .fl-ladder: inline in an HTML report, an SVG's style
# sheet applies to the whole page.
STYLE = """
.fl-ladder text { font-family: DejaVu Sans, Verdana, sans-serif; font-size: 12px;
                  fill: #2e3436; }
.fl-ladder .title { font-size: 15px; font-weight: bold; }
.fl-ladder .lanetitle { font-weight: bold; }
.fl-ladder .time, .fl-ladder .gap text, .fl-ladder .note { font-size: 11px; fill: #555753; }
.fl-ladder .mark text, .fl-ladder .arrow text { paint-order: stroke; stroke: #ffffff;
                                                stroke-width: 4px; }
.fl-ladder .preview { font-family: DejaVu Sans Mono, monospace; }
"""


def clip(text, limit=LABEL_CHARS):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def attr(**kw):
    return " ".join(f"{k.replace('_', '-')}={quoteattr(str(v))}" for k, v in kw.items())


def ladder_group(ladder, top, max_rows=MAX_ROWS):
    """(SVG elements of one ladder drawn from y = top, its height)."""
    ladder = ladder.drawn_lanes(MAX_LANES)
    lanes = ladder.lanes
    x_of = {lane.key: TIME_COLUMN + LANE_SPACING // 2 + i * LANE_SPACING
            for i, lane in enumerate(lanes)}
    rows = ladder.rows(limit=max_rows)
    first_row = top + HEADER
    bottom = first_row + len(rows) * ROW
    width = TIME_COLUMN + len(lanes) * LANE_SPACING + LABEL_ROOM

    y_at = []   # (time, y) of each item row
    for i, row in enumerate(rows):
        if not isinstance(row, (Gap, Elided)):
            y_at.append((row.time, first_row + i * ROW + ROW // 2))

    def y_of(t, default):
        return next((y for when, y in y_at if when >= t), default)

    out = [f'<g class="ladder" {attr(data_title=ladder.title)}>',
           f'<text class="title" x="10" y="{top + 20}">{escape(ladder.title)}</text>',
           f'<text class="time" x="10" y="{top + HEADER - 8}">ms</text>']
    for lane in lanes:
        x = x_of[lane.key]
        out.append(f'<g class="lane" {attr(data_lane=lane.key, data_kind=lane.kind)}>')
        box = LANE_SPACING - 16
        fill = "#eef3fa" if lane.kind == "socket" else "#f5f5ef"
        out.append(f'<rect x="{x - box // 2}" y="{top + 30}" width="{box}" height="26" '
                   f'rx="4" fill="{fill}" stroke="#888a85"/>')
        out.append(f'<text class="lanetitle" x="{x}" y="{top + 47}" text-anchor="middle">'
                   f'{escape(clip(lane.title, 22))}</text>')
        start = first_row if lane.born is None else y_of(lane.born, first_row)
        exited = bottom if lane.exited is None else y_of(lane.exited, bottom)
        ended = bottom if lane.reaped is None else y_of(lane.reaped, bottom)
        colour = "#3465a4" if lane.kind == "socket" else "#2e3436"
        out.append(f'<line x1="{x}" y1="{start}" x2="{x}" y2="{exited}" stroke="{colour}" '
                   f'stroke-width="2"/>')
        if lane.exited is not None:
            out.append(f'<line class="zombie" x1="{x}" y1="{exited}" x2="{x}" y2="{ended}" '
                       f'stroke="#75507b" stroke-width="2" stroke-dasharray="5 4"/>')
            if lane.reaped is None:
                out.append(f'<text class="note" x="{x}" y="{bottom + 14}" '
                           f'text-anchor="middle">zombie, never reaped</text>')
        out.append("</g>")

    for i, row in enumerate(rows):
        y = first_row + i * ROW + ROW // 2
        if isinstance(row, (Gap, Elided)):
            out.append(f'<g class="gap"><line x1="10" y1="{y}" x2="{width - 10}" y2="{y}" '
                       f'stroke="#babdb6" stroke-dasharray="2 6"/>'
                       f'<text x="10" y="{y + 4}">{escape(row.text)}</text></g>')
            continue
        out.append(f'<text class="time" x="{TIME_COLUMN - 8}" y="{y + 4}" '
                   f'text-anchor="end">{(row.time - ladder.start) * 1000:.1f}</text>')
        if isinstance(row, Arrow):
            out.append(arrow_element(row, x_of[row.src], x_of[row.dst], y))
        else:
            x = x_of[row.lane]
            # A socket state seen by a snapshot is a square, an event a dot.
            dot = (f'<rect x="{x - 4}" y="{y - 4}" width="8" height="8" fill="#3465a4"/>'
                   if row.kind == "state" else
                   f'<circle cx="{x}" cy="{y}" r="4" fill="#2e3436"/>')
            out.append(f'<g class="mark" {attr(data_kind=row.kind, data_lane=row.lane)}>'
                       f'{dot}<text x="{x + 9}" y="{y + 4}">{escape(clip(row.text))}</text>'
                       f'</g>')
    height = bottom - top + 24
    for note in ladder.notes:
        out.append(f'<text class="note" x="10" y="{top + height}">'
                   f'{escape(clip(note, 140))}</text>')
        height += 16
    out.append("</g>")
    return out, height + 12, width


def arrow_element(arrow, x1, x2, y):
    colour = COLOURS.get(arrow.kind, "#2e3436")
    direction = 1 if x2 > x1 else -1
    tip = x2 - direction * 3
    if arrow.kind == "rst":
        head = (f'<path d="M{tip - 5} {y - 5} L{tip + 5} {y + 5} M{tip - 5} {y + 5} '
                f'L{tip + 5} {y - 5}" stroke="{colour}" stroke-width="2"/>')
    else:
        back = tip - direction * 9
        head = (f'<polygon points="{tip},{y} {back},{y - 4} {back},{y + 4}" '
                f'fill="{colour}"/>')
    label = escape(clip(arrow.label, 34))
    if arrow.preview:
        label += f' <tspan class="preview">{escape(clip(arrow.preview, 20))}</tspan>'
    return (f'<g class="arrow" {attr(data_kind=arrow.kind, data_sender=arrow.sender)}>'
            f'<line x1="{x1}" y1="{y}" x2="{tip}" y2="{y}" stroke="{colour}" '
            f'stroke-width="{2 if arrow.kind in ("data", "fin", "rst") else 1.5}"/>{head}'
            f'<text x="{(x1 + x2) // 2}" y="{y - 4}" text-anchor="middle">{label}</text>'
            f'</g>')


def document(picture, max_rows=MAX_ROWS):
    """A standalone SVG document: one Ladder, or a Picture's ladders (the
    overview first) one under the other."""
    ladders = [picture] if isinstance(picture, Ladder) else picture.ladders
    body, top, width = [], 0, 400
    for ladder in ladders:
        elements, height, ladder_width = ladder_group(ladder, top, max_rows)
        body += elements
        top += height
        width = max(width, ladder_width)
    notes = [] if isinstance(picture, Ladder) else picture.notes
    if not ladders:
        notes = notes + ["no connection to draw"]
    for note in notes:
        top += 18
        body.append(f'<text class="note" x="10" y="{top}">{escape(note)}</text>')
    height = top + 10
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="fl-ladder" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<style>{STYLE}</style>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        *body, "</svg>", ""])
