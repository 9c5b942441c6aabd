"""A run's end status in meta.json, and the messages that say whether an interrupted run can resume."""

from __future__ import annotations

from ..errors import MlcvError, TrainingInterrupted
from ..system.signals import Terminated
from .checkpoints import CHECKPOINT


def stopped_abruptly(run, exc):
    """An interrupt outside the graceful stop: say whether the last checkpoint can resume the run."""
    if run.file(CHECKPOINT).exists():
        message = f"stopped at once; the last checkpoint is kept. Resume with: mlcv train --resume {run.path}"
    else:
        message = f"stopped at once, before any checkpoint was written: nothing to resume, run it again ({run.path} is marked interrupted)"
    err = TrainingInterrupted(message)
    err.exit_code = 143 if isinstance(exc, Terminated) else 130
    err.run_dir = str(run.path)
    return err


def out_of_memory(run):
    """A MemoryError that the estimate did not foresee: resumable from the last checkpoint, if any."""
    if run.file(CHECKPOINT).exists():
        mark_run(run, "interrupted", "out of memory")
        message = f"ran out of memory; the last checkpoint is kept. Free memory and resume with: mlcv train --resume {run.path}"
    else:
        mark_run(run, "failed", "out of memory")
        message = (f"ran out of memory before any checkpoint was written ({run.path} is marked failed); free memory, "
                   "or use fewer images (data.num_train) or smaller features, and run it again")
    err = MlcvError(message)
    err.run_dir = str(run.path)
    return err


def mark_run(run, status, exc=None):
    """Record a run's end status; best effort, so the original error is the one reported."""
    extra = {} if exc is None else {"error": str(exc)[:500] or type(exc).__name__}
    try:
        run.update_meta(status=status, **extra)
    except MlcvError:
        pass
