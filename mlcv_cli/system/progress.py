"""Progress as plain log lines, for when stderr is a file or a pipe (nohup, CI, `2> log`).

A bar's ``update(n, **postfix)`` writes a line when the postfix names a milestone
(``epoch=`` or ``job=``), and otherwise at most every PERIOD_S seconds; each line says how
fast the work goes and when it will end, as a terminal bar does (``52% 375/s ETA 1 min 02 s``).
``update(n, resumed=...)`` counts n items an earlier, interrupted process did: they count
towards the amount, not the rate. ``close()`` writes a closing line for work that took a
second or more: ``done in`` when it ended normally, ``stopped after`` when an exception (a
Ctrl-C) is passing through. Epochs that come faster than one every EPOCH_GAP_S seconds (an
L-BFGS epoch is one iteration) get a line per tenth of the work, and the last one is always
written.
"""

from __future__ import annotations

import sys
import time

from .output import printable

PERIOD_S = 30.0
MILESTONES = ("epoch", "job", "resumed")
EPOCH_GAP_S = 5.0


class LineProgress:
    """progress(total, desc) for logs: one line per milestone, never a carriage return."""

    def __init__(self, total, desc, stream=None, clock=time.monotonic):
        self.total, self.desc = total, printable(desc)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.count = 0
        self.resumed = 0  # items done by an earlier process: not part of this one's rate
        self.start = self.last = clock()
        self.lines = 0
        self.tenth = 0  # tenths of the total done at the last line
        self.held = None  # (postfix, count) of an epoch not written yet

    def update(self, n=1, **postfix):
        self.count += n
        if postfix.get("resumed") is not None:
            self.resumed += n
        postfix = {k: v for k, v in postfix.items() if v is not None}
        now = self.clock()
        if "epoch" in postfix and not self._epoch_due(now):
            self.held = (postfix, self.count)
        elif any(k in postfix for k in MILESTONES) or now - self.last >= PERIOD_S:
            self._line(postfix, now)

    def _epoch_due(self, now):
        return (not self.total or self.count >= self.total or now - self.last >= EPOCH_GAP_S
                or self._tenths() > self.tenth)

    def _tenths(self):
        return 10 * self.count // self.total if self.total else 0

    def close(self):
        now = self.clock()
        if self.held is not None:  # the last epoch of a run that ended early (converged, stopped)
            postfix, count = self.held
            self._line(postfix, now, count)
        if self.total and self.count and (self.lines or now - self.start >= 1.0):
            # close() runs in a `finally:`; an exception passing through means the work was cut short
            ending = "stopped after" if sys.exc_info()[0] is not None else "done in"
            self._line({ending: f"{now - self.start:.1f} s"}, now, pace=False)

    def _line(self, postfix, now, count=None, pace=True):
        count = self.count if count is None else count
        fields = " ".join(f"{k} {printable(v)}" for k, v in postfix.items())
        amount = f"{count}/{self.total}" if self.total else str(count)
        if pace:
            amount += self._pace(count, now)
        print(f"{self.desc}: {amount}" + (f" {fields}" if fields else ""), file=self.stream, flush=True)
        self.last = now
        self.lines += 1
        self.tenth = self._tenths()
        self.held = None


    def _pace(self, count, now):
        """' 52% 375/s ETA 1 min 02 s' once this process has done some of the work for a second."""
        elapsed, done = now - self.start, count - self.resumed
        if not self.total or done <= 0 or elapsed < 1.0 or count >= self.total:
            return ""
        rate = done / elapsed
        speed = f"{rate:.0f}/s" if rate >= 10 else f"{rate:.2g}/s" if rate >= 1 else f"{1 / rate:.2g} s each"
        return f" {100 * count // self.total}% {speed} ETA {duration((self.total - count) / rate)}"


def duration(seconds):
    """45 s, 3 min 05 s, 2 h 05 min: how long, in words a log reader takes in at a glance."""
    if seconds < 0.5:
        return "<1 s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class NullProgress:
    def update(self, n=1, **postfix):
        pass

    def close(self):
        pass


def null_progress(total, desc):
    return NullProgress()


class Pieces:
    """One bar per kind of work (``desc``) for work done in pieces: each piece's calls to
    ``progress(total, desc)`` share the bar that the first of them opened for the whole work
    (``total`` scaled from the piece's ``size`` to ``whole``); ``close()`` closes them all.

    ``done``: how much of the whole an earlier, interrupted process did (shown as resumed).
    """

    def __init__(self, progress, whole, done=0):
        self.progress, self.whole, self.done = progress, whole, done
        self.bars = {}

    def piece(self, size):
        """progress(total, desc) for a piece of ``size`` out of the whole (None without progress)."""
        if self.progress is None:
            return None

        def open_bar(total, desc):
            if desc not in self.bars:
                bar = self.bars[desc] = self.progress(round(total * self.whole / max(size, 1)), desc)
                if self.done:
                    bar.update(round(total * self.done / max(size, 1)), resumed=self.done)
            return _Shared(self.bars[desc])

        return open_bar

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.bars = {}


class _Shared:
    """A piece's view of a shared bar: its updates go through, its close() waits for Pieces.close()."""

    def __init__(self, bar):
        self.bar = bar

    def update(self, n=1, **postfix):
        self.bar.update(n, **postfix)

    def close(self):
        pass
