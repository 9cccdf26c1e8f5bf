"""Every command that README.md and docs/*.md show in a code block runs
here as written, and does what the docs say.

What counts as a command, in each file's code blocks:
  - in a block fenced as sh (or shell, bash, console): every line but
    `# comments`; when some lines start with `$ `, only those (a transcript);
  - in an indented block, or one fenced with no language: a line `$ CMD`,
    whose output is the lines after it, up to the next `$` (docs/FAULTS.md),
    and any line that starts, flush left, like a command (see
    looks_like_a_command);
  - a block fenced with another language (text, toml, c, ...) holds none.

COMMANDS below says how each one is run and what it must do. A command
the docs show and COMMANDS does not know fails (test_command_shown_in_the_docs),
and so does an entry the docs no longer show. The suite runs as root in CI:
commands the docs say need root run as root, and skip without it.

Environment, not the commands, is adjusted: they run in the checkout with
bash, the built echod and echoc first on PATH (the docs call them by name),
FAULTLINE_ARTIFACTS in a temporary folder, and no PYTEST_* variables.
"""

import os
import re
import signal
import subprocess
from dataclasses import dataclass

import pytest

from faultline import paths
from faultline.host import Host

pytestmark = pytest.mark.cli

DOCS = [paths.REPO / "README.md", *sorted((paths.REPO / "docs").glob("*.md"))]


@dataclass
class Run:
    """Run to completion; exit status and a piece of its output checked
    (a transcript's shown output is checked whole)."""
    status: int = 0
    says: str = ""
    root: bool = False
    timeout: float = 60


@dataclass
class Serves:
    """A server: started on a fresh host, it must print `says`, then exit 0
    after SIGTERM."""
    says: str = "listening"


@dataclass
class Client:
    """Run on a fresh host where echod listens on port 9877."""
    says: str
    status: int = 0


@dataclass
class Selects:
    """A pytest selection: run with --collect-only -q appended (running
    it would repeat the suite); it must select at least one test."""


@dataclass
class NotHere:
    """Not run by the suite: why, the file that does run it, and the text
    in that file that shows it does."""
    reason: str
    where: str
    proof: str


SOCAT = "socat TCP-LISTEN:9877,fork,reuseaddr EXEC:cat"
COMMANDS = {
    # README: Two commands
    "./faultline demo": Run(root=True),
    "./faultline test": NotHere("the suite itself", ".ci/run", "\n./faultline test\n"),
    # README: Running one test; docs/SCENARIOS.md
    "pytest -k zombie": Selects(),
    "pytest -m fd_leak": Selects(),
    "pytest 'pytest/test_scenarios.py::test_scenario[unp-5.10-lost-sigchld]'":
        Run(says="1 passed", root=True),
    "pytest -k zombie --keep-artifacts": Selects(),
    "pytest --markers": Run(says="@pytest.mark.zombie"),
    "pytest --lf": Selects(),
    "pytest -m scenario": Selects(),
    # README: Does the suite notice? Mutants
    "./faultline mutants --list": Run(says="epoll-never-rearms-epollout"),
    "./faultline mutants --ci":
        NotHere("a scratch build and the marked mutants, about 2 minutes", ".ci/run",
                "./faultline mutants --ci"),
    "./faultline mutants":
        NotHere("the whole list rebuilds and tests each mutant, about 7 minutes; "
                "CI runs the marked subset", ".ci/run", "./faultline mutants --ci"),
    # README: The pieces
    "build/server/echod --help": Run(says="usage: echod"),
    "build/client/echoc --help": Run(says="usage: echoc"),
    # README: Faults
    "build/server/echod --fault 'kill@after_read,conn=2'": Serves(),
    "build/server/echod --fault 'delay=200ms@before_read'": Serves(),
    "build/server/echod --fault 'rst@before_close'": Serves(),
    "echo hello | ECHOC_FAULTS='short=1@before_write,prob=0.3,seed=7' "
    "build/client/echoc 127.0.0.1": Client(says="hello\n"),
    # README: Against your own server
    "./faultline check --list": Run(says="zombies"),
    f"./faultline check --server-cmd '{SOCAT}'":
        NotHere("34 s, most of it the churn check against socat's listen backlog of 5",
                ".ci/run", f"./faultline check --server-cmd '{SOCAT}'"),
    "./faultline check --server-cmd 'build/server/echod --reap none --port 7000' "
    "--port 7000 --check zombies": Run(status=1, says="FAIL  zombies", root=True),
    "./faultline check --server-cmd 'busybox httpd -f -p 8080 -h fixtures' --port 8080 "
    "--request 'GET / HTTP/1.0\\r\\n\\r\\n' --reply 'HTTP/1.' --check zombies "
    "--check close-wait": Run(says="pass  close-wait", root=True),
    f"pytest pytest/test_byo.py --server-cmd '{SOCAT}' --server-port 9877": Selects(),
    # README: Installing
    "meson setup /tmp/faultline-build --prefix /usr/local":
        NotHere("configures an install into this system", "pytest/test_install.py",
                '"meson", "setup", str(build), "--prefix", str(prefix)'),
    "sudo meson install -C /tmp/faultline-build":
        NotHere("would install into this system; the test installs into a fresh prefix",
                "pytest/test_install.py", '"meson", "install", "-C", str(build)'),
    "cd my-project && sudo faultline check --server-cmd './my-server -p 7000' --port 7000":
        NotHere("needs an installed faultline and the user's server; the test makes both",
                "pytest/test_install.py", '"check", "--server-cmd", server'),
    "dpkg-buildpackage -us -uc -b":
        NotHere("builds the .deb, over a minute", ".ci/run",
                "timeout 900 dpkg-buildpackage -us -uc -b"),
    "sudo apt install ../faultline_*.deb":
        NotHere("would install into this system: CI (CI=true) installs it with apt, "
                "runs it from /usr and purges it", ".ci/run",
                'apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends'),
    # README: Scenario files; docs/SCENARIOS.md
    "./faultline list": Run(says="unp-5.12-premature-block"),
    "./faultline run unp-5.12-premature-block": Run(root=True),
    # README: Pictures
    "./faultline ladder fixtures/ladder/unp-5.12-premature-block": Run(says="C→B RST"),
    "./faultline ladder fixtures/ladder/unp-5.10-lost-sigchld --svg /tmp/unp-5.10.svg":
        Run(says="svg: /tmp/unp-5.10.svg"),
    "./faultline ladder fixtures/ladder/unp-5.10-lost-sigchld --mermaid":
        Run(says="sequenceDiagram"),
    # README: Benchmarks
    "/usr/bin/python3 bench/host_cost.py":
        NotHere("a benchmark: 50 rounds by default; figures are quoted, never asserted",
                ".ci/run", "/usr/bin/python3 bench/host_cost.py 1"),
    "./faultline bench":
        NotHere("a benchmark: minutes at its default 5 rounds; figures are quoted, "
                "never asserted", "pytest/test_bench.py", 'faultline("bench", "--quick"'),
    "meson test -C build --benchmark":
        NotHere("runs ./faultline bench, minutes", "bench/meson.build",
                "benchmark('faultline-bench'"),
    "/usr/bin/python3 bench/inspect_cost.py":
        NotHere("a benchmark: 2,000 processes on a host and 2,000 beside it, 100 s",
                ".ci/run", "/usr/bin/python3 bench/inspect_cost.py 1 --scale 100"),
    "/usr/bin/python3 bench/hook_cost.py":
        NotHere("a benchmark: 20 runs under valgrind, about a minute",
                ".ci/run", "/usr/bin/python3 bench/hook_cost.py --nohooks build-nohooks"),
    # docs/STORM.md
    "./faultline storm --seed 20261207 --connections 1000 "
    "--models fork,thread,prefork,poll,epoll --duration 30":
        NotHere("five models for 30 s each, about 3 minutes; the test runs the same "
                "command on one model for 50 connections", "pytest/test_storm.py",
                'faultline("storm", "--seed", "4", "--connections", "50"'),
    # docs/FAULTS.md: the transcripts (their output is checked whole)
    "echoc --fault 'kil@connect' 127.0.0.1": Run(status=2),
    "ECHOC_FAULTS='rst@accept' echoc 127.0.0.1": Run(status=2),
    "echoc --fault kill@connect 127.0.0.1":
        NotHere("needs a build with -Dfault_hooks=disabled", ".ci/run",
                "nohooks_refuses client/echoc --fault kill@connect 127.0.0.1"),
    "ECHOC_FAULTS=kill@connect echoc 127.0.0.1":
        NotHere("needs a build with -Dfault_hooks=disabled", ".ci/run",
                "nohooks_refuses client/echoc ECHOC_FAULTS kill@connect 127.0.0.1"),
}

SHELL_BLOCKS = {"sh", "shell", "bash", "console"}
COMMAND_WORDS = {"faultline", "pytest", "sudo", "python3", "meson", "ninja", "echod",
                 "echoc", "socat", "tshark", "tcpdump", "ip", "nft", "ss", "strace",
                 "bash", "sh", "env", "cd", "git", "apt-get", "make", "printf", "echo"}


def looks_like_a_command(line):
    words = line.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words = words[1:]  # VAR=value before the program
    if not words:
        return False
    first = words[0]
    return (first in COMMAND_WORDS or first.startswith(("./", "/usr/", "/bin/", "build/",
                                                        "bench/", "ci/", ".ci/")))


def without_comment(line):
    """The line up to a shell comment: a # at its start or after a blank,
    outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def code_blocks(text):
    """(line number, language, lines) of each code block: fenced, or
    indented by four spaces after a blank line."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"(```+|~~~+)\s*([\w-]*)", lines[i])
        if fence:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith(fence.group(1)):
                body.append(lines[i])
                i += 1
            yield start + 1, fence.group(2), body
            i += 1
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            start, body = i, []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            yield start + 1, "", body
        else:
            i += 1


def commands_in(language, body):
    """(offset in the block, command, output shown for it or None)."""
    if language and language not in SHELL_BLOCKS:
        return
    if any(line.startswith("$ ") for line in body):
        prompts = [i for i, line in enumerate(body) if line.startswith("$ ")]
        for i, end in zip(prompts, prompts[1:] + [len(body)]):
            shown = [line for line in body[i + 1:end] if line.strip()]
            yield i, without_comment(body[i][2:]), shown
        return
    for i, line in enumerate(body):
        command = without_comment(line).strip()
        # Outside a shell block only a line flush with the block's left edge
        # can be a command: an indented one is a table cell or a path.
        if command and (language or (line[:1].strip() and looks_like_a_command(command))):
            yield i, command, None


def shown_commands():
    """{command: (where shown, output shown or None)}, first showing wins."""
    found = {}
    for doc in DOCS:
        for start, language, body in code_blocks(doc.read_text()):
            for offset, command, output in commands_in(language, body):
                where = f"{doc.relative_to(paths.REPO)}:{start + offset}"
                found.setdefault(command, (where, output))
    return found


SHOWN = shown_commands()


def short_id(command):
    return re.sub(r"[^\w.=@/-]+", "_", command)[:70]


def clean_env(artifacts):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = (f"{paths.BUILD_DIR / 'server'}:{paths.BUILD_DIR / 'client'}:"
                   f"{env.get('PATH', '/usr/bin:/bin')}")
    env["FAULTLINE_ARTIFACTS"] = str(artifacts)
    return env


def seen(argv, status, stdout, stderr, limit=3000):
    return (f"\n$ {argv}\nexit {status}\n--- stdout\n{stdout[-limit:]}\n"
            f"--- stderr\n{stderr[-limit:]}")


def run(command, env, timeout):
    proc = subprocess.run(["bash", "-c", command], cwd=paths.REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def on_host(host, command, env):
    return host.spawn(["bash", "-c", f"cd {paths.REPO} && exec {command}"],
                      name="doc-command", env=env)


@pytest.mark.parametrize("command", sorted(SHOWN), ids=short_id)
def test_command_shown_in_the_docs(command, request, tmp_path):
    where, shown = SHOWN[command]
    how = COMMANDS.get(command)
    assert how is not None, (
        f"{where} shows `{command}`, which pytest/test_docs.py does not know: add it "
        f"to COMMANDS with how to run it (or, if it cannot run in the suite, why not "
        f"and where it does run)")
    env = clean_env(tmp_path / "artifacts")
    if isinstance(how, NotHere):
        text = (paths.REPO / how.where).read_text()
        assert how.proof in text, (f"`{command}` ({where}) is said to run in {how.where}, "
                                   f"which does not contain {how.proof!r}")
        pytest.skip(f"{how.reason}; {how.where} runs it")
    if isinstance(how, Selects):
        status, out, err = run(f"{command} --collect-only -q", env, 60)
        selected = [line for line in out.splitlines() if "::" in line]
        assert status == 0 and selected, (f"{where}: selects no test"
                                          f"{seen(command, status, out, err)}")
        return
    if isinstance(how, Run):
        if how.root:
            request.getfixturevalue("hosts_possible")
        status, out, err = run(command, env, how.timeout)
        said = seen(command, status, out, err)
        assert status == how.status, f"{where}: exit {status}, not {how.status}{said}"
        if shown is not None:
            assert (out + err).splitlines() == shown, f"{where} shows {shown}{said}"
        assert how.says in out, f"{where}: no {how.says!r} in its output{said}"
        return
    request.getfixturevalue("hosts_possible")
    with Host("docs", tmp_path / "host") as host:
        if isinstance(how, Serves):
            proc = on_host(host, command, env)
            proc.wait_for_output(how.says)
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(10)
            assert status == 0, f"{where}: exit {status} after SIGTERM" + seen(
                command, status, proc.stdout(), proc.stderr())
            return
        echod = host.spawn([paths.binary("echod")], name="echod")
        echod.wait_for_output("listening")
        proc = on_host(host, command, env)
        status = proc.wait(20)
        said = seen(command, status, proc.stdout(), proc.stderr())
        assert status == how.status and proc.stdout() == how.says, f"{where}:{said}"


def test_every_known_command_is_still_shown():
    gone = sorted(set(COMMANDS) - set(SHOWN))
    assert not gone, (f"COMMANDS in pytest/test_docs.py lists commands no doc shows "
                      f"any more: {gone}")


def test_a_command_outside_a_shell_block_is_found():
    """The extraction itself: what would slip past it would go untested."""
    doc = ("Text\n\n    ./faultline demo   # shown indented\n    fork  4006\n\n"
           "```\n$ echoc --fault x 127.0.0.1\necho: it said\n```\n"
           "```text\n./faultline in a text block is output\n```\n"
           "```sh\nmeson test -C build   # a comment with 'quotes'\n```\n")
    found = [(command, shown) for _, language, body in code_blocks(doc)
             for _, command, shown in commands_in(language, body)]
    assert found == [("./faultline demo", None),
                     ("echoc --fault x 127.0.0.1", ["echo: it said"]),
                     ("meson test -C build", None)], found


# --- docs/ARCHITECTURE.md's "Where does X live" table --------------------------------

ARCHITECTURE = paths.REPO / "docs" / "ARCHITECTURE.md"
WHERE = "Where does X live"


def missing_in_where_table(text, repo):
    """The files and folders the table names that are not in repo. A name
    with a slash is the repository's (model_<name>.c: any model); a bare
    file name (`evidence.py`) is beside a path named in the same cell."""
    section = text.split(f"## {WHERE}", 1)[1].split("\n## ", 1)[0]
    missing = []
    for row in section.splitlines():
        cells = row.split("|")
        if len(cells) < 4 or not cells[2].strip() or set(cells[2].strip()) <= {"-"}:
            continue
        names = [name for span in re.findall(r"`([^`]+)`", cells[2])
                 for name in re.split(r",\s*", span) if " " not in name]
        names += re.findall(r"(?<![`/\w])docs/\w+\.md", cells[2])
        files = [n for n in names if "/" in n or re.search(r"\.(c|h|py|toml|md)$", n)]
        folders = {repo / (n if n.endswith("/") else n.rsplit("/", 1)[0])
                   for n in files if "/" in n}
        for name in files:
            if "/" in name:
                found = list(repo.glob(name.replace("<name>", "*")))
            else:
                found = [f / name for f in folders if (f / name).exists()]
            if not found:
                missing.append(name)
    return missing


def test_the_architecture_page_opens_with_where_things_live():
    first = re.search(r"^## (.+)$", ARCHITECTURE.read_text(), re.M).group(1)
    assert first == WHERE, f"docs/ARCHITECTURE.md's first section is '{first}'"


def test_every_path_the_where_table_names_exists():
    missing = missing_in_where_table(ARCHITECTURE.read_text(), paths.REPO)
    assert not missing, (f"docs/ARCHITECTURE.md's '{WHERE}' table names what is not "
                         f"in the tree: {missing}")


def test_a_path_the_where_table_names_wrongly_is_found():
    text = (f"## {WHERE}\n\n| want | lives in |\n|---|---|\n"
            "| reapers | `server/reaper.c` |\n| models | `server/model_<name>.c` |\n"
            "| checks | `python/faultline/checkrun.py`, `evidence.py`, `verdicts.py` |\n"
            "| scenarios | `fixtures/scenarios/`, docs/SCENARIOS.md, docs/NOPE.md |\n")
    assert missing_in_where_table(text, paths.REPO) == [
        "server/reaper.c", "verdicts.py", "docs/NOPE.md"]


# --- faultline/__init__.py's module map ------------------------------------------------

def module_map_gaps(doc, modules):
    """(modules the map leaves out, names it gives that are no module): the
    map is the docstring's lines `  NAME  what it does`."""
    mapped = set(re.findall(r"^  ([a-z_]+) {2,}\S", doc, re.M))
    return sorted(set(modules) - mapped), sorted(mapped - set(modules))


def test_the_package_map_names_every_module_and_nothing_else():
    import faultline
    package = paths.REPO / "python" / "faultline"
    modules = [p.stem for p in package.glob("*.py") if not p.stem.startswith("__")]
    modules += [p.parent.name for p in package.glob("*/__init__.py")]
    left_out, stale = module_map_gaps(faultline.__doc__, modules)
    assert not left_out and not stale, (f"python/faultline/__init__.py's map leaves out "
                                        f"{left_out} and names {stale}, which are gone")


def test_a_module_the_map_leaves_out_or_keeps_after_it_went_is_found():
    doc = "One module per concern:\n  paths     where\n  harness   gone\n" \
          "              (continued: not a module)\n"
    assert module_map_gaps(doc, ["paths", "cli"]) == (["cli"], ["harness"])


# --- the check command's documentation against its code ---------------------------

def check_docs_drift(readme, man):
    """What README.md and man/faultline.1 say of `faultline check` that its
    code does not: options and checks the man page leaves out, the README's
    list of the checks a server that does not echo gets, its --settle
    default. [] when they agree."""
    from faultline import checks, cli
    check = cli.subcommands(cli.make_parser())["check"]
    options = {o for a in check._actions for o in a.option_strings
               if o.startswith("--") and o != "--help"}
    man = man.replace("\\-", "-")
    # The check command's own entry, up to the next command's: an option
    # also named in the synopsis or an example is still looked for here.
    entry = man.partition(".B check\nRun every check")[2].partition("\n.BI run ")[0]
    drift = [f"man page: no {o} in check's entry" for o in sorted(options)
             if not re.search(rf"^\.B[IR]? {re.escape(o)}\b", entry, re.M)]
    named = entry.partition("The checks:")[2].partition("A server that does not echo")[0]
    drift += [f"man page: no check {c.name} in its list" for c in checks.CHECKS
              if c.name not in named]
    listed = re.search(r"the checks of process and socket hygiene\s*\(([^)]*)\)", readme)
    hygiene = [c.name for c in checks.CHECKS if not c.needs_echo]
    if listed is None or re.split(r",\s*", " ".join(listed.group(1).split())) != hygiene:
        drift.append(f"README: the checks that need no echo are {', '.join(hygiene)}, "
                     f"not {listed and listed.group(1)!r}")
    settle = re.search(r"`--settle S` .*? \(default ([\d.]+)\)", readme, re.S)
    if settle is None or float(settle.group(1)) != checks.DEFAULT_SETTLE:
        drift.append(f"README: --settle's default is {checks.DEFAULT_SETTLE:g}, not "
                     f"{settle and settle.group(1)}")
    return drift


def test_the_check_commands_docs_say_what_its_code_does():
    readme = (paths.REPO / "README.md").read_text()
    man = (paths.REPO / "man/faultline.1").read_text()
    drift = check_docs_drift(readme, man)
    assert drift == [], "\n".join(drift)


@pytest.mark.parametrize("edit", [
    ("man", ".BI \\-\\-settle", ".BI \\-\\-calm"),
    ("man", ".BI \\-\\-port \" P\"", ".BI \\-\\-harbour \" P\""),
    ("man", "session-ends (each", "(each"),
    ("readme", "churn,\nsession-ends);", "churn);"),
    ("readme", "child (default 2)", "child (default 1)"),
], ids=["man-option", "man-option-in-synopsis-too", "man-check", "readme-hygiene",
        "readme-settle"])
def test_docs_that_drift_from_the_check_command_are_found(edit):
    texts = {"readme": (paths.REPO / "README.md").read_text(),
             "man": (paths.REPO / "man/faultline.1").read_text()}
    which, old, new = edit
    assert texts[which].count(old) == 1, f"{old!r} is not once in {which}"
    texts[which] = texts[which].replace(old, new)
    assert check_docs_drift(texts["readme"], texts["man"]) != [], edit
