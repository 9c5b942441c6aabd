"""The objective and gradient of a linear classifier on all of X in one pass over X, for
L-BFGS (whose every evaluation reads the whole data matrix): the scores, the loss and the
gradient of a block of rows are formed while the block is in the cache, so X travels from
memory once per evaluation instead of twice (X @ W, then X.T @ dscores).

The compiled kernel (_linear_kernels.linear_loss_grad) splits the rows into chunks of a size
that depends only on N, and the chunks' parts are summed in chunk order: the result is the same
bits on every run and whatever the thread count, so an L-BFGS run resumes bit for bit. It
differs from loss_grad_reference (the NumPy path, also the fallback) by rounding only. Above
MAX_CLASSES classes the NumPy path runs: its products are then no longer skinny.
"""
import numpy as np

from . import _kernels, _linear_kernels
from .losses import DATA_LOSSES, penalty_loss

CHUNKS = 32
"""Row chunks of the compiled evaluation (fewer for small N): enough for the cores to share
the work evenly; each holds a (C, D) part of dW, summed at the end."""
MIN_CHUNK_ROWS = 256
MAX_CLASSES = 50
"""Above this many classes the NumPy path runs: its products are no longer skinny and run near
the peak rate, while the kernel's per-chunk dW parts outgrow the L2 cache (measured on 20,000 x
3,072: the kernel took 0.5x to 0.9x the NumPy path's time from 2 to 50 classes, 1.3x at 100)."""


def chunk_rows(N):
    """Rows per chunk for N examples: a multiple of 8, from N alone (never the thread count)."""
    rows = max(MIN_CHUNK_ROWS, -(-N // CHUNKS))
    return -(-rows // 8) * 8


def loss_grad(theta, X, y, dt, *, loss, reg, penalty="l2", l1_ratio=0.5, delta=1.0, squared_hinge=False):
    """Objective and float64 gradient of a linear classifier at theta = [W.ravel(), b].

    theta (D*C + C,) float64; X (N, D) in dtype dt; y (N,) int labels; loss "svm" or
    "softmax" with delta and squared_hinge for "svm"; the penalty (penalty, reg, l1_ratio)
    on W as losses.penalty_loss. The products with X run in dt; the loss from the scores on
    runs in float64. Returns (objective float, gradient (D*C + C,) float64).
    """
    hyper = dict(loss=loss, reg=reg, penalty=penalty, l1_ratio=l1_ratio, delta=delta, squared_hinge=squared_hinge)
    N, D = X.shape
    C = theta.shape[0] // (D + 1)
    y = np.asarray(y)
    # The kernel indexes by label unchecked: labels out of range go to the NumPy path, which raises.
    if (_kernels.available() and X.dtype == dt and X.dtype in (np.float32, np.float64)
            and X.flags.c_contiguous and N > 0 and D > 0 and C <= MAX_CLASSES
            and y.shape == (N,) and np.issubdtype(y.dtype, np.integer) and 0 <= y.min() and y.max() < C):
        try:
            return _loss_grad_compiled(theta, X, y, **hyper)
        except _kernels.KernelFailed:
            pass  # no compiler here: the NumPy path gives the same objective
    return loss_grad_reference(theta, X, y, dt, **hyper)


def _loss_grad_compiled(theta, X, y, loss, reg, penalty, l1_ratio, delta, squared_hinge):
    N, D = X.shape
    C = theta.shape[0] // (D + 1)
    W64 = theta[:D * C].reshape(D, C)
    rows = chunk_rows(N)
    chunks = -(-N // rows)
    Cp = -(-C // _linear_kernels.CLASS_TILE) * _linear_kernels.CLASS_TILE
    Wt = np.zeros((Cp, D), X.dtype)
    Wt[:C] = W64.T
    dWt_parts = np.zeros((chunks, Cp, D), X.dtype)
    db_parts = np.zeros((chunks, C))
    loss_parts = np.zeros(chunks)
    previous = _kernels.set_chunk_size(1)  # chunks handed out one at a time: same parts, any order
    try:
        _linear_kernels.linear_loss_grad(X, Wt, np.ascontiguousarray(theta[D * C:]), np.asarray(y, np.int64),
                                         loss == "svm", float(delta), bool(squared_hinge), rows,
                                         dWt_parts, db_parts, loss_parts)
    finally:
        _kernels.set_chunk_size(previous)
    dW = np.empty((D, C))
    _linear_kernels.sum_parts(dWt_parts, dW)
    dW /= N
    pen, dpen = penalty_loss(W64, reg, penalty, l1_ratio)
    dW += dpen
    return float(loss_parts.sum() / N) + pen, np.concatenate([dW.ravel(), db_parts.sum(axis=0) / N])


def loss_grad_reference(theta, X, y, dt, *, loss, reg, penalty="l2", l1_ratio=0.5, delta=1.0, squared_hinge=False):
    """The NumPy path of ``loss_grad`` (same arguments): X @ W, the losses of losses.py,
    then X.T @ dscores, two passes over X."""
    D = X.shape[1]
    C = theta.shape[0] // (D + 1)
    W64 = theta[:D * C].reshape(D, C)
    with np.errstate(over="ignore", invalid="ignore"):
        scores = (X @ W64.astype(dt)).astype(np.float64)
        scores += theta[D * C:]
        if loss == "svm":
            data, dscores = DATA_LOSSES["svm"](scores, y, delta, squared_hinge)
        else:
            data, dscores = DATA_LOSSES["softmax"](scores, y)
        pen, dpen = penalty_loss(W64, reg, penalty, l1_ratio)
        dW = (X.T @ dscores.astype(dt)).astype(np.float64)
    dW += dpen
    return data + pen, np.concatenate([dW.ravel(), dscores.sum(axis=0)])
