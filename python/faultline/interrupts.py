"""Ctrl-C wins over cleanup errors.

A cleanup that runs while an exception propagates (a `finally` clause, an
`__exit__`) and raises replaces that exception. When what propagates is
KeyboardInterrupt, a replacement turns the user's Ctrl-C into an ordinary
error: a check records it as its outcome, pytest as a failed test, and the
run goes on. Ctrl-C also reaches tcpdump and the servers (one process
group), so stopping them is exactly what tends to fail then.

    finally:
        with cleanup("stopping the packet capture"):
            capturer.stop()

Around such a cleanup, an error while an interrupt (KeyboardInterrupt or
SystemExit) propagates is reported after it (on stderr and as a note on
the interrupt's traceback) and dropped, so the interrupt goes on; at any
other time the cleanup's error propagates as before.
"""

import signal
import sys
import threading

INTERRUPTS = (KeyboardInterrupt, SystemExit)


class Terminated(KeyboardInterrupt):
    """SIGTERM, made an interrupt like Ctrl-C: what CI sends at a timeout,
    and a run stopped so must still end its servers and write its reports.
    A KeyboardInterrupt, so that every clean-up treats it as one."""


def _raise_terminated(signo, frame):
    raise Terminated()


def terminate_as_interrupt():
    """From now on, SIGTERM raises Terminated in the main thread."""
    signal.signal(signal.SIGTERM, _raise_terminated)

# Python runs signal handlers in the main thread only, but the kernel hands
# a process-directed signal to any thread that does not block it. Taken by
# a worker, Ctrl-C does not end the main thread's wait for that worker
# (join() sleeps on a lock the signal never touched), and CPython 3.11 can
# even leave it unhandled once the main thread runs again: a run went on
# for 15 s after SIGINT, inside a churn check whose connects ran in a
# worker. Workers block these, so the main thread takes them. They are
# blocked from the worker's first instruction: it inherits them blocked
# from its creator, which blocks them only around the thread's creation.
# (A worker that blocked them itself, first thing, left a window: a SIGINT
# taken there was never raised in the main thread, whose run went on to
# the end, exit 1, in one CI run.) A signal that comes meanwhile waits,
# pending, for the creator's unblock, and is then the main thread's.
MAIN_THREAD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _WorkerThread(threading.Thread):
    def start(self):
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def worker_thread(target, *args, name=None, daemon=False):
    """A thread running target(*args) with MAIN_THREAD_SIGNALS blocked."""
    return _WorkerThread(target=target, args=args, name=name, daemon=daemon)


class cleanup:
    def __init__(self, what, interrupted=False):
        """interrupted: treat the cleanup as interrupted even with nothing
        propagating (pytest tears fixtures down after it caught Ctrl-C)."""
        self.what = what
        self.interrupted = interrupted
        self.pending = None

    def __enter__(self):
        # In a finally clause or an __exit__, the exception on its way out.
        self.pending = sys.exception()
        return self

    def __exit__(self, exc_type, exc, tb):
        interrupted = self.interrupted or isinstance(self.pending, INTERRUPTS)
        if exc is None or not interrupted:
            return False
        if not isinstance(exc, Exception):
            return False  # a second Ctrl-C, or an exit: it goes on instead
        report = f"faultline: interrupted; then {self.what} failed: {type(exc).__name__}: {exc}"
        if isinstance(self.pending, INTERRUPTS):
            self.pending.add_note(report)
        print(report, file=sys.stderr, flush=True)
        return True


def interrupt_first(fn, *args, **kwargs):
    """fn(*args, **kwargs), except that an error it raises while an
    interrupt it met was on its way out gives way to that interrupt. For
    code not ours that cleans up badly: shutil.rmtree, interrupted just
    after it closed a descriptor, closes it again in a finally clause, and
    the EBADF took the Ctrl-C's place (pytest then reported an error, not
    an interruption)."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        cause = e.__context__
        while cause is not None and not isinstance(cause, INTERRUPTS):
            cause = cause.__context__
        if cause is None:
            raise
        cause.add_note(f"faultline: interrupted; then {getattr(fn, '__name__', fn)} "
                       f"failed: {type(e).__name__}: {e}")
        raise cause from None
