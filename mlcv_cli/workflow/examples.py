"""What a saved model shows as pictures, as arrays: its weights as images, the k-means dictionary,
HOG cells, the test split's most confident mistakes and correct answers, nearest training images.

Plots and reports draw these; nothing here draws or writes. The model type is asked what it
offers (registry plots, weight_images, values, score_kind), never compared by name.
"""

from __future__ import annotations

import numpy as np

from ..models import registry

_RANKED_AT_MOST = 5000  # test images whose per-class values are computed to rank the examples


def one_per_class(y, limit=None):
    """Indices of the first image of each class present in y, in index order (at most ``limit``)."""
    _, first = np.unique(np.asarray(y), return_index=True)
    return np.sort(first)[:limit]


def steps_of(mf):
    """[(step name, fitted extractor)] of a loaded model file's feature chain."""
    return [(name, e) for (name, _), e in zip(mf.chain.steps, mf.chain.extractors_)]


def weight_images(mf, limit=100):
    """{"images" (K, H, W, channels), "titles", "title"} of the weights that are images, or None: a model
    type that offers "weights" on raw pixels (a linear model's class templates, a network's first layer)."""
    model_type = registry.get(mf.model_type)
    if "weights" not in model_type.plots or [name for name, _ in steps_of(mf)] != ["pixels"]:
        return None
    found = model_type.weight_images(mf.arrays, (mf.image_size, mf.image_size, mf.channels))
    if found is None:
        return None
    images, titles = found
    titles = list(mf.classes) if titles is None else list(titles)
    return {"images": np.asarray(images)[:limit], "titles": titles[:limit], "total": len(images),
            "title": f"{mf.model_type} {model_type.weights_title}"}


def kmeans_filters(mf):
    """The first k-means step's dictionary in pixel space, float (K, p, p, channels), or None."""
    for name, extractor in steps_of(mf):
        if name == "kmeans":
            return np.asarray(extractor.filters())
    return None


def hog_cells(mf, images, labels):
    """The first HOG step's cell histograms of ``images`` (N, H, W, C) as hog_figure draws them, or None."""
    for name, hog in steps_of(mf):
        if name == "hog":
            return {"images": np.asarray(images), "labels": np.asarray(labels),
                    "hist": np.asarray(hog.cell_histograms(np.asarray(images)), np.float32),
                    "edge_angles": np.deg2rad(hog.orientation_centers() + 90.0),  # edges run across the gradient
                    "cell_size": hog.cell_size, "orientations": hog.orientations}
    return None


def test_images(mf, model_path):
    """(images, labels) of the model's dataset's test split (its training images when it has none)."""
    from .inputs import load_dataset
    from .saved import config_of_model

    ds = load_dataset(config_of_model(mf, model_path, None))
    return (ds.test_x, ds.test_y) if ds.test_y is not None else (ds.train_x, ds.train_y)


def score_split(run_dir, split="test"):
    """The run's saved model scored on ``split`` (workflow.evaluate's checks included): a Scored."""
    from .evaluate import evaluate

    kept = []

    def keep(scored):
        kept.append(scored)
        return []

    evaluate(run_dir, split=split, plot=keep)
    return kept[0]


def confident(scored, mistakes=12, correct=6, seed=0):
    """The most confident mistakes and correct answers of a Scored split.

    Mistakes are ranked by how far the model preferred the wrong class over the true one
    (value of the prediction minus value of the true class), correct answers by the margin of the
    prediction over the runner-up. Values are the model type's (probability, votes or score),
    computed on at most 5,000 images of the split (a seeded choice; ``ranked`` says how many).
    Returns {"score_kind", "ranked", "n", "mistakes": [example], "correct": [example]}, an example
    being {"index", "image" uint8 (H, W, C), "true", "pred", "value", "true_value", "total"}.
    """
    model_type = registry.get(scored.model_file.model_type)
    y, pred = np.asarray(scored.y), np.asarray(scored.pred)
    n = len(y)
    rows = np.arange(n) if n <= _RANKED_AT_MOST else np.sort(np.random.default_rng(seed).choice(n, _RANKED_AT_MOST, replace=False))
    values = np.asarray(model_type.values(scored.estimator, scored.X[rows]), np.float64)
    p, t = pred[rows], y[rows]
    wrong = np.flatnonzero(p != t)
    wrong = wrong[np.argsort(-(values[wrong, p[wrong]] - values[wrong, t[wrong]]), kind="stable")][:mistakes]
    right = np.flatnonzero(p == t)
    runner_up = np.sort(values[right], axis=1)[:, -2] if values.shape[1] > 1 else np.zeros(len(right))
    right = right[np.argsort(-(values[right, p[right]] - runner_up), kind="stable")][:correct]

    def example(i):
        return {"index": int(rows[i]), "image": np.asarray(scored.images[rows[i]]), "true": int(t[i]), "pred": int(p[i]),
                "value": float(values[i, p[i]]), "true_value": float(values[i, t[i]]), "total": float(values[i].sum())}

    return {"score_kind": model_type.score_kind, "ranked": len(rows), "n": n,
            "mistakes": [example(i) for i in wrong], "correct": [example(i) for i in right]}


def nearest(scored, n_queries=10, k=10):
    """Nearest training images of one query per class, for a model type that keeps its training
    images ("neighbors" in its plots); None otherwise.

    Returns {"queries" uint8 (Q, H, W, C), "query_labels" (Q,), "neighbors" uint8 (Q, k, H, W, C),
    "neighbor_labels" (Q, k), "split"}.
    """
    mf = scored.model_file
    if "neighbors" not in registry.get(mf.model_type).plots:
        return None
    est = scored.estimator
    k = min(k, len(est.y_train_))
    q = one_per_class(scored.y, n_queries)
    ind = est.kneighbors(scored.X[q], k, return_distance=False)
    train_images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
    return {"queries": np.asarray(scored.images[q]), "query_labels": np.asarray(scored.y[q]),
            "neighbors": train_images[ind], "neighbor_labels": est.y_train_[ind], "split": scored.split}
