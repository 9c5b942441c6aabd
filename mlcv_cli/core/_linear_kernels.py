"""Compiled kernels of the linear models' full-batch objective (fused.py, for L-BFGS; numba,
through _kernels.jit): the loss and gradient in one pass over X, and the sum of its parts.
"""
import numpy as np

from ._kernels import jit

prange = range  # numba.prange once jit compiles a kernel of this module (see _kernels.jit); range in py_func

CLASS_TILE = 5
"""Classes per register tile of linear_loss_grad: Wt and dWt_parts have a multiple of it rows."""


@jit(parallel=True, fastmath={"reassoc", "contract", "nsz"})
def linear_loss_grad(X, Wt, b, y, svm, delta, squared, chunk, dWt_parts, db_parts, loss_parts):
    """Data loss and gradient of a linear classifier, reading each row of X from memory once.

    X (N, D) float32 or float64, C-contiguous; Wt (Cp, D) the weights transposed, in X's
    dtype, padded with zero rows to Cp, a multiple of CLASS_TILE; b (C,) float64 (C <= Cp
    classes); y (N,) int64. Scores s = X @ W accumulate in X's dtype, + b in float64; svm:
    the multiclass hinge (delta, squared) of losses.svm_data_loss, else softmax
    cross-entropy, summed over rows (not averaged: the caller divides by N), as are dscores.
    Chunk q of rows [q * chunk, (q + 1) * chunk) writes sum_r X_r^T ds_r into dWt_parts[q]
    (Cp, D), zeroed by the caller, in X's dtype (ds cast to it, as the NumPy path does), the
    sum of its dscores into db_parts[q] (C,) and its loss into loss_parts[q]. Rows go by
    blocks of 8: their scores (tiles of 4 rows x 5 classes), loss and dscores, and their
    gradient (tiles of 8 rows x 5 classes) while the block is in the L2 cache. Chunks run in
    parallel, each in a fixed order, so the parts do not depend on the thread count.
    Reference: core.fused.loss_grad_reference.
    """
    N, D = X.shape
    Cp = Wt.shape[0]
    C = b.shape[0]
    zero_row = np.zeros(D, X.dtype)
    for q in prange(loss_parts.shape[0]):
        r1 = min(N, (q + 1) * chunk)
        acc = dWt_parts[q]
        S = np.zeros((8, Cp), X.dtype)
        ds = np.zeros((8, Cp), X.dtype)
        p = np.empty(C)
        db = np.zeros(C)
        loss = 0.0
        for r in range(q * chunk, r1, 8):
            R = min(8, r1 - r)  # a short last block reads zero rows, and its missing ds are 0
            x0 = X[r]
            x1 = X[r + 1] if R > 1 else zero_row
            x2 = X[r + 2] if R > 2 else zero_row
            x3 = X[r + 3] if R > 3 else zero_row
            x4 = X[r + 4] if R > 4 else zero_row
            x5 = X[r + 5] if R > 5 else zero_row
            x6 = X[r + 6] if R > 6 else zero_row
            x7 = X[r + 7] if R > 7 else zero_row
            for c in range(0, Cp, 5):
                w0, w1, w2, w3, w4 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3], Wt[c + 4]
                for half in range(2):
                    ya, yb, yc, yd = (x0, x1, x2, x3) if half == 0 else (x4, x5, x6, x7)
                    a0 = a1 = a2 = a3 = a4 = X.dtype.type(0)
                    b0 = b1 = b2 = b3 = b4 = X.dtype.type(0)
                    c0 = c1 = c2 = c3 = c4 = X.dtype.type(0)
                    e0 = e1 = e2 = e3 = e4 = X.dtype.type(0)
                    for j in range(D):
                        v0, v1, v2, v3, v4 = w0[j], w1[j], w2[j], w3[j], w4[j]
                        t = ya[j]
                        a0 += t * v0; a1 += t * v1; a2 += t * v2; a3 += t * v3; a4 += t * v4  # noqa: E702
                        t = yb[j]
                        b0 += t * v0; b1 += t * v1; b2 += t * v2; b3 += t * v3; b4 += t * v4  # noqa: E702
                        t = yc[j]
                        c0 += t * v0; c1 += t * v1; c2 += t * v2; c3 += t * v3; c4 += t * v4  # noqa: E702
                        t = yd[j]
                        e0 += t * v0; e1 += t * v1; e2 += t * v2; e3 += t * v3; e4 += t * v4  # noqa: E702
                    k = 4 * half
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = a0, a1, a2, a3, a4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = b0, b1, b2, b3, b4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = c0, c1, c2, c3, c4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = e0, e1, e2, e3, e4
            for k in range(R):
                label = y[r + k]
                for c in range(C):
                    p[c] = np.float64(S[k, c]) + b[c]
                if svm:
                    sy = p[label]
                    total = 0.0
                    for c in range(C):
                        margin = max(p[c] - sy + delta, 0.0) if c != label else 0.0
                        loss += margin * margin if squared else margin
                        p[c] = 2.0 * margin if squared else (1.0 if margin > 0 else 0.0)
                        total += p[c]
                    p[label] = -total
                else:
                    top = p[0]
                    for c in range(1, C):
                        top = max(top, p[c])
                    sy = p[label] - top
                    total = 0.0
                    for c in range(C):
                        p[c] = np.exp(p[c] - top)
                        total += p[c]
                    loss += np.log(total) - sy
                    for c in range(C):
                        p[c] /= total
                    p[label] -= 1.0
                for c in range(C):
                    db[c] += p[c]
                    ds[k, c] = p[c]
            for k in range(R, 8):
                for c in range(C):
                    ds[k, c] = 0
            for c in range(0, Cp, 5):
                g0, g1, g2, g3, g4 = acc[c], acc[c + 1], acc[c + 2], acc[c + 3], acc[c + 4]
                d00, d01, d02, d03, d04 = ds[0, c], ds[0, c + 1], ds[0, c + 2], ds[0, c + 3], ds[0, c + 4]
                d10, d11, d12, d13, d14 = ds[1, c], ds[1, c + 1], ds[1, c + 2], ds[1, c + 3], ds[1, c + 4]
                d20, d21, d22, d23, d24 = ds[2, c], ds[2, c + 1], ds[2, c + 2], ds[2, c + 3], ds[2, c + 4]
                d30, d31, d32, d33, d34 = ds[3, c], ds[3, c + 1], ds[3, c + 2], ds[3, c + 3], ds[3, c + 4]
                d40, d41, d42, d43, d44 = ds[4, c], ds[4, c + 1], ds[4, c + 2], ds[4, c + 3], ds[4, c + 4]
                d50, d51, d52, d53, d54 = ds[5, c], ds[5, c + 1], ds[5, c + 2], ds[5, c + 3], ds[5, c + 4]
                d60, d61, d62, d63, d64 = ds[6, c], ds[6, c + 1], ds[6, c + 2], ds[6, c + 3], ds[6, c + 4]
                d70, d71, d72, d73, d74 = ds[7, c], ds[7, c + 1], ds[7, c + 2], ds[7, c + 3], ds[7, c + 4]
                for j in range(D):
                    t0, t1, t2, t3, t4, t5, t6, t7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
                    g0[j] += (t0 * d00 + t1 * d10 + t2 * d20 + t3 * d30 + t4 * d40 + t5 * d50 + t6 * d60 + t7 * d70)
                    g1[j] += (t0 * d01 + t1 * d11 + t2 * d21 + t3 * d31 + t4 * d41 + t5 * d51 + t6 * d61 + t7 * d71)
                    g2[j] += (t0 * d02 + t1 * d12 + t2 * d22 + t3 * d32 + t4 * d42 + t5 * d52 + t6 * d62 + t7 * d72)
                    g3[j] += (t0 * d03 + t1 * d13 + t2 * d23 + t3 * d33 + t4 * d43 + t5 * d53 + t6 * d63 + t7 * d73)
                    g4[j] += (t0 * d04 + t1 * d14 + t2 * d24 + t3 * d34 + t4 * d44 + t5 * d54 + t6 * d64 + t7 * d74)
        db_parts[q] = db
        loss_parts[q] = loss


@jit(parallel=True)
def sum_parts(parts, out):
    """out (D, C) float64 = the sum over q of parts[q, :C] ((Q, Cp, D), Cp >= C), transposed,
    added in the order of q (blocks of columns in parallel: the same bits whatever the
    thread count)."""
    Q, _, D = parts.shape
    C = out.shape[1]
    for blk in prange(-(-D // 512)):
        j0 = blk * 512
        n = min(D, j0 + 512) - j0
        t = np.zeros((C, n))
        for q in range(Q):
            for c in range(C):
                row = parts[q, c, j0:j0 + n]
                tc = t[c]
                for j in range(n):
                    tc[j] += row[j]
        for j in range(n):
            for c in range(C):
                out[j0 + j, c] = t[c, j]
