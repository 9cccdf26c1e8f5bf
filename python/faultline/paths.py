"""Where things are: the checkout and its meson build, or an installed
faultline; the binaries, the scenario files, the artifacts.

A checkout (this package in python/faultline/ beside meson.build): the
binaries come from the meson build in BUILD_DIR (echod and echoc from
FAULTLINE_PROGRAM_BUILD_DIR's when it is set), the scenarios from
fixtures/scenarios/, the artifacts go to the checkout's artifacts/.

An installed faultline (`meson install`, the .deb): meson wrote a module
`installed` beside this one, which a checkout never has. It says where
bindir, libexecdir and datadir are relative to this package's folder, so
a tree moved as a whole (under a DESTDIR, out of `dpkg-deb -x`) still
finds its files. There is no checkout then (REPO and BUILD_DIR are None):
nothing is built or installed on demand, and the artifacts go to
faultline-artifacts/ in the current directory, the caller's.
"""

import os
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

try:
    from . import installed as _installed
except ImportError:  # a checkout: only meson install writes that module
    _installed = None

INSTALLED = _installed is not None

if INSTALLED:
    REPO = None
    BUILD_DIR = None
    # Relative to the directory faultline is started in, like its arguments.
    ARTIFACTS_DIR = Path(os.environ.get("FAULTLINE_ARTIFACTS",
                                        "faultline-artifacts")).absolute()
    SCENARIO_DIR = (PACKAGE / _installed.SCENARIO_DIR).resolve()
else:
    REPO = PACKAGE.parents[1]
    # Relative to the checkout, not to wherever ./faultline or pytest was started.
    BUILD_DIR = REPO / os.environ.get("FAULTLINE_BUILD_DIR", "build")
    # echod and echoc may come from another build (a sanitizer build, in
    # .ci/run) while flhost and the zoo stay the plain build's: the
    # harness's own keeper is not what is under test.
    PROGRAM_BUILD_DIR = REPO / os.environ.get("FAULTLINE_PROGRAM_BUILD_DIR",
                                              str(BUILD_DIR))
    ARTIFACTS_DIR = REPO / os.environ.get("FAULTLINE_ARTIFACTS", "artifacts")
    SCENARIO_DIR = REPO / "fixtures" / "scenarios"


def binary(name: str) -> Path:
    """Path of a program the meson build makes (echod, echoc, flhost)."""
    if INSTALLED:
        where = {
            "echod": _installed.BINDIR,
            "echoc": _installed.BINDIR,
            "flhost": _installed.LIBEXECDIR,
        }[name]
        return (PACKAGE / where).resolve() / name
    if name == "flhost":
        return BUILD_DIR / "python/faultline/native/flhost"
    return PROGRAM_BUILD_DIR / {"echod": "server/echod", "echoc": "client/echoc"}[name]


def version() -> str:
    """The project's version: meson.build's, the one place it is set
    (written into the `installed` module when installed)."""
    if INSTALLED:
        return _installed.VERSION
    text = (REPO / "meson.build").read_text()
    found = re.search(r"\bversion\s*:\s*'([^']+)'", text)
    return found.group(1) if found else "unknown"
