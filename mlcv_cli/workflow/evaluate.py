"""`mlcv evaluate`: a saved model scored on a split rebuilt exactly as in training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.channels import match_channels
from ..data.feature_cache import FeatureStore
from ..data.splits import take
from ..errors import DataError
from ..models import modelfile, registry
from ..models.build import estimator_from_file, model_rows
from ..runs.rundir import RunDir
from ..system.progress import null_progress
from .heldout import checked_split
from .inputs import data_dir_for, load_dataset
from .saved import config_of_model, locate_model
from .scoring import batched_predict, split_metrics


def evaluate(target, *, split="test", data_cfg_overrides=None, progress=None, plot=None, accept_changes=False) -> dict:
    """Score a saved model (run directory or model.npz) on ``split``; returns a summary dict.

    ``plot``: a function called with the Scored split that returns the paths of the figures it
    drew (the CLI passes plots.evaluation_plots), listed under "plots".
    """
    progress = progress or null_progress
    path, warning = locate_model(target)
    mf = modelfile.load(path)
    cfg = config_of_model(mf, path, data_cfg_overrides)
    ds = load_dataset(cfg)
    # The model's own data: its splits are rebuilt from the saved seed, and checked against the
    # ones it was trained with, so no training image is scored under the name of a held-out split.
    where, warnings, notes = checked_split(config_of_model(mf, path, None), cfg, ds, split, RunDir(Path(path).parent),
                                           accept_changes)
    if list(ds.classes) != list(mf.classes):
        raise DataError(f"the data's classes {list(ds.classes)} differ from the model's {mf.classes}; evaluate on a dataset with the same classes")
    warning = "; ".join(w for w in (warning, *warnings) if w) or None
    x, y = take(ds, where)
    if y is None or len(y) == 0:
        others = [s for s in ("test", "val", "train") if s != split]
        raise DataError(
            f"the {ds.name} data has no {split} images for this model (data.num_val is {cfg.data.num_val}, "
            f"test split {'absent' if ds.test_y is None else 'present'}); choose --split {' or '.join(others)}"
        )
    store = FeatureStore(data_dir_for(cfg) / "features")
    est = estimator_from_file(mf, store)

    x = match_channels(check_image_size(x, mf.image_size), mf.channels)  # e.g. a colour folder for a grayscale model
    X = model_rows(mf, x, store, progress, split)
    model_type = registry.get(mf.model_type)
    pred = batched_predict(model_type, est, X, progress, f"evaluate {split}")
    result = {"model_path": str(path), "model": mf.model_type, "dataset": ds.name, "split": split, "classes": mf.classes}
    result.update(split_metrics(y, pred, len(mf.classes)))
    if warning:
        result["warning"] = warning
    note = "; ".join(n for n in (*notes, model_type.estimator_note(est)) if n)
    if note:
        result["note"] = note
    if plot:
        result["plots"] = plot(Scored(Path(path), mf, est, X, x, y, pred, split))
    return result


@dataclass
class Scored:
    """A split scored by a saved model, for the figures drawn from it: rows X (N, D) of images
    (N, H, W, C), true labels y (N,) and predictions pred (N,)."""

    model_path: Path
    model_file: object
    estimator: object
    X: object
    images: object
    y: object
    pred: object
    split: str


def check_image_size(x, size):
    if x.shape[1:3] != (size, size):
        raise DataError(f"images are {x.shape[1]}x{x.shape[2]} but the model expects {size}x{size}; set data.image_size={size}")
    return x
