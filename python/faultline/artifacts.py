"""Per-test artifact folders under a stable path: ARTIFACTS_DIR/<test>/.

Every test writes its pcap, event log, stdout and stderr there while it
runs; the folder is removed after a pass unless keeping was asked for, and
kept after a failure, so the path in a failure message still exists.
"""

import re
import shutil
from pathlib import Path

from . import paths
from .interrupts import interrupt_first


def safe_name(name):
    """A test node id as a folder name: test_zombie.py::test_x[none]
    -> test_zombie.py--test_x-none"""
    name = name.replace("::", "--")
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")[:180]


def fresh_dir(*parts, root=None):
    """root: where the folders go, paths.ARTIFACTS_DIR unless given (the
    pytest plugin gives another project's own folder)."""
    root = paths.ARTIFACTS_DIR if root is None else Path(root)
    path = root.joinpath(*(safe_name(p) for p in parts))
    if path.exists():
        interrupt_first(shutil.rmtree, path)
    path.mkdir(parents=True)
    return path


def discard(path, root=None):
    root = paths.ARTIFACTS_DIR if root is None else Path(root)
    interrupt_first(shutil.rmtree, path, ignore_errors=True)
    parent = path.parent
    # Leave no empty artifacts/ folder behind after an all-green run.
    while parent != root.parent:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def unused_dir(path):
    """path, or when an earlier run left files there, the first of path.2,
    path.3, ... that is missing or empty: a run's artifacts are never
    deleted by the next run. The folder is not made."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
