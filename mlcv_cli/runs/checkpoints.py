"""Training checkpoints, in one place: the files (checkpoint.npz while a run is interrupted,
state.npz once it finished), writing them from an estimator's ``get_state()``, reading them
without pickles, and checking every entry before a run resumes from one (a checkpoint is input
too). ``core/`` produces and restores the state as plain arrays; this module owns the files.
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np

from ..errors import MlcvError, ModelFileError
from ..models import modelfile
from .rundir import RunDir

CHECKPOINT = "checkpoint.npz"
FINAL_STATE = "state.npz"
"""A finished run's training state, so `train --resume RUN --set train.epochs=N` can go on."""

_COUNTS = ("epoch", "iteration", "batch_pos", "epoch_steps")
_JSON = ("rng_state", "epoch_history")


def write(run: RunDir, est):
    """Write ``est.get_state()`` as the run's checkpoint, atomically."""
    run.write_npz(CHECKPOINT, {k: np.asarray(v) for k, v in est.get_state().items()})


def write_final(run: RunDir, est):
    """Keep a finished run's training state (FINAL_STATE) and drop its checkpoint."""
    run.write_npz(FINAL_STATE, {k: np.asarray(v) for k, v in est.get_state().items()})
    discard(run)


def discard(run: RunDir):
    """Remove the interrupted-run checkpoint once the run has finished and saved its final state."""
    ckpt = run.file(CHECKPOINT)
    if ckpt.exists():
        ckpt.unlink()


def read(run: RunDir, name=CHECKPOINT) -> dict:
    """The arrays of ``run``'s checkpoint file ``name`` (np.load without pickles, sizes checked first)."""
    path = run.file(name)
    if not path.exists():
        raise MlcvError(f"{run.path} has no {name} to resume from (was it trained with checkpoint_every: 0?)")
    if not path.is_file():  # a FIFO would block the reader, a device never end
        raise MlcvError(f"{path} is not a regular file; the run directory is damaged: start a new run instead of resuming")
    try:
        modelfile.check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, ModelFileError) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); start a new run instead of resuming") from None


def _scalar(state, key, kinds):
    a = state.get(key)
    if not isinstance(a, np.ndarray) or a.shape != () or a.dtype.kind not in kinds:
        return None, f"{key} is missing or not a single {'whole number' if kinds == 'iu' else 'number' if 'f' in kinds else 'text'}"
    return a[()], None


def problem(state: dict, shapes: dict, optimizer: str, epochs: int):
    """Why ``state`` (arrays from a checkpoint file) cannot resume a model whose parameters have
    ``shapes`` ({name: shape}, e.g. {"W": (D, C), "b": (C,)}), or None.

    Checks each entry's type and shape (every parameter, and optimizer slots opt_<name>_<slot>
    like it), counts that are whole and in range, finite numbers, and the JSON fields.
    """
    opt, why = _scalar(state, "optimizer", "U")
    if why:
        return why
    if str(opt) != optimizer:
        return f"made with optimizer {str(opt)!r}, the run's config says {optimizer!r}"
    for key, shape in [*shapes.items(), *((f"best_{k}", s) for k, s in shapes.items() if f"best_{k}" in state)]:
        a = state.get(key)
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != shape:
            found = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else "nothing"
            return f"{key} should be floats of shape {shape}, found {found}"
        if not np.isfinite(a).all():
            return f"{key} holds NaN or infinite values"
    counts = {}
    for key in _COUNTS:
        value, why = _scalar(state, key, "iu")
        if why:
            return why
        if value < 0:
            return f"{key} is negative ({value})"
        counts[key] = int(value)
    if counts["epoch"] > epochs:
        return f"epoch {counts['epoch']} is past the run's {epochs} epochs"
    for key in ("lr", "epoch_loss_sum"):
        value, why = _scalar(state, key, "fiu")
        if why:
            return why
        if not math.isfinite(float(value)):
            return f"{key} is not finite"
    history = state.get("loss_history")
    if not isinstance(history, np.ndarray) or history.ndim != 1 or history.dtype.kind not in "fiu":
        return "loss_history should be a list of numbers"
    if len(history) != counts["iteration"]:
        return f"loss_history has {len(history)} entries for {counts['iteration']} iterations"
    for key in _JSON:
        text, why = _scalar(state, key, "U")
        if why:
            return why
        try:
            value = json.loads(str(text))
        except ValueError:
            return f"{key} is not valid JSON"
        if key == "rng_state":
            try:
                np.random.PCG64().state = value
            except (TypeError, ValueError, KeyError):
                return "rng_state is not a generator state"
        elif not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
            return "epoch_history is not a list of records"
    for key, a in state.items():
        if key.startswith(("opt_", "lbfgs_")):
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
                return f"{key} is not numeric"
            if not np.isfinite(a).all():
                return f"{key} holds NaN or infinite values"
            for name, shape in shapes.items():
                if key.startswith(f"opt_{name}_") and not key.endswith("_t") and a.shape != tuple(shape):
                    return f"{key} should have shape {shape}, found {a.shape}"
    return None
