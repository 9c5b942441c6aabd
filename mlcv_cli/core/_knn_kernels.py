"""Compiled kNN search kernels (numba, through _kernels.jit): the L1 search, and the selection of
each query's k best from blocks of L2 keys. NumPy references: knn.KNearestNeighbor._kneighbors_l1,
knn_search.topk_rows and merge_best.
"""
from ._kernels import jit

prange = range  # numba.prange once jit compiles a kernel of this module (see _kernels.jit); range in py_func

# One source serves both signatures that callers use: uint8 rows with exact int32 sums, and
# float32 rows with float32 sums ("reassoc" lets LLVM vectorize the float reduction; every
# pair runs the same loop, so equal rows still give bit-equal distances and exact ties stay
# ties). The uint8 loop is written so that LLVM recognises it as a sum of absolute byte
# differences and emits packed SAD instructions (vpsadbw on x86).


@jit(parallel=True, fastmath={"reassoc", "nsz"})
def l1_kneighbors(Q, X, k, q_block, x_block, dist, ind):
    """The k nearest rows of X to each row of Q in L1 distance, written into dist and ind.

    Q: (N, D), X: (M, D), both uint8 or both float32, C-contiguous. dist: (N, k) int32 for
    uint8 rows, float32 for float32 rows; ind: (N, k) int64. k <= M. Each row of the result
    is sorted by (distance, training index), the same tie rule as the NumPy reference.
    Queries are split into blocks of q_block run in parallel; each block walks the training
    rows in blocks of x_block, which stay in cache while every query of the block uses them.
    """
    N, D = Q.shape
    M = X.shape[0]
    acc = dist.dtype.type
    for blk in prange(-(-N // q_block)):
        q0 = blk * q_block
        q1 = min(N, q0 + q_block)
        for x0 in range(0, M, x_block):
            x1 = min(M, x0 + x_block)
            for q in range(q0, q1):
                a = Q[q]
                worst = dist[q, k - 1]
                for t in range(x0, x1):
                    b = X[t]
                    s = acc(0)
                    for i in range(D):
                        d = acc(acc(a[i]) - acc(b[i]))
                        s = acc(s + (d if d >= 0 else acc(-d)))
                    # Rows arrive in increasing index, so the first t rows fill the list and
                    # later ones enter only when strictly closer: equal distances keep the
                    # smaller index first.
                    if t < k or s < worst:
                        pos = min(t, k - 1)
                        while pos > 0 and dist[q, pos - 1] > s:
                            dist[q, pos] = dist[q, pos - 1]
                            ind[q, pos] = ind[q, pos - 1]
                            pos -= 1
                        dist[q, pos] = s
                        ind[q, pos] = t
                        worst = dist[q, k - 1]


@jit(parallel=True, fastmath={"nnan", "nsz"})
def topk_merge(key, col_add, offset, dist, ind):
    """Merge a block of distance keys into each query's running k best (the L2 search).

    key (n, m) float32: keys of n queries against training rows offset .. offset + m - 1;
    col_add (m,) float32 is added to column t (the training rows' squared norms), exactly as
    the NumPy reference adds it, so both rank the same float32 values. dist (n, k) float32
    and ind (n, k) int64 hold each query's best so far, sorted by (key, training index);
    blocks must arrive in increasing training index starting at 0 (the first k rows fill the
    lists whatever their keys). Later rows enter only when strictly smaller, so equal keys
    keep the smaller index first: the reference's tie rule. Parallel over queries; each
    stretch of 32 keys is first checked by a vectorized minimum, so rows that cannot enter
    cost one packed add and compare. Reference: knn_search.topk_rows and merge_best.
    """
    n, m = key.shape
    k = dist.shape[1]
    for q in prange(n):
        row = key[q]
        worst = dist[q, k - 1]
        for t0 in range(0, m, 32):
            t1 = min(m, t0 + 32)
            if offset + t0 >= k:
                low = row[t0] + col_add[t0]
                for t in range(t0 + 1, t1):
                    low = min(low, row[t] + col_add[t])
                if not low < worst:
                    continue
            for t in range(t0, t1):
                s = row[t] + col_add[t]
                g = offset + t
                if g < k or s < worst:  # the insertion of l1_kneighbors
                    pos = min(g, k - 1)
                    while pos > 0 and dist[q, pos - 1] > s:
                        dist[q, pos] = dist[q, pos - 1]
                        ind[q, pos] = ind[q, pos - 1]
                        pos -= 1
                    dist[q, pos] = s
                    ind[q, pos] = g
                    worst = dist[q, k - 1]
