"""Install what is missing, then configure and compile the meson build
when it is missing or stale.

`pytest` from a fresh checkout calls ensure_built() before collecting, so
the suite never runs against binaries older than the sources. A no-op
compile costs one ninja run (tens of milliseconds). The commands of
./faultline that run something call install_deps() first.
"""

import fcntl
import os
import subprocess
import sys

from . import paths


class BuildError(RuntimeError):
    pass


def _run(argv, what):
    proc = subprocess.run(argv, cwd=paths.REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {proc.returncode}): "
                         f"{' '.join(map(str, argv))}\n{tail}")
    return proc.stdout


def install_deps():
    """ci/install-deps: installs the missing Debian/Ubuntu packages, and is
    silent (a few file tests) when nothing is missing."""
    script = paths.REPO / "ci" / "install-deps"
    status = subprocess.run([str(script)]).returncode
    if status != 0:
        raise BuildError(f"{script} failed (exit {status}); what it said is above")


def ensure_built(quiet=True):
    """Set up (if needed) and compile the build dir; serialized by a lock so
    parallel pytest workers or commands never run ninja twice at once."""
    build = paths.BUILD_DIR
    build.parent.mkdir(parents=True, exist_ok=True)
    lock_path = build.parent / f".{build.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build / "build.ninja").exists():
            setup = ["meson", "setup", str(build)]
            if os.environ.get("CI") == "true":
                setup.append("-Dwerror=true")  # CI holds the code warning-free
            out = _run(setup, "meson setup")
            if not quiet:
                sys.stdout.write(out)
        out = _run(["meson", "compile", "-C", str(build)], "meson compile")
        if not quiet and "ninja: no work to do" not in out:
            sys.stdout.write(out)
    for name in ("echod", "echoc", "flhost"):
        if not os.access(paths.binary(name), os.X_OK):
            raise BuildError(f"the build did not produce {paths.binary(name)}")
