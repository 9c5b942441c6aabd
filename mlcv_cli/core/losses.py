"""Multiclass SVM (hinge) and softmax (cross-entropy) losses with their gradients, plus regularizers.

Shapes: X (N, D) examples, W (D, C) weights, y (N,) int labels, scores (N, C).
Everything is computed in the dtype of the inputs: float64 for gradient checks, float32 for
training. Data losses are averaged over N; the penalty is added on top (not averaged).
"""
import numpy as np

PENALTIES = ("l2", "l1", "elasticnet", "none")


def _check_penalty(penalty, l1_ratio):
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}; found {penalty!r}.")
    if penalty == "elasticnet" and not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must lie in [0, 1]; found {l1_ratio!r}.")


def penalty_loss(W, reg, penalty="l2", l1_ratio=0.5):
    """Regularization loss and its (sub)gradient.

    W: (D, C). "l2": reg * sum(W**2); "l1": reg * sum(|W|) with subgradient sign(W) (0 at 0);
    "elasticnet": reg * (l1_ratio * sum|W| + (1 - l1_ratio) * sum W**2); "none": 0.
    Returns (loss: float, dW: array of shape (D, C) in W's dtype).
    """
    _check_penalty(penalty, l1_ratio)
    if penalty == "none" or reg == 0:
        return 0.0, np.zeros_like(W)
    reg = W.dtype.type(reg)
    if penalty == "l2":
        return float(reg * np.sum(W * W)), (2 * reg) * W
    if penalty == "l1":
        return float(reg * np.sum(np.abs(W))), reg * np.sign(W)
    a = W.dtype.type(l1_ratio)
    loss = reg * (a * np.sum(np.abs(W)) + (1 - a) * np.sum(W * W))
    return float(loss), reg * (a * np.sign(W) + (2 * (1 - a)) * W)


def softmax(scores):
    """Row-wise softmax of class scores (N, C), shifted by each row's maximum so exp cannot overflow: (N, C)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _check_labels(scores, y):
    y = np.asarray(y)
    if scores.ndim != 2 or y.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores of shape (N, C) and y of shape (N,); found {scores.shape} and {y.shape}."
        )
    return y


def svm_data_loss(scores, y, delta=1.0, squared=False):
    """Multiclass hinge loss: mean over i of sum_{j != y_i} max(0, s_j - s_{y_i} + delta).

    scores: (N, C); y: (N,) int. With squared=True each hinge term is squared.
    Returns (loss: float, dscores: (N, C) in the scores' dtype).
    """
    y = _check_labels(scores, y)
    N = scores.shape[0]
    rows = np.arange(N)
    margins = scores - scores[rows, y][:, None] + scores.dtype.type(delta)
    np.maximum(margins, 0, out=margins)
    margins[rows, y] = 0
    if squared:
        loss = np.sum(margins * margins) / N
        dscores = 2 * margins
    else:
        loss = np.sum(margins) / N
        dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= N
    return float(loss), dscores


def softmax_data_loss(scores, y):
    """Softmax cross-entropy, natural log: mean over i of -ln(exp(s_{y_i}) / sum_j exp(s_j)).

    Stable for huge scores: the row maximum is subtracted before exponentiating, so scores of
    1e4 give a finite loss. Uses ln, not log10: CS231n's slide shows 0.89 for the cat example,
    which is log10(1/0.13); the natural-log loss is 2.04.
    scores: (N, C); y: (N,) int. Returns (loss: float, dscores: (N, C)).
    """
    y = _check_labels(scores, y)
    N = scores.shape[0]
    rows = np.arange(N)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1)
    loss = np.sum(np.log(sums) - shifted[rows, y]) / N
    probs = exp / sums[:, None]
    probs[rows, y] -= 1
    probs /= N
    return float(loss), probs


def svm_loss(W, X, y, reg, delta=1.0, squared=False, penalty="l2", l1_ratio=0.5):
    """Multiclass SVM loss and gradient of a bias-free linear model (the lecture's form).

    W: (D, C); X: (N, D); y: (N,) int. Returns (loss: float, dW: (D, C)).
    """
    data, dscores = svm_data_loss(X @ W, y, delta, squared)
    pen, dpen = penalty_loss(W, reg, penalty, l1_ratio)
    return data + pen, X.T @ dscores + dpen


def softmax_loss(W, X, y, reg, penalty="l2", l1_ratio=0.5):
    """Softmax cross-entropy loss (natural log) and gradient of a bias-free linear model.

    W: (D, C); X: (N, D); y: (N,) int. Returns (loss: float, dW: (D, C)).
    """
    data, dscores = softmax_data_loss(X @ W, y)
    pen, dpen = penalty_loss(W, reg, penalty, l1_ratio)
    return data + pen, X.T @ dscores + dpen


LOSSES = {"svm": svm_loss, "softmax": softmax_loss}
DATA_LOSSES = {"svm": svm_data_loss, "softmax": softmax_data_loss}
