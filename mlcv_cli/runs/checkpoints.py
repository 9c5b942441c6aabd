"""What a training checkpoint must hold before training resumes from it (checkpoint.npz is input too)."""

from __future__ import annotations

import json
import math

import numpy as np

_COUNTS = ("epoch", "iteration", "batch_pos", "epoch_steps")
_JSON = ("rng_state", "epoch_history")


def _scalar(state, key, kinds):
    a = state.get(key)
    if not isinstance(a, np.ndarray) or a.shape != () or a.dtype.kind not in kinds:
        return None, f"{key} is missing or not a single {'whole number' if kinds == 'iu' else 'number' if 'f' in kinds else 'text'}"
    return a[()], None


def checkpoint_problem(state: dict, D: int, C: int, optimizer: str, epochs: int):
    """Why ``state`` (arrays from checkpoint.npz) cannot resume a D x C linear model, or None.

    Checks each entry's type and shape (W (D, C), b (C,), optimizer state like them),
    counts that are whole and in range, finite numbers, and the JSON fields.
    """
    opt, problem = _scalar(state, "optimizer", "U")
    if problem:
        return problem
    if str(opt) != optimizer:
        return f"made with optimizer {str(opt)!r}, the run's config says {optimizer!r}"
    for key, shape in (("W", (D, C)), ("b", (C,))):
        a = state.get(key)
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f" or a.shape != shape:
            found = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else "nothing"
            return f"{key} should be floats of shape {shape}, found {found}"
        if not np.isfinite(a).all():
            return f"{key} holds NaN or infinite values"
    counts = {}
    for key in _COUNTS:
        value, problem = _scalar(state, key, "iu")
        if problem:
            return problem
        if value < 0:
            return f"{key} is negative ({value})"
        counts[key] = int(value)
    if counts["epoch"] > epochs:
        return f"epoch {counts['epoch']} is past the run's {epochs} epochs"
    for key in ("lr", "epoch_loss_sum"):
        value, problem = _scalar(state, key, "fiu")
        if problem:
            return problem
        if not math.isfinite(float(value)):
            return f"{key} is not finite"
    history = state.get("loss_history")
    if not isinstance(history, np.ndarray) or history.ndim != 1 or history.dtype.kind not in "fiu":
        return "loss_history should be a list of numbers"
    if len(history) != counts["iteration"]:
        return f"loss_history has {len(history)} entries for {counts['iteration']} iterations"
    for key in _JSON:
        text, problem = _scalar(state, key, "U")
        if problem:
            return problem
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
            for part, shape in (("opt_W_", (D, C)), ("opt_b_", (C,))):
                if key.startswith(part) and not key.endswith("_t") and a.shape != shape:
                    return f"{key} should have shape {shape}, found {a.shape}"
    return None
