"""Polling with a deadline. Nothing in the harness sleeps to synchronize:
it polls an observable condition and, when the deadline passes, says what
it waited for and what it saw last."""

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
