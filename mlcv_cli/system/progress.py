"""Progress as plain log lines, for when stderr is a file or a pipe (nohup, CI, `2> log`).

A bar's ``update(n, **postfix)`` writes a line when the postfix names a milestone
(``epoch=`` or ``job=``), and otherwise at most every PERIOD_S seconds; ``close()`` writes
a closing line for work that took a second or more. Epochs that come faster than one every
EPOCH_GAP_S seconds (an L-BFGS epoch is one iteration) get a line per tenth of the work, and
the last one is always written.
"""

from __future__ import annotations

import sys
import time

from .output import printable

PERIOD_S = 30.0
MILESTONES = ("epoch", "job")
EPOCH_GAP_S = 5.0


class LineProgress:
    """progress(total, desc) for logs: one line per milestone, never a carriage return."""

    def __init__(self, total, desc, stream=None, clock=time.monotonic):
        self.total, self.desc = total, printable(desc)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.count = 0
        self.start = self.last = clock()
        self.lines = 0
        self.tenth = 0  # tenths of the total done at the last line
        self.held = None  # (postfix, count) of an epoch not written yet

    def update(self, n=1, **postfix):
        self.count += n
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
            self._line({"done": f"in {now - self.start:.1f} s"}, now)

    def _line(self, postfix, now, count=None):
        count = self.count if count is None else count
        fields = " ".join(f"{k} {printable(v)}" for k, v in postfix.items())
        amount = f"{count}/{self.total}" if self.total else str(count)
        print(f"{self.desc}: {amount}" + (f" {fields}" if fields else ""), file=self.stream, flush=True)
        self.last = now
        self.lines += 1
        self.tenth = self._tenths()
        self.held = None


class NullProgress:
    def update(self, n=1, **postfix):
        pass

    def close(self):
        pass


def null_progress(total, desc):
    return NullProgress()
