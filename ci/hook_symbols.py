#!/usr/bin/python3
"""The fault hooks' symbols, read from the headers that declare them, looked
for in programs and libraries with nm.

    ci/hook_symbols.py absent FILE...    exit 1 if any hook symbol is in a FILE
    ci/hook_symbols.py present FILE...   exit 1 if one is in none of them
    ci/hook_symbols.py list              print the list

The list is every function and variable declared in lib/fault.h (the
engine) and lib/sockfault.h (the socket actions), and every function
declared between `#if FL_FAULT_HOOKS` and its `#else`/`#endif` in
server/echod.h and client/echoc.h (the programs' hook glue). A build with
-Dfault_hooks=disabled must contain none of them, defined or referenced
(meson test "no hook symbols"); a build with hooks must contain each of
them somewhere (its programs or libfl), which keeps the list honest:
a name that matches nothing cannot make "absent" pass vacuously.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHOLE_HEADERS = ["lib/fault.h", "lib/sockfault.h"]
HOOK_SECTIONS = ["server/echod.h", "client/echoc.h"]
IDENT = r"[A-Za-z_]\w*"


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def hook_sections(text):
    """The text between each `#if FL_FAULT_HOOKS` and its #else or #endif
    (no nested conditionals inside: the headers have none there)."""
    return re.findall(r"^#if FL_FAULT_HOOKS\b(.*?)^#(?:else|endif)\b", text,
                      flags=re.S | re.M)


def declared(text):
    """Names of the functions and extern variables declared (not defined)
    in C text: preprocessor lines and brace bodies are dropped first."""
    text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", strip_comments(text),
                  flags=re.M)
    while True:
        stripped = re.sub(r"\{[^{}]*\}", " ", text)
        if stripped == text:
            break
        text = stripped
    names = set()
    for statement in text.split(";"):
        statement = " ".join(statement.split())
        if not statement or statement.startswith(("typedef", "static")):
            continue
        function = re.match(rf"^[^(]*?\b({IDENT})\s*\(", statement)
        if function:
            names.add(function.group(1))
        elif statement.startswith("extern "):
            names.add(re.findall(IDENT, statement)[-1])
    return names


def hook_symbols():
    names = set()
    for header in WHOLE_HEADERS:
        names |= declared((REPO / header).read_text())
    for header in HOOK_SECTIONS:
        for section in hook_sections((REPO / header).read_text()):
            names |= declared(section)
    if not names:
        raise SystemExit("hook_symbols: no declaration found in "
                         f"{', '.join(WHOLE_HEADERS + HOOK_SECTIONS)}")
    return names


def symbols_in(path):
    """{name: nm type letter} of every symbol nm lists in path, defined or
    not; a compiler's clone suffix (name.constprop.0) is taken off."""
    r = subprocess.run(["nm", "-A", str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"hook_symbols: nm {path}: {r.stderr.strip()}")
    found = {}
    for line in r.stdout.splitlines():
        fields = line.rsplit(None, 2)
        if len(fields) < 2:
            continue
        found[fields[-1].split(".")[0]] = fields[-2]
    return found


def main(argv):
    if len(argv) == 2 and argv[1] == "list":
        print("\n".join(sorted(hook_symbols())))
        return 0
    if len(argv) < 3 or argv[1] not in ("absent", "present"):
        print("usage: ci/hook_symbols.py absent|present FILE... | list",
              file=sys.stderr)
        return 2
    mode, files = argv[1], argv[2:]
    names = hook_symbols()
    seen = {f: symbols_in(f) for f in files}
    if mode == "absent":
        left = sorted(f"{Path(f).name}: {name} ({kind})"
                      for f, syms in seen.items()
                      for name, kind in syms.items() if name in names)
        if left:
            print(f"hook_symbols: {len(left)} hook symbol(s) in a build without "
                  "fault hooks:\n  " + "\n  ".join(left), file=sys.stderr)
            return 1
        print(f"hook_symbols: none of the {len(names)} hook symbols in "
              f"{', '.join(Path(f).name for f in files)}")
        return 0
    missing = sorted(n for n in names if not any(n in s for s in seen.values()))
    if missing:
        print(f"hook_symbols: listed but in none of {', '.join(files)}: "
              f"{', '.join(missing)} (a header declares a hook that no longer "
              "exists, or the parse is wrong)", file=sys.stderr)
        return 1
    print(f"hook_symbols: all {len(names)} hook symbols found")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
