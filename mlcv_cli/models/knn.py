"""k-nearest neighbours: the model keeps its training images and votes among the k closest."""

from __future__ import annotations

import json
import re

import numpy as np

from ..core.knn import KNearestNeighbor, l1_backend
from ..errors import ConfigError, ModelFileError
from .base import ModelType, key

_IMAGES_FIX = "fewer images (data.num_train)"
_DEFAULT_MAX_MEMORY_MB = 512


class KNNModel(ModelType):
    name = "knn"
    title = "kNN"
    summary = "k-nearest neighbours (L2 or L1 distance, majority vote)"
    keys = {
        "model.k": key(1, int, "kNN: number of neighbours", low=1),
        "model.metric": key("l2", str, "kNN: l2 (Euclidean) or l1 (Manhattan)", choices=("l2", "l1")),
        "model.max_memory_mb": key(_DEFAULT_MAX_MEMORY_MB, int, "kNN: memory for distance temporaries", low=16),
    }
    uses = frozenset({"model.k", "model.metric", "model.max_memory_mb", "preprocess.scale", "preprocess.subtract_mean"})
    defaults = {"name": "knn", "preprocess.subtract_mean": False, "model.k": 1, "model.metric": "l2"}
    default_grid = {"model.k": [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]}
    score_kind = "votes"
    iterative = False
    keeps_training_images = True
    groups_cv_points = True
    plots = ("neighbors",)
    sklearn_name = "KNNClassifier"

    def build(self, cfg):
        m = cfg.model
        return KNearestNeighbor(k=m.k, metric=m.metric, max_memory=m.max_memory_mb * 2**20)

    def check(self, cfg, n_train):
        if cfg.model.k > n_train:
            raise ConfigError(
                f"model.k: {cfg.model.k} neighbours asked for, but the training set has {n_train} images; "
                f"use model.k <= {n_train} or more data.num_train"
            )

    def check_cv(self, cfg, points, smallest_fold_train):
        k_max = max(p.get("model.k", cfg.model.k) for p in points)
        if k_max > smallest_fold_train:
            raise ConfigError(
                f"model.k: {k_max} is larger than a fold's training set ({smallest_fold_train} images); "
                "lower the largest k or use fewer folds"
            )

    def searches_pixels(self, chain):
        """Plain pixel steps without standardisation turn every image x into s * x - m: the same
        shift for every row and a positive scale, which change no distance ranking. The bytes
        give those same neighbours exactly (no float rounding), in a quarter of the memory, and
        L1 runs on the packed-byte kernel."""
        return chain.pixels_only and not chain.standardizes

    # -- model files ---------------------------------------------------------------------

    def arrays(self, cfg, est, splits):
        return {
            "X_train": splits.train_x.reshape(len(splits.train_x), -1),
            "y_train": splits.train_y,
            "k": np.array(cfg.model.k),
            "metric": np.array(cfg.model.metric),
        }

    def check_arrays(self, path, data, D, C, pixels_dim):
        missing = [name for name in ("X_train", "y_train") if name not in data]
        if missing:
            raise ModelFileError(f"{path}: a knn model needs {', '.join(missing)}; the file is incomplete")
        X, y = data["X_train"], data["y_train"]
        # kNN keeps the training images themselves; their features are recomputed (or read from the cache).
        if X.ndim != 2 or X.shape[1] != pixels_dim or X.shape[0] < 1 or y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
            raise ModelFileError(f"{path}: X_train must be (N, {pixels_dim}) and y_train (N,) integers; found {X.shape} and {y.shape}")
        if X.dtype != np.uint8:
            raise ModelFileError(f"{path}: X_train must hold uint8 pixels, found {X.dtype}; the file is not a valid mlcv model")
        if y.min() < 0 or y.max() >= C:
            raise ModelFileError(f"{path}: y_train holds labels outside 0..{C - 1}")
        k = _scalar(path, data, "k", "iu", 1)
        if not 1 <= k <= len(y):
            raise ModelFileError(f"{path}: entry 'k' is {k}, expected 1..{len(y)} (the stored training images)")
        metric = _scalar(path, data, "metric", "U", "l2")
        if metric not in ("l2", "l1"):
            raise ModelFileError(f"{path}: entry 'metric' is {metric!r}, expected l2 or l1")
        return {"X_train": X, "y_train": y.astype(np.int64), "k": np.array(k), "metric": np.array(metric)}

    def from_arrays(self, arrays, C, rows, config_yaml):
        est = KNearestNeighbor(k=int(arrays["k"]), metric=str(arrays["metric"]), max_memory=_saved_max_memory_mb(config_yaml) * 2**20)
        return est.fit(rows(arrays["X_train"]), arrays["y_train"], num_classes=C)

    # -- scoring --------------------------------------------------------------------------

    def predict(self, est, X):
        return est.predict(X)

    def values(self, est, X):
        return est.vote_counts(X)

    def note(self, cfg, points=()):
        l1 = cfg.model.metric == "l1" or any(p.get("model.metric") == "l1" for p in points)
        return backend_note(l1)

    def estimator_note(self, est):
        return backend_note(est.metric == "l1")

    def predict_note(self, arrays, top):
        k = int(arrays["k"])
        if k >= top:
            return None
        return (f"a {k}-NN model's vote names at most {k} class{'' if k == 1 else 'es'}, so at most {k} "
                f"row{'' if k == 1 else 's'} per image; a model trained with a larger model.k ranks more")

    # -- cross-validation -------------------------------------------------------------------

    def cv_groups(self, points):
        """Points that differ only in model.k share one job: the distances are computed once and
        every k is scored from one sorted neighbour list."""
        groups = {}
        for i, point in enumerate(points):
            rest = tuple(sorted((k, json.dumps(v)) for k, v in point.items() if k != "model.k"))
            groups.setdefault(rest, []).append(i)
        return list(groups.values())

    def cv_scores(self, cfgs, X_train, y_train, X_val, y_val, C, blas_threads=None):
        est = self.build(cfgs[0]).set_params(n_jobs=blas_threads)
        est.fit(X_train, y_train, num_classes=C)
        ks = [cfg.model.k for cfg in cfgs]  # cross_validate checked them against the folds
        preds = est.predict_for_ks(X_val, ks)
        return [(float(np.mean(preds[k] == y_val)), "") for k in ks]

    # -- resources ------------------------------------------------------------------------------

    def memory_parts(self, cfg, n_train, D, C, raw_pixels, n_queries):
        # float32 distances and int64 indices per (query, training row), up to max_memory_mb
        blocks = min(cfg.model.max_memory_mb * 2**20, n_queries * n_train * 21)
        parts = [("kNN distance blocks", blocks, "a smaller model.max_memory_mb")]
        if not raw_pixels:  # float32 rows are copied, then copied again centred
            parts.append((f"kNN training copies {n_train:,} x {D:,}", 2 * n_train * D * 4, _IMAGES_FIX))
        return parts


def backend_note(uses_l1):
    """A one-line note when an L1 search fell back to the slower NumPy path, else None."""
    if not uses_l1:
        return None
    backend, reason = l1_backend()
    if backend == "numba":
        return None
    return f"the compiled L1 kernel is unavailable ({reason}); used the NumPy search, which is several times slower"


def _scalar(path, data, name, kinds, default):
    value = data.get(name)
    if value is None:
        return default
    if value.dtype.kind not in kinds or value.ndim != 0:
        what = "an integer" if kinds == "iu" else "text"
        raise ModelFileError(f"{path}: entry {name!r} is missing or not {what}; the file is not a valid mlcv model")
    return int(value) if kinds == "iu" else str(value)


def _saved_max_memory_mb(config_yaml):
    """model.max_memory_mb of the run that wrote the model (the default if it cannot be read).

    Read from the config mlcv wrote (yaml.safe_dump: top-level sections, keys indented by two)
    line by line, not parsed: a model file is input, and its text may be anything."""
    section = None
    for line in config_yaml.splitlines():
        if line and not line[0].isspace():
            section = line.split(":", 1)[0]
        elif section == "model":
            m = re.fullmatch(r"  max_memory_mb: (\d{1,9})\s*", line)
            if m and int(m.group(1)) >= 16:
                return int(m.group(1))
    return _DEFAULT_MAX_MEMORY_MB


MODEL_TYPES = (KNNModel(),)
