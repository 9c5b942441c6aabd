"""The arrays every wrapper takes: images flattened to rows, labels encoded to 0..C-1."""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import check_classification_targets


def flatten_images(X):
    # mlcv's images are (N, H, W, 3); a reshape of a C-ordered array is a view, not a copy.
    return X.reshape(X.shape[0], -1) if isinstance(X, np.ndarray) and X.ndim > 2 else X


def encode_labels(estimator, y):
    """classes_ (C,) sorted, and y as codes 0..C-1 (N,) int64."""
    check_classification_targets(y)
    estimator.classes_, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64)
