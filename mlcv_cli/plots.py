"""The figures people look at, drawn with matplotlib's Agg backend from a run's files.

Imported only when a plot is asked for (matplotlib is the optional extra mlcv[plot]).
Every PNG is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from .core.metrics import confusion_matrix
from .errors import MlcvError, UsageError
from .models import modelfile, registry
from .runs.rundir import read_run_file
from .system import atomic
from .workflow.inputs import load_dataset
from .workflow.saved import config_of_model


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        # Class names and config keys are shown as written: a '$' in one is not mathtext.
        matplotlib.rcParams["text.parse_math"] = False
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib; install it with: pip install 'mlcv[plot]'") from None
    return plt


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic.write_bytes(path, buf.getvalue())
    return str(path)


def _text_color(image, value):
    """Black or white, whichever reads on the cell colour ``image`` gives ``value`` (by its luminance)."""
    r, g, b, _ = image.cmap(image.norm(value))
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.18 else "white"


def _is_log(values):
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return bool(nums) and len(nums) == len(values) and min(nums) > 0 and max(nums) / min(nums) >= 20


# -- cross-validation ---------------------------------------------------------------------


def plot_cv(run_dir) -> str:
    """cv.png: accuracy per fold (points) for each value, mean line and +-1 std error bars;
    a heat map of the mean when two hyperparameters are swept."""
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "cv_summary.json", _cv_summary_problem)
    keys = list(summary["grid"])
    rows = sorted(summary["summary"], key=lambda s: s["point"])
    plt = pyplot()
    title = f"{summary['folds']}-fold cross-validation: {summary['model']} on {summary['dataset']}"
    swept = [k for k in keys if len({json.dumps(s["params"].get(k)) for s in rows}) > 1]
    if len(swept) == 2 and summary.get("random"):
        # Random points do not form a grid: a scatter, coloured by mean accuracy.
        kx, ky = swept
        xs = [s["params"][kx] for s in rows]
        ys = [s["params"][ky] for s in rows]
        fig, ax = plt.subplots(figsize=(7.5, 5))
        sc = ax.scatter(xs, ys, c=[100 * s["mean"] for s in rows], cmap="viridis", s=80, edgecolors="black")
        for x, y, s in zip(xs, ys, rows):
            ax.annotate(f"{100 * s['mean']:.1f}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        # The axes follow how the points were drawn: log scale when the grid's range is.
        if _is_log(summary["grid"].get(kx, xs)):
            ax.set_xscale("log")
        if _is_log(summary["grid"].get(ky, ys)):
            ax.set_yscale("log")
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        ax.grid(alpha=0.3)
        fig.colorbar(sc, ax=ax, label="mean cross-validation accuracy (%)")
    elif len(swept) == 2:
        kx, ky = swept
        xs = sorted({s["params"][kx] for s in rows}, key=_sort_key)
        ys = sorted({s["params"][ky] for s in rows}, key=_sort_key)
        grid = np.full((len(ys), len(xs)), np.nan)
        for s in rows:
            grid[ys.index(s["params"][ky]), xs.index(s["params"][kx])] = s["mean"]
        fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.8 * len(ys) + 2.5))
        im = ax.imshow(grid * 100, cmap="viridis", origin="lower", aspect="auto")
        ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", color=_text_color(im, 100 * v), fontsize=8)
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        fig.colorbar(im, ax=ax, label="mean cross-validation accuracy (%)")
    else:
        key = swept[0] if swept else (keys[0] if keys else None)
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        labels = [s["params"].get(key) if key else "default" for s in rows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels)
        order = sorted(range(len(rows)), key=lambda i: _sort_key(labels[i]))
        xs = [labels[i] if numeric else n for n, i in enumerate(order)]
        for n, (x, i) in enumerate(zip(xs, order)):
            folds = rows[i]["folds"]
            ax.scatter([x] * len(folds), np.array(folds) * 100, color="tab:blue", s=14, alpha=0.7,
                       label=f"one fold's accuracy ({summary['folds']} per value)" if n == 0 else None)
        means = np.array([rows[i]["mean"] for i in order]) * 100
        stds = np.array([rows[i]["std"] for i in order]) * 100
        ax.errorbar(xs, means, yerr=stds, color="tab:orange", capsize=4, marker="o", label="mean ± 1 std")
        if numeric and _is_log(labels):
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(order)), [str(labels[i]) for i in order], rotation=30)
        ax.set_xlabel(key or "")
        ax.set_ylabel("cross-validation accuracy (%)")
        ax.legend()
        ax.grid(alpha=0.3)
    ax.set_title(title)
    return _save(fig, run_dir / "cv.png")


def _sort_key(v):
    return (0, float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


# -- training -------------------------------------------------------------------------------


def _read_history(run_dir):
    """history.csv rows, checked: whole iterations and epochs, numbers (or blanks) elsewhere."""
    path = Path(run_dir) / "history.csv"
    try:
        rows = list(csv.DictReader(io.StringIO(read_run_file(path).decode("utf-8"), newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); the run directory is damaged") from None
    for n, row in enumerate(rows, start=2):
        for key in ("iteration", "epoch", "loss", "lr", "train_acc", "val_acc"):
            value = row.get(key)
            try:
                if key in ("iteration", "epoch", "loss") or value:
                    (int if key in ("iteration", "epoch") else float)(value)
            except (TypeError, ValueError):
                raise MlcvError(f"{path} line {n}: {key} is {value!r}, expected a number; the run directory is damaged") from None
    return rows


def _read_json(path, problem_of):
    """A JSON run file, checked by ``problem_of(doc)`` (None when it is fine)."""
    try:
        doc = json.loads(read_run_file(path))
    except (OSError, ValueError, RecursionError) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); the run directory is damaged") from None
    problem = problem_of(doc)
    if problem:
        raise MlcvError(f"{path} is not what mlcv wrote ({problem}); the run directory is damaged")
    return doc


def _metrics_problem(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
        return "expected an object with the model type"
    classes = doc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "no class names"
    splits = doc.get("splits")
    if not isinstance(splits, dict):
        return "no splits"
    features = doc.get("features")
    if features is not None and not (isinstance(features, dict) and isinstance(features.get("steps", []), list)
                                     and all(isinstance(x, str) for x in features.get("steps", []))):
        return "features is not a list of steps"
    C = len(classes)
    for name, split in splits.items():
        if split is None:
            continue
        cm = split.get("confusion_matrix") if isinstance(split, dict) else None
        if not (isinstance(cm, list) and len(cm) == C and all(isinstance(r, list) and len(r) == C for r in cm)
                and all(type(v) is int and v >= 0 for r in cm for v in r)):
            return f"the {name} confusion matrix is not {C} x {C} counts"
    return None


def _cv_summary_problem(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("grid"), dict) or not isinstance(doc.get("summary"), list):
        return "expected an object with grid and summary"
    for row in doc["summary"]:
        if not (isinstance(row, dict) and isinstance(row.get("params"), dict) and type(row.get("point")) is int
                and all(isinstance(row.get(k), (int, float)) for k in ("mean", "std"))
                and isinstance(row.get("folds"), list) and all(isinstance(a, (int, float)) for a in row["folds"])):
            return "a summary row is malformed"
    if not all(isinstance(doc.get(k), (str, int)) for k in ("folds", "model", "dataset")):
        return "folds, model or dataset missing"
    return None


def plot_loss(run_dir, rows=None) -> str:
    """loss.png: training loss per iteration, and train/val accuracy per epoch (rows: history.csv, read if None)."""
    run_dir = Path(run_dir)
    rows = _read_history(run_dir) if rows is None else rows
    if not rows:
        raise MlcvError(f"{run_dir}/history.csv is empty; nothing to plot")
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    it = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    finite = np.isfinite(loss)
    a1.plot(it[finite], loss[finite], lw=0.8)
    shown = loss[finite & (loss > 0)]
    if shown.size and shown.max() / shown.min() > 1e3:
        a1.set_yscale("log")  # a loss that blew up would flatten the rest of the curve
    if not finite.all():
        # A diverged run: say where, rather than leave a blank or unreadable panel.
        first = int(it[~finite][0])
        a1.axvline(first, color="tab:red", ls="--")
        a1.text(0.5, 0.5, f"diverged at iteration {first}\n(loss {loss[~finite][0]}): lower train.lr",
                transform=a1.transAxes, ha="center", va="center", color="tab:red", fontsize=11,
                bbox={"facecolor": "white", "edgecolor": "tab:red"})
    a1.set_xlabel("iteration")
    a1.set_ylabel("training loss (minibatch)")
    a1.set_title("loss")
    a1.grid(alpha=0.3)
    ends = [r for r in rows if r.get("train_acc")]
    if ends:
        ep = [int(r["epoch"]) for r in ends]
        a2.plot(ep, [100 * float(r["train_acc"]) for r in ends], marker="o", label="train")
        if any(r.get("val_acc") for r in ends):
            a2.plot(ep, [100 * float(r["val_acc"]) if r.get("val_acc") else np.nan for r in ends], marker="o", label="val")
        a2.legend()
    else:
        a2.text(0.5, 0.5, "no epoch finished" + (" before training diverged" if not finite.all() else ""),
                transform=a2.transAxes, ha="center", va="center", fontsize=11)
    a2.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if ends:
        a2.set_xlim(0.5, max(ep) + 0.5)
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.set_title("accuracy per epoch")
    a2.grid(alpha=0.3)
    return _save(fig, run_dir / "loss.png")


def plot_templates(mf, out_path, limit=100) -> str:
    """templates.png: the weights that are images (a loaded ModelFile), each scaled to its own range:
    a linear model's weights per class (the 'templates' picture), a network's first-layer units."""
    model_type = registry.get(mf.model_type)
    found = model_type.weight_images(mf.arrays, (mf.image_size, mf.image_size, mf.channels))
    if found is None:
        raise MlcvError(f"a {mf.model_type} model has no weights to show as images")
    images, titles = found
    titles = list(mf.classes) if titles is None else titles
    images = images[:limit]
    plt = pyplot()
    n = len(images)
    cols = min(n, 5 if n <= 20 else 10)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for c, ax in enumerate(axes.flat):
        ax.axis("off")
        if c >= n:
            continue
        img = np.asarray(images[c], np.float64)
        lo, hi = img.min(), img.max()
        _show(ax, (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))
        ax.set_title(titles[c], fontsize=9)
    fig.suptitle(f"{mf.model_type} {model_type.weights_title}")
    return _save(fig, out_path)


def plot_confusion(metrics_path, out_dir, split=None) -> str:
    """confusion-SPLIT.png (the name `mlcv evaluate --plot` uses too): the test split's confusion
    matrix (else val's)."""
    doc = _read_json(metrics_path, _metrics_problem)
    splits = doc.get("splits", {})
    split = split or next((s for s in ("test", "val", "train") if splits.get(s)), None)
    if split is None:
        raise MlcvError(f"{metrics_path} holds no evaluated split to draw")
    return draw_confusion(np.array(splits[split]["confusion_matrix"]), doc["classes"], f"{doc['model']}: {split} confusion matrix",
                          Path(out_dir) / f"confusion-{split}.png")


def _show(ax, image):
    """An (H, W, 1) image in shades of gray, an (H, W, 3) one in colour."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1 if image.dtype.kind == "f" else 255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


# Up to this many classes each cell shows its count; beyond it the matrix is a heat map
# with small labels (the evaluate command lists the largest confusions instead).
_COUNTS_UP_TO = 20


def draw_confusion(cm, classes, title, out_path):
    plt = pyplot()
    C = len(classes)
    side = 0.6 * C + 3 if C <= _COUNTS_UP_TO else 16
    fig, ax = plt.subplots(figsize=(side, side - 0.5))
    # Many classes: the diagonal would drown every confusion, so colour a log scale of counts.
    # Either way the scale starts at 0, so a pale cell means few images whatever the smallest count.
    shown = cm if C <= _COUNTS_UP_TO else np.log1p(cm)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=max(float(shown.max()), 1.0))
    fontsize = 9 if C <= _COUNTS_UP_TO else max(3, 400 // C)
    ax.set_xticks(range(C), classes, rotation=60 if C <= _COUNTS_UP_TO else 90, ha="right" if C <= _COUNTS_UP_TO else "center", fontsize=fontsize)
    ax.set_yticks(range(C), classes, fontsize=fontsize)
    if C <= _COUNTS_UP_TO:
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=_text_color(im, v))
    else:
        title += " (colour: log(1 + count))"
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="images" if C <= _COUNTS_UP_TO else "log(1 + images)")
    return _save(fig, out_path)


def plot_neighbors(queries, neighbors, query_labels, neighbor_labels, classes, out_path, split="test") -> str:
    """neighbors-<split>.png: query images in the first column, their nearest training images along the row.

    queries: uint8 (Q, H, W, C); neighbors: uint8 (Q, k, H, W, C) with C 1 or 3; labels as class indices.
    """
    plt = pyplot()
    Q, k = neighbors.shape[:2]
    fig, axes = plt.subplots(Q, k + 1, figsize=(1.1 * (k + 1), 1.15 * Q), squeeze=False)
    for i in range(Q):
        _show(axes[i, 0], queries[i])
        axes[i, 0].set_title(classes[query_labels[i]], fontsize=6, color="black")
        for j in range(k):
            same = neighbor_labels[i, j] == query_labels[i]
            _show(axes[i, j + 1], neighbors[i, j])
            axes[i, j + 1].set_title(classes[neighbor_labels[i, j]], fontsize=6, color="green" if same else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{split} images (left) and their nearest training images (green: same class)", fontsize=9)
    return _save(fig, out_path)


# -- features ---------------------------------------------------------------------------------


def plot_filters(kmeans, out_path) -> str:
    """filters.png: the k-means dictionary, each centroid a patch_size x patch_size colour patch.

    The whitening is undone for display (KMeansFeatures.filters) and every filter is
    stretched to [0, 1] on its own, like the linear models' templates.
    """
    F = np.asarray(kmeans.filters(), np.float64)  # (K, p, p, C)
    K, p = F.shape[0], F.shape[1]
    lo = F.reshape(K, -1).min(axis=1)[:, None, None, None]
    hi = F.reshape(K, -1).max(axis=1)[:, None, None, None]
    F = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
    if F.shape[3] == 1:
        F = np.repeat(F, 3, axis=3)
    cols = math.ceil(math.sqrt(K))
    rows = math.ceil(K / cols)
    mosaic = np.ones((rows * (p + 1) + 1, cols * (p + 1) + 1, 3))  # white 1-pixel gaps
    for k in range(K):
        r, c = divmod(k, cols)
        mosaic[1 + r * (p + 1): 1 + r * (p + 1) + p, 1 + c * (p + 1): 1 + c * (p + 1) + p] = F[k]
    plt = pyplot()
    side = min(12.0, max(4.0, cols * 0.25))
    fig, ax = plt.subplots(figsize=(side, side * rows / cols + 0.4))
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"k-means dictionary: {K} centroids of {p}x{p} patches (whitening undone)", fontsize=9)
    return _save(fig, out_path)


def plot_hog(hog, images, labels, classes, out_path) -> str:
    """hog.png: a few images next to their HOG cells, each cell's histogram drawn as lines
    along the edge directions (perpendicular to the gradients), longer for more votes."""
    from matplotlib.collections import LineCollection

    hist = np.asarray(hog.cell_histograms(images), np.float64)  # (N, cy, cx, B)
    angles = np.deg2rad(hog.orientation_centers() + 90.0)
    s = hog.cell_size
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.7 * n, 3.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i], interpolation="nearest")
        axes[0, i].set_title(classes[labels[i]], fontsize=8)
        h = hist[i] / (hist[i].max() or 1.0)
        cy, cx, B = h.shape
        yc, xc = (np.mgrid[0:cy, 0:cx] + 0.5) * s - 0.5
        r = 0.5 * s * h  # (cy, cx, B): half-length of each orientation's line
        dx, dy = r * np.cos(angles), r * np.sin(angles)
        x0, y0 = xc[..., None] - dx, yc[..., None] - dy
        x1, y1 = xc[..., None] + dx, yc[..., None] + dy
        segments = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], -2).reshape(-1, 2, 2)
        ax = axes[1, i]
        ax.set_facecolor("black")
        ax.add_collection(LineCollection(segments, colors="white", linewidths=1.0, alpha=0.9))
        ax.set_xlim(-0.5, images.shape[2] - 0.5)
        ax.set_ylim(images.shape[1] - 0.5, -0.5)
        ax.set_aspect("equal")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"HOG: {hog.orientations} orientations per {s}x{s}-pixel cell (line length: gradient votes)", fontsize=9)
    return _save(fig, out_path)


def plot_features(run_dir, want) -> list:
    """filters.png for a k-means step, hog.png (on a few test images) for a HOG step."""

    mf = modelfile.load(run_dir / "model.npz")
    made = []
    kmeans = [e for (name, _), e in zip(mf.chain.steps, mf.chain.extractors_) if name == "kmeans"]
    hogs = [e for (name, _), e in zip(mf.chain.steps, mf.chain.extractors_) if name == "hog"]
    if "filters" in want and kmeans:
        made.append(plot_filters(kmeans[0], run_dir / "filters.png"))
    if "hog" in want and hogs:
        cfg = config_of_model(mf, run_dir / "model.npz", None)
        ds = load_dataset(cfg)
        x, y = (ds.test_x, ds.test_y) if ds.test_y is not None else (ds.train_x, ds.train_y)
        _, first = np.unique(np.asarray(y), return_index=True)  # one image of each class
        pick = np.sort(first)[:6]
        made.append(plot_hog(hogs[0], np.asarray(x[pick]), np.asarray(y[pick]), mf.classes, run_dir / "hog.png"))
    return made


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
    rows = _read_history(run_dir) if "loss" in want and (run_dir / "history.csv").exists() else []
    if rows:
        made.append(plot_loss(run_dir, rows))
    # metrics.json names the model type, so a kNN run's stored images are never loaded here.
    doc = _read_json(run_dir / "metrics.json", _metrics_problem) if (run_dir / "metrics.json").exists() else {}
    model_type = doc.get("model")
    steps = (doc.get("features") if isinstance(doc.get("features"), dict) else {}).get("steps", ["pixels"])
    if want & {"filters", "hog"} and (run_dir / "model.npz").exists() and {"kmeans", "hog"} & set(map(str, steps)):
        made.extend(plot_features(run_dir, want))
    # Weights are images only when the features are the pixels themselves.
    if ("templates" in want and (run_dir / "model.npz").exists() and model_type in registry.names()
            and "weights" in registry.get(model_type).plots and steps == ["pixels"]):

        made.append(plot_templates(modelfile.load(run_dir / "model.npz"), run_dir / "templates.png"))
    if "confusion" in want and (run_dir / "metrics.json").exists():
        made.append(plot_confusion(run_dir / "metrics.json", run_dir))
    return made


def evaluation_plots(scored, n_queries=10, n_neighbors=10) -> list:
    """The figures of a split scored by `mlcv evaluate --plot` (a workflow.evaluate.Scored): the
    confusion matrix, and for a model that keeps its training images the nearest-neighbours grid."""
    mf, y, split = scored.model_file, scored.y, scored.split
    out_dir = scored.model_path.parent
    made = [draw_confusion(confusion_matrix(y, scored.pred, len(mf.classes)), mf.classes,
                           f"{mf.model_type}: {split} confusion matrix", out_dir / f"confusion-{split}.png")]
    if "neighbors" in registry.get(mf.model_type).plots:
        est = scored.estimator
        k = min(n_neighbors, len(est.y_train_))
        # One query per class present (the first of each), so the rows show every class.
        _, first = np.unique(y, return_index=True)
        q = np.sort(first)[:n_queries]
        ind = est.kneighbors(scored.X[q], k, return_distance=False)
        train_images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
        made.append(plot_neighbors(scored.images[q], train_images[ind], y[q], est.y_train_[ind], mf.classes,
                                   out_dir / f"neighbors-{split}.png", split))
    return made
