"""Fitting a model that trains in steps (linear, two-layer net): progress, periodic checkpoints,
a graceful stop on Ctrl-C, SIGTERM or a hang-up (checkpoint written, run marked interrupted),
and history.csv kept with the checkpoints."""

from __future__ import annotations

import signal
import time

from ..core.linear import TrainingDiverged
from ..errors import DivergenceError, TrainingInterrupted
from ..models import registry
from ..runs import checkpoints
from ..runs.history import HISTORY_COLUMNS, history_rows
from ..runs.status import mark_run
from ..system import threads
from ..system.signals import StopRequest

LBFGS_CHECKPOINT_GAP_S = 10.0
"""Least seconds between two periodic L-BFGS checkpoints. An L-BFGS epoch is one iteration, a
fraction of a second, and its state holds 2 x 10 vectors the size of the weights: writing it
after every iteration took two thirds of the training time (kmeans-svm on the sample). A
stop by signal still checkpoints at once, so a SIGKILL loses at most this much work plus one
iteration (times checkpoint_every)."""


def fit_in_steps(cfg, est, run, data, C, state, progress):
    """Fit ``est`` on data = (X, y, X_val or None, y_val); resume from ``state`` when given.

    Raises TrainingInterrupted after a graceful stop (checkpoint and history written, run marked
    interrupted) and DivergenceError when the loss diverged (history written, run marked failed).
    """
    X, y, X_val, y_val = data
    total = _total_steps(cfg, len(y))
    bar = progress(total, f"train {cfg.model.type}")
    if state is not None:
        bar.update(int(state.get("iteration", 0)))
    stop = StopRequest()
    try:
        with stop.installed(), threads.blas_threads(registry.get(cfg.model.type).fit_threads(cfg)):
            est.fit(X, y, num_classes=C, X_val=X_val, y_val=y_val if X_val is not None else None, state=state,
                    on_step=lambda iteration, loss: bar.update(1, loss=f"{loss:.4g}"),
                    on_epoch=_epoch_end(cfg, est, run, bar), should_stop=stop)
            if getattr(est, "stopped_", False):  # further signals are held off while the checkpoint is written
                stop.saving = True
                checkpoints.write(run, est)
                run.update_meta(status="interrupted")
    except TrainingDiverged as exc:
        _write_history(run, est)
        err = _diverged(cfg, exc, run)
        mark_run(run, "failed", err)  # the whole message: `train --resume` and `runs` repeat it
        raise err from None
    finally:
        bar.close()
    if getattr(est, "stopped_", False):
        _write_history(run, est)
        err = TrainingInterrupted(
            f"stopped after iteration {est.n_iter_} of {total}; checkpoint saved. Resume with: mlcv train --resume {run.path}"
        )
        err.exit_code = 130 if stop.signum == signal.SIGINT else 143
        err.run_dir = str(run.path)
        raise err


def _total_steps(cfg, n):
    if cfg.train.optimizer == "random_search":
        return cfg.train.random_search_tries
    if cfg.train.optimizer == "lbfgs":
        return cfg.train.epochs
    return -(-n // cfg.train.batch_size) * cfg.train.epochs


def _epoch_end(cfg, est, run, bar):
    """on_epoch: progress, then a checkpoint every train.checkpoint_every epochs (L-BFGS: at most one per gap)."""
    every = cfg.train.checkpoint_every
    gap = LBFGS_CHECKPOINT_GAP_S if cfg.train.optimizer == "lbfgs" else 0.0
    last_checkpoint = [time.monotonic()]

    def on_epoch(info):
        bar.update(0, epoch=f"{info['epoch']}/{cfg.train.epochs}", loss=f"{info['loss']:.4g}",
                   val_acc=None if info.get("val_acc") is None else f"{info['val_acc']:.3f}")
        if (every and info["epoch"] % every == 0 and info["epoch"] < cfg.train.epochs
                and time.monotonic() - last_checkpoint[0] >= gap):
            checkpoints.write(run, est)
            _write_history(run, est)
            last_checkpoint[0] = time.monotonic()

    return on_epoch


def _write_history(run, est):
    run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)


def _diverged(cfg, exc, run):
    err = DivergenceError(
        f"training diverged at iteration {exc.iteration} (loss {exc.loss}): the learning rate "
        f"{cfg.train.lr:g} is too high for reg {cfg.model.reg:g}; try --set train.lr={cfg.train.lr / 10:g}",
        iteration=exc.iteration,
        loss=exc.loss,
    )
    err.run_dir = str(run.path)
    return err
