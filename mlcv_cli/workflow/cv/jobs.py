"""One cv job: a fold of one grid point (or of the kNN points that differ only in k), scored, and the
check that a job's result rows fit the plan wherever they come from."""

from __future__ import annotations

import math
import time

import numpy as np

from ... import config as config_mod
from ...config.features import build_chain
from ...core.model_selection import job_seed, stratified_kfold
from ...models import registry
from ...models.base import DIVERGED
from ..features import fold_features


def run_job(job: dict, plan: dict, data: tuple, blas_threads: int | None = None) -> list:
    """Score one job; returns one result row per grid point in it.

    ``data`` is (images uint8 (N, H, W, 3) or their EncodedFeatures, labels (N,),
    num_classes); plain pixels (mean image) are fitted on the fold's training part only.
    Each point is trained with the seed of (run seed, point, fold), so results do not depend
    on the executor or the order in which jobs finish.
    """
    images, labels, C = data
    cfg = config_mod.from_dict(plan["config"])
    folds = stratified_kfold(labels, cfg.cv.folds, seed=cfg.seed)
    train_idx, val_idx = folds[job["fold"]]
    # The points of a job share their features (a learned extractor's seed comes from the run's seed);
    # each point's model is trained with the job's own seed.
    base = config_mod.replace(cfg, plan["points"][job["points"][0]])
    cfgs = [config_mod.replace(cfg, {**plan["points"][i], "seed": job_seed(cfg.seed, i, job["fold"])}) for i in job["points"]]
    model_type = registry.get(cfg.model.type)
    if isinstance(images, np.ndarray) and model_type.searches_pixels(build_chain(base)):
        Xtr = images[train_idx].reshape(len(train_idx), -1)  # see ModelType.searches_pixels
        Xva = images[val_idx].reshape(len(val_idx), -1)
    else:
        Xtr, Xva = fold_features(base, images, train_idx, val_idx)
    t0 = time.perf_counter()
    scores = model_type.cv_scores(cfgs, Xtr, labels[train_idx], Xva, labels[val_idx], C, blas_threads)
    seconds = (time.perf_counter() - t0) / len(scores)
    return [_row(i, job["fold"], accuracy, seconds, note) for i, (accuracy, note) in zip(job["points"], scores)]


def is_divergence(note) -> bool:
    """True for the note of a fold whose training diverged (the model types write "diverged: ...")."""
    return isinstance(note, str) and note.startswith(DIVERGED)


def _row(point, fold, accuracy, seconds, note=""):
    return {"point": point, "fold": fold, "accuracy": accuracy, "time_s": round(seconds, 4), "note": note}


def job_rows_problem(job, rows, n_points):
    """Why ``rows`` cannot be the result of ``job`` (a plan job), or None when they can.

    Results are checked wherever they come from (a worker, a cluster, jobs.jsonl): one
    row per grid point of the job, in order, for the job's fold, with a finite accuracy
    in [0, 1] -- anything else would change the best setting without a word.
    """
    if not isinstance(rows, list) or len(rows) != len(job["points"]):
        return f"expected {len(job['points'])} result row(s)"
    for point, row in zip(job["points"], rows):
        if not isinstance(row, dict):
            return "a row is not an object"
        if row.get("point") != point or type(row.get("point")) is not int or not 0 <= point < n_points:
            return f"expected grid point {point}, found {row.get('point')!r}"
        if row.get("fold") != job["fold"] or type(row.get("fold")) is not int:
            return f"expected fold {job['fold']}, found {row.get('fold')!r}"
        acc = row.get("accuracy")
        if type(acc) not in (int, float) or not math.isfinite(acc) or not 0 <= acc <= 1:
            return f"accuracy {acc!r} is not a number in [0, 1]"
        t = row.get("time_s")
        if type(t) not in (int, float) or not math.isfinite(t) or t < 0:
            return f"time_s {t!r} is not a non-negative number"
        if not isinstance(row.get("note", ""), str):
            return "note is not text"
    return None
