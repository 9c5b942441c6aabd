"""`mlcv evaluate`: a saved model scored on a split rebuilt exactly as in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core import metrics
from ..data.feature_cache import FeatureStore
from ..data.splits import held_out_test, split_dataset
from ..errors import DataError
from ..models import modelfile
from ..models.build import estimator_from_file, knn_backend_note, model_rows
from ..runs import fingerprints
from ..runs.rundir import RunDir
from ..system.progress import null_progress
from .inputs import data_dir_for, load_dataset
from .saved import config_of_model, locate_model
from .scoring import batched_predict, split_metrics


def evaluate(target, *, split="test", data_cfg_overrides=None, progress=None, plot=False, accept_changes=False) -> dict:
    progress = progress or null_progress
    path, warning = locate_model(target)
    mf = modelfile.load(path)
    cfg = config_of_model(mf, path, data_cfg_overrides)
    ds = load_dataset(cfg)
    run = RunDir(Path(path).parent)
    if not data_cfg_overrides and run.exists("meta.json"):
        # The model's own data: its splits are rebuilt from the saved seed, so data that
        # changed since training would put training images into the split being scored.
        recorded = run.read_meta().get("inputs")
        if isinstance(recorded, dict) and recorded.get("data") not in (None, fingerprints.of_data(ds)):
            if not accept_changes:
                raise fingerprints.InputsChanged(
                    f"{run.path}: the {ds.name} data is not the data this model was trained on (it was imported "
                    "again or changed), so its splits would not be the training-time ones; score it on other "
                    "data with --data, retrain, or go on anyway with --accept-changes"
                )
            warning = "; ".join(w for w in (warning, f"the {ds.name} data changed since training") if w)
    if list(ds.classes) != list(mf.classes):
        raise DataError(f"the data's classes {list(ds.classes)} differ from the model's {mf.classes}; evaluate on a dataset with the same classes")
    # The test split does not depend on the train/val carving, so another dataset given
    # with --data needs no matching sizes for it.
    x, y = held_out_test(cfg, ds) if split == "test" else split_dataset(cfg, ds).get(split)
    if y is None or len(y) == 0:
        others = [s for s in ("test", "val", "train") if s != split]
        raise DataError(
            f"the {ds.name} data has no {split} images for this model (data.num_val is {cfg.data.num_val}, "
            f"test split {'absent' if ds.test_y is None else 'present'}); choose --split {' or '.join(others)}"
        )
    store = FeatureStore(data_dir_for(cfg) / "features")
    est = estimator_from_file(mf, store)
    from ..data.channels import match_channels

    x = match_channels(check_image_size(x, mf.image_size), mf.channels)  # e.g. a colour folder for a grayscale model
    X = model_rows(mf, x, store, progress, split)
    pred = batched_predict(est, X, progress, f"evaluate {split}")
    result = {"model_path": str(path), "model": mf.model_type, "dataset": ds.name, "split": split, "classes": mf.classes}
    result.update(split_metrics(y, pred, len(mf.classes)))
    if warning:
        result["warning"] = warning
    note = knn_backend_note(getattr(est, "metric", None) == "l1")
    if note:
        result["note"] = note
    if plot:
        result["plots"] = _evaluation_plots(path, mf, est, X, x, y, pred, split)
    return result


def _evaluation_plots(path, mf, est, X, images, y, pred, split, n_queries=10, n_neighbors=10):
    from .. import plots

    out_dir = Path(path).parent
    made = [plots.draw_confusion(np.array(metrics.confusion_matrix(y, pred, len(mf.classes))), mf.classes,
                                  f"{mf.model_type}: {split} confusion matrix", out_dir / f"confusion-{split}.png")]
    if mf.model_type == "knn":
        k = min(n_neighbors, len(est.y_train_))
        # One query per class present (the first of each), so the rows show every class.
        _, first = np.unique(y, return_index=True)
        q = np.sort(first)[:n_queries]
        ind = est.kneighbors(X[q], k, return_distance=False)
        train_images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
        made.append(plots.plot_neighbors(images[q], train_images[ind], y[q], est.y_train_[ind], mf.classes,
                                         out_dir / f"neighbors-{split}.png", split))
    return made


def check_image_size(x, size):
    if x.shape[1:3] != (size, size):
        raise DataError(f"images are {x.shape[1]}x{x.shape[2]} but the model expects {size}x{size}; set data.image_size={size}")
    return x
