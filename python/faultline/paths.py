"""Where things are: the checkout, the meson build, binaries, artifacts."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Relative to the checkout, not to wherever ./faultline or pytest was started.
BUILD_DIR = REPO / os.environ.get("FAULTLINE_BUILD_DIR", "build")
ARTIFACTS_DIR = REPO / os.environ.get("FAULTLINE_ARTIFACTS", "artifacts")


def binary(name: str) -> Path:
    """Path of a program the meson build makes (echod, echoc, flhost)."""
    where = {
        "echod": "server/echod",
        "echoc": "client/echoc",
        "flhost": "python/faultline/native/flhost",
    }[name]
    return BUILD_DIR / where
