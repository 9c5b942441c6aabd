"""How the `mlcv` process ends when it is interrupted: like a well-behaved Unix program.

A shell stops a `for` loop on Ctrl-C only when the child died *from* the signal, not when
it merely exited with status 130; so after saying how to resume, mlcv re-raises the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from contextlib import contextmanager

# Exit statuses a shell reports for a process killed by these signals.
EXIT_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143}
# A hang-up (the terminal or the ssh session closed) stops a command as SIGTERM does: the run is
# checkpointed and marked interrupted rather than killed mid-step, and the process ends as by SIGTERM.
STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so every command unwinds (temporary files, run status) as on Ctrl-C."""


@contextmanager
def handling(signums, handler):
    """Within the block, ``handler`` (a function or signal.SIG_IGN) answers ``signums``; the
    handlers found are put back at its end. Outside the main thread, where Python cannot
    install handlers, the block runs as it is."""
    try:
        old = {s: signal.signal(s, handler) for s in signums}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, SIGTERM (and a hang-up) raises Terminated (commands that stop gracefully
    install their own)."""

    def handler(signum, frame):
        raise Terminated()

    with handling(STOP_SIGNALS, handler):
        yield


def exit_by_signal(code):
    """End the process by the signal behind exit status ``code`` (130 or 143), with its default action.

    Falls back to ``sys.exit(code)`` where the signal does not end the process.
    """
    signum = next((s for s, c in EXIT_CODE.items() if c == code), None)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if signum is not None and hasattr(os, "kill"):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    sys.exit(code)


class StopRequest:
    """SIGINT/SIGTERM (or a hang-up) set a flag; training stops after the current step."""

    def __init__(self):
        self.signum = None
        self.saving = False  # set while the checkpoint is written: a second Ctrl-C must not tear it

    def __call__(self):
        return self.signum is not None

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            if self.saving:
                return
            if self.signum is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self.signum = signum

        with handling((signal.SIGINT, *STOP_SIGNALS), handler):  # not the main thread: no graceful stop
            yield self


@contextmanager
def deferred():
    """SIGINT, SIGTERM or a hang-up arriving inside the block takes effect when the block ends, so
    a short write that keeps finished work (a chunk of encoded features) is not lost to it. Outside
    the main thread, the block runs as it is."""
    caught = []

    def handler(signum, frame):
        caught.append(signum)

    try:
        with handling((signal.SIGINT, *STOP_SIGNALS), handler):
            yield
    finally:
        if caught:
            signal.raise_signal(caught[0])  # now, with the handlers the block found
