"""Root conftest: pytest loads it first from any invocation inside the
checkout. The fixtures and reporting hooks are faultline's pytest plugin
(python/faultline/plugin.py), loaded here as any other project loads it;
what only a checkout has stays here: the build step and the options of
pytest/test_byo.py."""

from pathlib import Path

import pytest

import faultline
from faultline import build

# An installed faultline's entry point loads its plugin before pytest.ini's
# pythonpath reaches this checkout's package: the suite would then test the
# installed copy. ./faultline test puts the checkout first.
HERE = Path(__file__).resolve().parent
IMPORTED = Path(faultline.__file__).resolve().parent

pytest_plugins = ["faultline.plugin"]


def pytest_addoption(parser):
    group = parser.getgroup("faultline")
    group.addoption("--no-build", action="store_true",
                    help="do not run meson before the tests")
    group.addoption("--server-cmd", metavar="CMD",
                    help="run pytest/test_byo.py's checks against this server "
                         "command (any TCP echo server)")
    group.addoption("--server-port", type=int, default=9877, metavar="P",
                    help="the port --server-cmd listens on (default 9877)")


def pytest_configure(config):
    if IMPORTED != HERE / "python" / "faultline":
        raise pytest.UsageError(
            f"pytest imported the installed faultline ({IMPORTED}) before this "
            f"checkout's: run ./faultline test, or pytest with PYTHONPATH={HERE / 'python'}")
    # Build once, in the controller; xdist workers find it done.
    if not hasattr(config, "workerinput") and not config.getoption("--no-build"):
        build.ensure_built()
