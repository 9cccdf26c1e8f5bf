"""Root conftest: pytest loads it first from any invocation inside the
checkout, so command-line options and the build step live here; fixtures
and reporting hooks are in pytest/conftest.py."""

import os

from faultline import build


def pytest_addoption(parser):
    group = parser.getgroup("faultline")
    group.addoption("--keep-artifacts", action="store_true",
                    default=bool(os.environ.get("FAULTLINE_KEEP")),
                    help="keep every test's artifact folder, not only failed ones "
                         "(also FAULTLINE_KEEP=1)")
    group.addoption("--no-build", action="store_true",
                    help="do not run meson before the tests")
    group.addoption("--server-cmd", metavar="CMD",
                    help="run pytest/test_byo.py's checks against this server "
                         "command (any TCP echo server)")
    group.addoption("--server-port", type=int, default=9877, metavar="P",
                    help="the port --server-cmd listens on (default 9877)")


def pytest_configure(config):
    # Build once, in the controller; xdist workers find it done.
    if not hasattr(config, "workerinput") and not config.getoption("--no-build"):
        build.ensure_built()
