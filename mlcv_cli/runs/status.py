"""A run's status in meta.json (running, done, failed, interrupted), owned by one context manager
for train, cv and refit alike, and the messages that say whether an interrupted run can resume."""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import MlcvError, TrainingInterrupted
from ..system.signals import Terminated
from .checkpoints import CHECKPOINT


FEATURES = "features"
"""meta.json "stage" of a train run until its features are fitted and encoded (then "training"):
the feature cache keeps that stage's work, so a run stopped in it can resume."""


def in_features_stage(run):
    try:
        return run.read_meta().get("stage") == FEATURES
    except MlcvError:
        return False


def stopped_abruptly(run, exc):
    """An interrupt outside the graceful stop: say whether the last checkpoint (or, before training,
    the feature cache) can resume the run."""
    if in_features_stage(run):
        message = (f"stopped while computing the features; what was done is kept in the feature cache. "
                   f"Resume with: mlcv train --resume {run.path}")
    elif run.file(CHECKPOINT).exists():
        message = f"stopped at once; the last checkpoint is kept. Resume with: mlcv train --resume {run.path}"
    else:
        message = f"stopped at once, before any checkpoint was written: nothing to resume, run it again ({run.path} is marked interrupted)"
    err = TrainingInterrupted(message)
    err.exit_code = 143 if isinstance(exc, Terminated) else 130
    err.run_dir = str(run.path)
    return err


def out_of_memory(run):
    """A MemoryError that the estimate did not foresee: resumable from the last checkpoint, if any."""
    if in_features_stage(run):
        mark_run(run, "interrupted", "out of memory")
        message = (f"ran out of memory while computing the features; what was done is kept in the feature cache. "
                   f"Free memory and resume with: mlcv train --resume {run.path}")
    elif run.file(CHECKPOINT).exists():
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


@contextmanager
def recorded(run, *, interrupted, out_of_memory):
    """Record in ``run``'s meta.json how the work in the block ended: done when it ends normally;
    a Ctrl-C, SIGTERM or hang-up (KeyboardInterrupt) marks it interrupted and raises
    ``interrupted(exc)``; a MemoryError raises ``out_of_memory()``, which decides between
    interrupted (resumable) and failed; any other exception marks it failed and goes on.

    An MlcvError that names a ``run_dir`` was recorded where it was raised (a graceful stop with
    its checkpoint, a divergence, a lost cluster) and passes through untouched.
    """
    try:
        yield
    except MlcvError as exc:
        if getattr(exc, "run_dir", None) is None:
            mark_run(run, "failed", exc)
        raise
    except KeyboardInterrupt as exc:
        mark_run(run, "interrupted")
        raise interrupted(exc) from None
    except MemoryError:
        raise out_of_memory() from None
    except BaseException as exc:
        mark_run(run, "failed", exc)
        raise
    run.update_meta(status="done")


def training(run):
    """``recorded`` for a training run: resumable from its last checkpoint when it has one."""
    return recorded(run, interrupted=lambda exc: stopped_abruptly(run, exc), out_of_memory=lambda: out_of_memory(run))


@contextmanager
def refusal_keeps_status(run, status):
    """A resume refused after the run was marked running (say its fitted feature extractor or its
    checkpoint does not fit): the run gets ``status`` back, and the error passes through
    ``recorded`` untouched."""
    try:
        yield
    except MlcvError as exc:
        if getattr(exc, "run_dir", None) is None:
            mark_run(run, status)
            exc.run_dir = str(run.path)
        raise
