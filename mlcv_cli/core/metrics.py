"""Classification metrics: accuracy, confusion matrix and per-class accuracy."""
import numpy as np


def _labels(y_true, y_pred):
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length; found {y_true.shape[0]} and "
            f"{y_pred.shape[0]}. Pass one prediction per example."
        )
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """Fraction of examples where y_pred equals y_true.

    y_true, y_pred: int arrays of shape (N,). Returns a Python float; 0.0 when N == 0.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    if y_true.size == 0:
        return 0.0
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts of (true, predicted) pairs.

    y_true, y_pred: int arrays of shape (N,) with labels in [0, C).
    Returns an int64 array of shape (C, C): rows are true classes, columns predicted classes.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    C = int(num_classes)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= C):
        raise ValueError(
            f"labels must lie in [0, {C}); found range [{min(y_true.min(), y_pred.min())}, "
            f"{max(y_true.max(), y_pred.max())}]. Check num_classes."
        )
    flat = y_true.astype(np.int64) * C + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=C * C).reshape(C, C).astype(np.int64)


def per_class_accuracy(y_true, y_pred, num_classes):
    """Accuracy (recall) of each true class.

    y_true, y_pred: int arrays of shape (N,). Returns a list of length C holding a float for
    each class, or None for a class absent from y_true, so the result is JSON-ready without NaN.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    support = cm.sum(axis=1)
    return [float(cm[c, c] / support[c]) if support[c] else None for c in range(cm.shape[0])]
