"""Scoring a fitted model: features through the cache, predictions in chunks with progress, metrics per split."""

from __future__ import annotations

import numpy as np

from ..core import metrics


class Featurizer:
    """A fitted feature chain applied through the feature cache (``transform(images) -> X``).

    raw_pixels: give the uint8 pixel rows instead (see ModelType.searches_pixels).
    """

    def __init__(self, chain, store, progress=None, raw_pixels=False):
        self.chain, self.store, self.progress, self.raw_pixels = chain, store, progress, raw_pixels

    def transform(self, images, what="images"):
        if self.raw_pixels:
            return images.reshape(len(images), -1)
        return self.store.transform(self.chain, images, self.progress, what)


def batched_predict(model_type, est, X, progress, desc, chunk=2000):
    """Predicted classes (N,) of ``model_type`` (a registry ModelType) for rows X, in query chunks so
    a long kNN evaluation shows progress."""
    bar = progress(len(X), desc)
    out = []
    try:
        for start in range(0, len(X), chunk):
            out.append(model_type.predict(est, X[start : start + chunk]))
            bar.update(min(chunk, len(X) - start))
    finally:
        bar.close()
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def split_metrics(y_true, y_pred, C):
    if y_true is None or len(y_true) == 0:
        return None
    return {
        "accuracy": float(metrics.accuracy(y_true, y_pred)),
        "n": int(len(y_true)),
        "per_class_accuracy": metrics.per_class_accuracy(y_true, y_pred, C),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, C).tolist(),
    }
