"""What a verdict shows: text and tables, bounded on a terminal, whole in
the artifacts.

A failed churn against a server that never reaps has 2,000 zombies and
2,000 TIME_WAIT sockets: printed whole, that is 4,000 lines nobody reads.
Evidence keeps every row, and prints at most SCREEN_ROWS of each table,
chosen so that every state (Z, S, TIME_WAIT, CLOSE_WAIT...) shows, then a
line that counts the rest by state:

    ... and 1981 more: 1981 Z (every row in evidence.txt)

Evidence is a str (its bounded text), so whoever expects a string (an
assert message, an f-string, .splitlines()) gets the terminal form;
full() is every row, which the runner writes to the check's artifacts.
"""

import itertools

SCREEN_ROWS = 20     # rows of one table (or lines of one text) on a terminal
SCREEN_LINES = 48    # all the sections of one verdict together, about a screenful
FEWEST_ROWS = 5      # what a table keeps when others compete for the screen
LINE_CHARS = 240     # a longer line (a server's binary output) is cut
FULL_NAME = "evidence.txt"


def cut(line, limit=LINE_CHARS):
    if len(line) <= limit:
        return line
    return f"{line[:limit]}... ({len(line) - limit} more characters)"


def plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


class Text:
    """Lines of text under an optional title; keep='tail' shows the last
    lines when there are too many (the end of a stderr says the most)."""

    def __init__(self, text, title=None, keep="head", where=FULL_NAME):
        self.title = title
        self.lines = str(text).splitlines()
        self.keep = keep
        self.where = where

    def __bool__(self):
        return bool(self.lines or self.title)

    def natural(self):
        return min(len(self.lines), SCREEN_ROWS)

    def render(self, rows=None):
        head = [f"{self.title}:"] if self.title else []
        if rows is None:
            return head + self.lines
        lines = [cut(line) for line in self.lines]
        if len(lines) <= rows:
            return head + lines
        hidden = len(lines) - rows
        if self.keep == "tail":
            return head + [f"  ... {plural(hidden, 'earlier line')} (all of it in "
                           f"{self.where})"] + lines[-rows:]
        return head + lines[:rows] + [f"  ... {plural(hidden, 'more line')} (all of "
                                      f"it in {self.where})"]

    def as_json(self):
        return {"title": self.title, "text": "\n".join(self.lines)}


class Table:
    """A titled table: a header line, rows (text), and for each row its
    state, what the rows are counted by when there are too many."""

    def __init__(self, title, header, rows, states=None):
        self.title = title
        self.header = header
        self.rows = list(rows)
        self.states = list(states) if states is not None else [""] * len(self.rows)

    @classmethod
    def from_text(cls, title, text, state_column):
        """A table as the harness prints it (a header line, then rows): the
        state of a row is the word under `state_column` in the header."""
        lines = [line for line in str(text).splitlines() if line.strip()]
        if not lines or state_column not in lines[0].split():
            return cls(title, None, lines)
        header, rows = lines[0], lines[1:]
        column = header.split().index(state_column)
        states = []
        for row in rows:
            words = row.split()
            states.append(words[column] if len(words) > column and
                          len(words) >= len(header.split()) else "")
        return cls(title, header, rows, states)

    @classmethod
    def by(cls, title, header, rows, state):
        """Rows with their state computed by state(row)."""
        rows = list(rows)
        return cls(title, header, rows, [state(r) for r in rows])

    def __bool__(self):
        return True

    def natural(self):
        return min(len(self.rows), SCREEN_ROWS)

    def chosen(self, rows):
        """Which rows (indexes) to show: every state gets its turn, each
        with its first rows, until `rows` are taken."""
        by_state = {}
        for i, state in enumerate(self.states):
            by_state.setdefault(state, []).append(i)
        taken = []
        for turn in itertools.zip_longest(*by_state.values()):
            for i in turn:
                if i is not None and len(taken) < rows:
                    taken.append(i)
        return sorted(taken)

    def render(self, rows=None):
        head = [f"{self.title}:"] + ([self.header] if self.header else [])
        if rows is None:
            return head + self.rows
        if len(self.rows) <= rows:
            return head + [cut(r) for r in self.rows]
        shown = self.chosen(rows)
        hidden = {}
        for i, state in enumerate(self.states):
            if i not in shown:
                hidden[state] = hidden.get(state, 0) + 1
        counts = ", ".join(f"{n} {state or '(other)'}" for state, n in
                           sorted(hidden.items(), key=lambda kv: -kv[1]))
        return head + [cut(self.rows[i]) for i in shown] + [
            f"  ... and {len(self.rows) - len(shown)} more: {counts} "
            f"(every row in {FULL_NAME})"]

    def as_json(self):
        return {"title": self.title, "header": self.header, "rows": self.rows,
                "states": self.states}


def sections_of(items):
    """Text, Table, Evidence (its sections), str or None, flattened."""
    for item in items:
        if item is None:
            continue
        if isinstance(item, Evidence):
            yield from item.sections
        elif isinstance(item, (Text, Table)):
            if item:
                yield item
        elif isinstance(item, (list, tuple)):
            yield from sections_of(item)
        elif str(item).strip():
            yield Text(str(item))


def allot(sections, budget=SCREEN_LINES):
    """Rows for each section on the terminal: each its natural share (at
    most SCREEN_ROWS), the largest shrunk first (never under FEWEST_ROWS)
    while the whole is over the budget."""
    rows = [s.natural() for s in sections]

    def total():
        return sum(r + 2 for r in rows)  # title (and header) lines
    while total() > budget:
        largest = max(range(len(rows)), key=lambda i: rows[i], default=None)
        if largest is None or rows[largest] <= FEWEST_ROWS:
            break
        rows[largest] -= 1
    return rows


class Evidence(str):
    """Sections of text and tables; as a str, their bounded rendering."""

    def __new__(cls, *items):
        sections = list(sections_of(items))
        rows = allot(sections)
        text = "\n".join(line for section, n in zip(sections, rows)
                         for line in section.render(n))
        self = super().__new__(cls, text)
        self.sections = sections
        return self

    def full(self):
        """Every line of every section: what evidence.txt holds."""
        return "\n".join(line for s in self.sections for line in s.render(None))

    def as_json(self):
        return [s.as_json() for s in self.sections]
