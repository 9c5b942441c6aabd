"""The search machinery under knn.KNearestNeighbor: the NumPy top-k selection, the chunk plans
that keep a search within its memory budget, and the compiled kernels' side (which runs, the L1
search, their threads and a failure on this machine).
"""
import os

import numpy as np

from . import _kernels, _knn_kernels

# The compiled kernels keep each query's k best in a sorted list; entering it costs up to
# k moves, so very large k goes to the reference path, whose cost does not grow with k.
_MAX_K_COMPILED = 1024
# Queries per compiled call: bounds how long Ctrl-C waits for a running kernel.
_L1_CALL_ROWS = 2048
_compiled_failure = ""


def l1_backend():
    """Which kNN kernels run (the L1 search, and the L2 selection for k up to _MAX_K_COMPILED):
    ("numba", "") or ("numpy", why the compiled kernels cannot run)."""
    if _compiled_failure:
        return "numpy", _compiled_failure
    if not _kernels.available():
        return "numpy", _kernels.unavailable_reason()
    return "numba", ""


def compiled_search(k):
    """True when a search for k neighbours runs the compiled kernels."""
    return k <= _MAX_K_COMPILED and l1_backend()[0] == "numba"


def _l1_blocks(d, itemsize):
    """(queries, training rows) per block of the compiled L1 kernel.

    A training block of about 128 KiB stays in a core's L2 cache while every query of the
    block passes over it; 64 queries per block cut the memory traffic for training rows to
    1/64 of a pass per query, and still give every core several blocks of a 500-query batch.
    """
    return 64, max(1, (128 * 1024) // max(1, d * itemsize))


def topk_rows(key, k, offset):
    """The k smallest entries of each row of key (n, m), ties to the smaller column.

    Returns (values (n, k), column indices + offset (n, k) int64), sorted ascending by
    (value, index).
    """
    n, m = key.shape
    rows = np.arange(n)[:, None]
    if k == 1:
        # argmin returns the first minimum, which is the tie rule.
        idx = np.argmin(key, axis=1)[:, None]
    elif k >= m:
        idx = np.argsort(key, axis=1, kind="stable")[:, :k]
    else:
        idx = np.argpartition(key, k - 1, axis=1)[:, :k]
        vals = key[rows, idx]
        # argpartition picks arbitrarily among entries equal to the k-th value; rows with more
        # such entries than were picked are redone with a stable sort so the smallest indices win.
        kth = vals.max(axis=1)
        bad = np.flatnonzero(np.count_nonzero(key <= kth[:, None], axis=1) > k)
        if bad.size:
            idx[bad] = np.argsort(key[bad], axis=1, kind="stable")[:, :k]
            vals[bad] = key[bad[:, None], idx[bad]]
        order = np.lexsort((idx, vals), axis=1)
        idx = idx[rows, order]
    return key[rows, idx], idx.astype(np.int64) + offset


def merge_best(best, new, k):
    """The k best of best and new, two results of topk_rows (best None: new), in the same order."""
    # All indices in `best` come from earlier training chunks, so they are smaller than those
    # in `new`; a stable sort on values of [best, new] therefore breaks ties by index.
    if best is None:
        return new
    vals = np.concatenate([best[0], new[0]], axis=1)
    idx = np.concatenate([best[1], new[1]], axis=1)
    order = np.argsort(vals, axis=1, kind="stable")[:, :k]
    rows = np.arange(vals.shape[0])[:, None]
    return vals[rows, order], idx[rows, order]


def plan_chunks(n, m, d, bytes_per_pair, budget, min_rows=256, convert=False):
    """Query and training chunk sizes so that the temporaries stay under budget bytes.

    convert: training rows are stored as uint8 and converted to float32 one chunk at a time;
    the converted chunk takes at most a quarter of the budget.
    """
    if convert:
        m = min(m, max(1, budget // (16 * d)))
        budget -= m * 4 * d
    per_query = m * bytes_per_pair + 4 * d
    q = budget // per_query
    if q >= min(n, min_rows):
        return max(1, min(n, q)), m
    q = max(1, min(n, min_rows, budget // (4 * d + bytes_per_pair)))
    m_chunk = max(1, (budget - 4 * d * q) // (bytes_per_pair * q))
    return q, min(m, m_chunk)


def plan_l2(n, m, d, k, budget, convert):
    """(query chunk, training chunk, query rows per key block) for the compiled L2 search.

    The prepared float32 query chunk, with its k best so far (12 bytes each), takes at most a
    quarter of the budget, a converted
    training chunk (uint8 rows) another quarter, and the float32 key block the rest. Each
    training chunk is converted once per query chunk, so a query set that fits its quarter
    (10,000 CIFAR images in 512 MiB) passes over the training rows once.
    """
    quarter = max(1, budget // 4)
    q_step = max(1, min(n, quarter // (4 * d + 12 * k)))
    # The key block should hold at least 256 query rows (or all of them) for an efficient
    # matrix product; the training chunk is cut down to make room.
    rows = min(q_step, 256)
    m_step = max(1, min(m, (2 * quarter) // (4 * rows)))
    if convert:
        m_step = max(1, min(m_step, quarter // (4 * d)))
    q_block = max(1, min(q_step, (2 * quarter) // (4 * m_step)))
    return q_step, m_step, q_block


def run_compiled(run, n_jobs):
    """run() with the compiled kernels on n_jobs threads; None when they fail on this
    machine (the reason is kept, and every later search uses the NumPy reference)."""
    global _compiled_failure
    threads = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)
    previous = _kernels.set_threads(threads)
    try:
        return run()
    except _kernels.KernelFailed as exc:  # a compiler that fails on this machine: use the reference
        _compiled_failure = f"the compiled kernels failed ({exc})"
        return None
    finally:
        _kernels.set_threads(previous)


def l1_kneighbors_compiled(Q, X, k, n_jobs):
    """(distances, indices) of the k nearest rows of X (M, D) to Q (N, D) in L1 distance from
    the compiled kernel on n_jobs threads, or None when it cannot run."""
    N, D = Q.shape
    if not compiled_search(k):
        return None
    if X.dtype == np.uint8:
        if D * 255 >= 2**31:  # int32 sums could overflow
            return None
        if Q.dtype != np.uint8:
            # Queries that are bytes in another dtype are searched as bytes (same
            # distances); any other values need the float reference.
            if not (np.all(Q == np.round(Q)) and Q.min() >= 0 and Q.max() <= 255):
                return None
            Q = Q.astype(np.uint8)
        dist = np.empty((N, k), np.int32)
    else:
        dist = np.empty((N, k), np.float32)
    if not (Q.dtype == X.dtype and Q.flags.c_contiguous and Q.flags.writeable):
        Q = np.array(Q, dtype=X.dtype, order="C")  # the one array type the kernel is compiled for
    ind = np.empty((N, k), np.int64)
    q_block, x_block = _l1_blocks(D, X.itemsize)

    def run():
        for i in range(0, N, _L1_CALL_ROWS):
            j = min(N, i + _L1_CALL_ROWS)
            _knn_kernels.l1_kneighbors(Q[i:j], X, k, q_block, x_block, dist[i:j], ind[i:j])
        return True

    if run_compiled(run, n_jobs) is None:
        return None
    return dist.astype(np.float64), ind
