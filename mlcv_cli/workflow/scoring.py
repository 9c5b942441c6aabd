"""Scoring a fitted model: features through the cache, predictions in chunks with progress, metrics per split."""

from __future__ import annotations

import numpy as np

from ..core import metrics
from ..core.linear import LinearClassifier
from ..errors import ModelFileError


class Featurizer:
    """A fitted feature chain applied through the feature cache (``transform(images) -> X``).

    raw_pixels: give the uint8 pixel rows instead (see ``knn_searches_pixels``).
    """

    def __init__(self, chain, store, progress=None, raw_pixels=False):
        self.chain, self.store, self.progress, self.raw_pixels = chain, store, progress, raw_pixels

    def transform(self, images, what="images"):
        if self.raw_pixels:
            return images.reshape(len(images), -1)
        return self.store.transform(self.chain, images, self.progress, what)


def batched_predict(est, X, progress, desc, chunk=2000):
    """Predict in query chunks so a long kNN evaluation shows progress."""
    bar = progress(len(X), desc)
    out = []
    try:
        for start in range(0, len(X), chunk):
            if isinstance(est, LinearClassifier):
                # argmax of NaN scores is class 0: a wrong answer, not a result.
                out.append(np.argmax(finite_scores(est.decision_function(X[start : start + chunk])), axis=1))
            else:
                out.append(est.predict(X[start : start + chunk]))
            bar.update(min(chunk, len(X) - start))
    finally:
        bar.close()
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def finite_scores(values):
    if not np.isfinite(values).all():
        raise ModelFileError(
            "the model's scores for these images are not finite numbers (its weights overflow float32); "
            "the model file is unusable: retrain it"
        )
    return values


def split_metrics(y_true, y_pred, C):
    if y_true is None or len(y_true) == 0:
        return None
    return {
        "accuracy": float(metrics.accuracy(y_true, y_pred)),
        "n": int(len(y_true)),
        "per_class_accuracy": metrics.per_class_accuracy(y_true, y_pred, C),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, C).tolist(),
    }
