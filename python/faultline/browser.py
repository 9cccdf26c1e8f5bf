"""A page as a person sees it: headless Chromium (Debian's package
`chromium`) takes a screenshot of report.html and serializes its DOM once
loaded, and what the page logged to its console is kept.

--no-sandbox: the sandbox protects a browser from hostile pages; these
pages are our own files, and the sandbox needs namespaces (or a setuid
helper Debian does not ship) that root without --no-sandbox, or a user on
a machine refusing user namespaces, cannot have. The profile and HOME are
a scratch folder, so that the user nobody (HOME=/nonexistent) can run it.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 90.0
WINDOW = (1200, 1400)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(Exception):
    """Chromium is missing, or could not load the page: one line."""


@dataclass
class Seen:
    dom: str            # the serialized DOM after load (--dump-dom), or ""
    console: list       # what the page wrote to its console: errors, logs
    stderr: str


def find():
    """The Chromium executable, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def run(page, *flags, timeout=TIMEOUT):
    """Chromium headless on a local file; Seen."""
    exe = find()
    if exe is None:
        raise BrowserError("chromium is not installed (ci/install-deps installs it)")
    page = Path(page).resolve()
    with tempfile.TemporaryDirectory(prefix="faultline-chromium-") as scratch:
        env = dict(os.environ, HOME=scratch, XDG_CONFIG_HOME=scratch,
                   XDG_CACHE_HOME=scratch)
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                f"--user-data-dir={scratch}/profile", "--enable-logging=stderr", "--v=0",
                *flags, page.as_uri()]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish with {page} within "
                               f"{timeout:g} s") from None
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BrowserError(f"chromium exited with {proc.returncode} on {page}: {last}")
    return Seen(proc.stdout, console, proc.stderr)


def dom(page):
    """The page's DOM once loaded, and its console."""
    return run(page, "--dump-dom")


def screenshot(page, png, window=WINDOW):
    """A PNG of the top of the page in a window of `window` pixels."""
    png = Path(png).resolve()
    seen = run(page, f"--screenshot={png}", f"--window-size={window[0]},{window[1]}")
    if not png.is_file():
        raise BrowserError(f"chromium wrote no screenshot of {page}: "
                           f"{(seen.stderr.strip().splitlines() or [''])[-1]}")
    return seen
