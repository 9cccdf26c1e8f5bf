"""Polling with a deadline. Nothing in the harness sleeps to synchronize:
it polls an observable condition and, when the deadline passes, says what
it waited for and what it saw last."""

import ctypes
import ctypes.util
import os
import select
import time


class WaitTimeout(AssertionError):
    """A wait expired. An AssertionError so that pytest shows it as a
    failed expectation, with its message, rather than as a crash."""


def wait_until(predicate, timeout, what, seen=None, first_interval=0.0005,
               max_interval=0.02):
    """Call predicate() until it returns a true value, which is returned.

    what: the condition in words ("5 children of echod").
    seen: optional callable describing the current state for the message.
    Polls fast at first (most conditions hold within milliseconds), then
    backs off so a slow wait does not burn a core.
    """
    deadline = time.monotonic() + timeout
    interval = first_interval
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if seen is not None:
                message += f"\nlast seen:\n{seen()}"
            raise WaitTimeout(message)
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 2, max_interval)


# inotify(7), through libc: the stdlib has no binding.
_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_libc = None


def _inotify_watch(path):
    """An inotify descriptor watching path for writes, or None when inotify
    cannot be had (then callers poll)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                use_errno=True)
        except OSError:
            _libc = False
    if not _libc:
        return None
    fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    if _libc.inotify_add_watch(fd, os.fsencode(path),
                               _IN_MODIFY | _IN_CLOSE_WRITE) < 0:
        os.close(fd)
        return None
    return fd


def wait_until_written(path, predicate, timeout, what, seen=None, recheck=0.05):
    """wait_until() for a condition on a file's contents (a readiness line
    in a captured stdout): predicate() is called again as soon as the file
    is written (inotify), and at least every `recheck` seconds for what no
    write announces (the writer's death). Where inotify is not to be had,
    this is wait_until()."""
    fd = _inotify_watch(path)
    if fd is None:
        return wait_until(predicate, timeout, what, seen=seen)
    try:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                message = f"timed out after {timeout:g}s waiting for {what}"
                if seen is not None:
                    message += f"\nlast seen:\n{seen()}"
                raise WaitTimeout(message)
            if select.select([fd], [], [], min(left, recheck))[0]:
                try:
                    os.read(fd, 4096)  # the events themselves say nothing more
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)
