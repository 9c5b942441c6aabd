"""The figures people look at, drawn with matplotlib's Agg backend from a run's files.

Imported only when a plot or report is asked for (matplotlib is the optional extra mlcv[plot]).
Each figure is built once (cv.py, training.py, features.py, runs.py: functions returning a
matplotlib figure) and either written here as a PNG into the run directory, atomically, or
turned into PNG or SVG bytes for a report (``figure_bytes``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.metrics import confusion_matrix
from ..errors import MlcvError
from ..runs.files import read_cv_summary, read_history, read_metrics
from ..system import atomic
from ..workflow import examples
from .backend import encode, pyplot
from .cv import cv_figure
from .features import filters_figure, hog_figure, neighbors_figure
from .training import confusion_figure, loss_figure, weights_figure

__all__ = ["draw_confusion", "evaluation_plots", "figure_bytes", "plot_confusion", "plot_cv", "plot_features",
           "plot_filters", "plot_hog", "plot_loss", "plot_neighbors", "plot_run", "plot_templates", "pyplot"]


def figure_bytes(fig, fmt="png") -> bytes:
    """A figure from this package as PNG or SVG bytes (the figure is closed)."""
    return encode(fig, fmt)


def _save(fig, path):
    atomic.write_bytes(path, encode(fig, "png"))
    return str(path)


# -- cross-validation ---------------------------------------------------------------------


def plot_cv(run_dir) -> str:
    """cv.png: accuracy per fold and mean +- std per value of one key; a heat map of the mean for two
    keys (one per setting of the others for more); every swept key labelled, fixed ones in the title."""
    run_dir = Path(run_dir)
    return _save(cv_figure(read_cv_summary(run_dir / "cv_summary.json")), run_dir / "cv.png")


# -- training -------------------------------------------------------------------------------


def plot_loss(run_dir, rows=None) -> str:
    """loss.png: training loss per iteration with its per-epoch means, and train/val accuracy per
    epoch (rows: history.csv, read if None)."""
    run_dir = Path(run_dir)
    rows = read_history(run_dir) if rows is None else rows
    if not rows:
        raise MlcvError(f"{run_dir}/history.csv is empty; nothing to plot")
    return _save(loss_figure(rows), run_dir / "loss.png")


def plot_templates(mf, out_path, limit=100) -> str:
    """templates.png: the weights that are images (a loaded ModelFile), each scaled to its own range:
    a linear model's weights per class (the 'templates' picture), a network's first-layer units."""
    found = examples.weight_images(mf, limit)
    if found is None:
        raise MlcvError(f"a {mf.model_type} model on these features has no weights to show as images")
    return _save(weights_figure(found["images"], found["titles"], found["title"]), out_path)


def plot_confusion(metrics_path, out_dir, split=None) -> str:
    """confusion-SPLIT.png (the name `mlcv evaluate --plot` uses too): the test split's confusion
    matrix (else val's)."""
    doc = read_metrics(metrics_path)
    splits = doc.get("splits", {})
    split = split or next((s for s in ("test", "val", "train") if splits.get(s)), None)
    if split is None:
        raise MlcvError(f"{metrics_path} holds no evaluated split to draw")
    return draw_confusion(np.array(splits[split]["confusion_matrix"]), doc["classes"], f"{doc['model']}: {split} confusion matrix",
                          Path(out_dir) / f"confusion-{split}.png")


def draw_confusion(cm, classes, title, out_path):
    return _save(confusion_figure(np.asarray(cm), classes, title), out_path)


def plot_neighbors(queries, neighbors, query_labels, neighbor_labels, classes, out_path, split="test") -> str:
    """neighbors-<split>.png: query images in the first column, their nearest training images along the row."""
    return _save(neighbors_figure(queries, neighbors, query_labels, neighbor_labels, classes, split), out_path)


# -- features ---------------------------------------------------------------------------------


def plot_filters(kmeans, out_path) -> str:
    """filters.png: the k-means dictionary, each centroid a patch_size x patch_size colour patch."""
    return _save(filters_figure(kmeans.filters()), out_path)


def plot_hog(cells, classes, out_path) -> str:
    """hog.png: one image per class next to its HOG cells (cells: workflow.examples.hog_cells)."""
    return _save(hog_figure(cells, classes, len(classes)), out_path)


def plot_features(run_dir, want) -> list:
    """filters.png for a k-means step, hog.png (one test image per class) for a HOG step."""
    from ..models import modelfile

    mf = modelfile.load(run_dir / "model.npz")
    made = []
    filters = examples.kmeans_filters(mf) if "filters" in want else None
    if filters is not None:
        made.append(_save(filters_figure(filters), run_dir / "filters.png"))
    if "hog" in want and "hog" in [name for name, _ in examples.steps_of(mf)]:
        x, y = examples.test_images(mf, run_dir / "model.npz")
        pick = examples.one_per_class(y, _HOG_CLASSES)
        cells = examples.hog_cells(mf, np.asarray(x[pick]), np.asarray(y[pick]))
        made.append(plot_hog(cells, mf.classes, run_dir / "hog.png"))
    return made


_HOG_CLASSES = 20  # hog.png shows one image of each of the first 20 classes (CIFAR-100 has 100)


# -- a whole run --------------------------------------------------------------------------


def plot_run(run_dir, which=None) -> list:
    """(Re)draw every plot that the run directory's files allow; returns the PNG paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MlcvError(f"{run_dir} is not a run directory")
    made = []
    want = set(which or ("cv", "loss", "templates", "confusion", "filters", "hog"))
    if "cv" in want and (run_dir / "cv_summary.json").exists():
        made.append(plot_cv(run_dir))
    rows = read_history(run_dir) if "loss" in want and (run_dir / "history.csv").exists() else []
    if rows:
        made.append(plot_loss(run_dir, rows))
    # metrics.json names the model type and the features, so a kNN run's stored images are never loaded here.
    doc = read_metrics(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    steps = set(map(str, (doc.get("features") or {}).get("steps", ["pixels"])))
    if want & {"filters", "hog"} and (run_dir / "model.npz").exists() and {"kmeans", "hog"} & steps:
        made.extend(plot_features(run_dir, want))
    if "templates" in want and (run_dir / "model.npz").exists() and _offers_weights(doc.get("model")) and steps == {"pixels"}:
        from ..models import modelfile

        mf = modelfile.load(run_dir / "model.npz")
        if examples.weight_images(mf) is not None:
            made.append(plot_templates(mf, run_dir / "templates.png"))
    if "confusion" in want and (run_dir / "metrics.json").exists():
        made.append(plot_confusion(run_dir / "metrics.json", run_dir))
    return made


def _offers_weights(model_type):
    from ..models import registry

    return model_type in registry.names() and "weights" in registry.get(model_type).plots


def evaluation_plots(scored, n_queries=10, n_neighbors=10) -> list:
    """The figures of a split scored by `mlcv evaluate --plot` (a workflow.evaluate.Scored): the
    confusion matrix, and for a model that keeps its training images the nearest-neighbours grid."""
    mf, split = scored.model_file, scored.split
    out_dir = scored.model_path.parent
    made = [draw_confusion(confusion_matrix(scored.y, scored.pred, len(mf.classes)), mf.classes,
                           f"{mf.model_type}: {split} confusion matrix", out_dir / f"confusion-{split}.png")]
    near = examples.nearest(scored, n_queries, n_neighbors)
    if near is not None:
        made.append(plot_neighbors(near["queries"], near["neighbors"], near["query_labels"], near["neighbor_labels"],
                                   mf.classes, out_dir / f"neighbors-{split}.png", split))
    return made
