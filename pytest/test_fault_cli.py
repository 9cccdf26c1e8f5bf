"""A malformed fault spec is refused at start: exit 2, one line on stderr
naming the spec and the position of the mistake, nothing left running."""

import os
import subprocess

import pytest

from faultline import paths

pytestmark = pytest.mark.faults

MALFORMED = [
    ("kil@after_read", "position 1"),
    ("kill@aftr_read", "position 6"),
    ("kill@after_read,conn=x", "position 22"),
    ("delay=5@before_read", "position 7"),
    ("kill", "position 5"),
]


def run(argv, env=None, timeout=5.0):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("program", ["echod", "echoc"])
@pytest.mark.parametrize("spec, where", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_fault_flag_exits_2_naming_the_position(program, spec, where):
    argv = [paths.binary(program), "--fault", spec]
    if program == "echoc":
        argv.append("127.0.0.1")
    else:
        argv += ["--port", "0"]
    done = run(argv)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, f"{argv}: exit {done.returncode}, stderr {done.stderr!r}"
    assert len(lines) == 1 and where in lines[0] and spec in lines[0], lines


@pytest.mark.parametrize("program, var", [("echod", "ECHOD_FAULTS"),
                                          ("echoc", "ECHOC_FAULTS")])
def test_malformed_fault_environment_is_refused_too(program, var):
    env = dict(os.environ, **{var: "kill@nowhere"})
    argv = [paths.binary(program)] + (["127.0.0.1"] if program == "echoc" else ["--port", "0"])
    done = run(argv, env=env)
    assert done.returncode == 2, done.stderr
    assert var in done.stderr and "position 6" in done.stderr, done.stderr
