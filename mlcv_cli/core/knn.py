"""Exact k-nearest-neighbour classification with L1 or L2 distance, chunked to a memory budget
(the plans, the top-k selection and the compiled search are in knn_search.py).

Shapes: training set X (M, D) with labels y (M,), queries (N, D), C classes.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _knn_kernels
from .knn_search import l1_backend  # noqa: F401  (imported from here too)
from .knn_search import (compiled_search, l1_kneighbors_compiled, merge_best, plan_chunks, plan_l2, run_compiled,
                         topk_rows)
from .metrics import accuracy
from .model_selection import ParamsMixin

METRICS = ("l2", "l1")

# L1 works on blocks of (_L1_QB queries) x (_L1_MB training rows) x D floats: about 1.5 MiB
# for D = 3072, small enough to stay in a core's L2 cache (measured fastest on CIFAR shapes).
_L1_QB = 8
_L1_MB = 16


def vote(neighbor_labels, num_classes):
    """Majority vote of each row of neighbour labels.

    neighbor_labels: int array (N, k). Returns (N,) int64. A tie between classes goes to the
    smallest label, whatever the neighbours' order.
    """
    return np.argmax(_counts(neighbor_labels, num_classes), axis=1)


def _counts(neighbor_labels, num_classes):
    # One bincount over labels offset by row * C counts every row at once.
    labels = np.asarray(neighbor_labels, dtype=np.int64)
    N = labels.shape[0]
    C = int(num_classes)
    flat = (labels + C * np.arange(N, dtype=np.int64)[:, None]).ravel()
    return np.bincount(flat, minlength=N * C).reshape(N, C)


class KNearestNeighbor(ParamsMixin):
    """k-nearest-neighbour classifier with exact, vectorized, memory-bounded search.

    Parameters
    ----------
    k : int, neighbours that vote (>= 1).
    metric : "l2" (Euclidean) or "l1" (Manhattan).
    max_memory : int, bytes that the search temporaries may use (distance blocks, sort
        indices); queries and training rows are processed in chunks to stay under it.
    n_jobs : threads for the L1 search and the L2 selection (None: os.cpu_count()); the L2
        matrix products use the BLAS threads.

    uint8 training rows (image pixels) are stored as given, 4x smaller than float32: L1
    searches them directly with exact integer sums, L2 converts one block at a time for the
    matrix product. L1 runs a compiled kernel when numba is available and falls back to the
    NumPy reference otherwise (``backend_`` says which ran; ``l1_backend()`` says why). L2
    keeps the matrix product in NumPy's BLAS and, with numba, selects each query's k best in
    one compiled pass over every block of products (no sort, no index arrays), passing
    over the training rows once per chunk of queries; without numba the NumPy selection runs.

    Neighbours are sorted by distance; equal distances are ordered by the smaller training
    index (for L2: equal float32 keys, which rows at the same true distance need not have),
    so results are deterministic. Vote ties go to the smallest class label.
    """

    def __init__(self, k=1, metric="l2", max_memory=512 * 2**20, n_jobs=None):
        self.k = k
        self.metric = metric
        self.max_memory = max_memory
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, num_classes=None):
        """Memorise the training set.

        X: (M, D) real or uint8 array (trailing dimensions, e.g. (M, 32, 32, 3), are flattened);
        uint8 is kept as uint8, anything else becomes float32. y: (M,) int labels in [0, C).
        num_classes: C; defaults to max(y) + 1 only when not given. Returns self.
        """
        self._check_params()
        X = _as_2d(X, "X")
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(
                f"y must have shape ({X.shape[0]},) to match X; found {y.shape}. Pass one label per row of X."
            )
        if X.shape[0] == 0:
            raise ValueError("X has 0 examples; kNN needs at least one training example.")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must hold integer class labels; found dtype {y.dtype}.")
        if y.min() < 0:
            raise ValueError(f"labels must be >= 0; found {y.min()}.")
        C = int(y.max()) + 1 if num_classes is None else int(num_classes)
        if y.max() >= C:
            raise ValueError(f"labels must lie in [0, {C}); found {y.max()}. Check num_classes.")
        if X.dtype == np.uint8:
            # A writable C array is what the compiled kernel takes without a copy or a
            # second compiled signature.
            self.X_train_ = X if X.flags.c_contiguous and X.flags.writeable else np.array(X, order="C")
        else:
            self.X_train_ = np.array(X, dtype=np.float32, order="C")
            if not np.isfinite(self.X_train_).all():
                raise ValueError("X contains NaN or infinite values; clean or impute them before fitting.")
        self.y_train_ = y.astype(np.int64)
        self.num_classes_ = C
        # Distances are shift-invariant: centring both sets on the training mean keeps the
        # float32 norms small, so ||a||^2 + ||b||^2 - 2ab does not cancel away the precision
        # (raw 0..255 pixels, or data offset by 1e4, would). For L1 the shift is rounded, so
        # integer-valued data stay integer-valued and all float32 sums stay exact (< 2^24).
        shift = self.X_train_.mean(axis=0, dtype=np.float64)
        if self.metric == "l1":
            shift = np.round(shift)
        self._shift = shift.astype(np.float32)
        # float32 training rows are kept centred for the reference paths; uint8 rows are
        # centred one block at a time (_search_rows), so the model stays uint8-sized.
        self._X_search = self.X_train_ - self._shift if self.X_train_.dtype == np.float32 else None
        # Squared norms (L2) or sums (L1) of the centred training rows. uint8 rows would need a
        # conversion pass of their own, so they are computed by the first search that converts
        # them anyway (the compiled L1 kernel never needs them).
        self._fit_metric = self.metric
        self._sum_train = None if self._X_search is None else self._row_sums(self._X_search)
        if self._sum_train is not None and not np.isfinite(self._sum_train).all():
            raise ValueError(
                "X has values too large for float32 distances (squared norms overflow); "
                "scale the data down (e.g. standardize it) before fitting."
            )
        return self

    def _row_sums(self, rows):
        """Per-row squared norms (L2) or sums (L1) of centred float32 rows: float32 (n,)."""
        if self._fit_metric == "l2":
            return np.einsum("md,md->m", rows, rows)
        return rows.sum(axis=1)

    def _train_sums(self):
        """_row_sums of every centred training row, computed on first use."""
        if self._sum_train is None:
            M, step = self.X_train_.shape[0], 4096
            sums = np.empty(M, np.float32)
            for j in range(0, M, step):
                sums[j:j + step] = self._row_sums(self._search_rows(j, j + step))
            self._sum_train = sums
        return self._sum_train

    def _search_rows(self, start, stop):
        """Training rows start:stop, centred, as float32 (a view when stored as float32)."""
        if self._X_search is not None:
            return self._X_search[start:stop]
        return np.subtract(self.X_train_[start:stop], self._shift, dtype=np.float32)

    # ------------------------------------------------------------------ search
    def kneighbors(self, X, k=None, return_distance=True):
        """The k nearest training examples of each query.

        X: (N, D) queries. k: defaults to self.k. Returns (distances (N, k) float64,
        indices (N, k) int64 into the training set), sorted by distance ascending, ties by
        smaller training index. With ``return_distance=False`` only the indices are returned
        (voting needs no distances, which saves recomputing them).
        """
        self._check_fitted()
        k = self.k if k is None else k
        M = self.X_train_.shape[0]
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1; found {k!r}.")
        if k > M:
            raise ValueError(
                f"k={k} is larger than the number of training examples ({M}); use k <= {M} "
                "or train on more data."
            )
        Q = _as_2d(X, "X")
        if Q.shape[1] != self.X_train_.shape[1]:
            raise ValueError(
                f"X has {Q.shape[1]} features per example but the model was fitted on "
                f"{self.X_train_.shape[1]}; preprocess queries like the training data."
            )
        if Q.dtype != np.uint8 and not np.isfinite(Q).all():
            raise ValueError("X contains NaN or infinite values; clean or impute them before searching.")
        if Q.shape[0] == 0:
            ind = np.empty((0, k), np.int64)
            return (np.empty((0, k)), ind) if return_distance else ind
        if self._fit_metric == "l2":
            dist, ind = self._kneighbors_l2(Q, int(k), return_distance)
        else:
            found = l1_kneighbors_compiled(Q, self.X_train_, int(k), self.n_jobs)
            self.backend_ = "numpy" if found is None else "numba"
            dist, ind = self._kneighbors_l1(Q, int(k)) if found is None else found
        return (dist, ind) if return_distance else ind

    def _bytes_per_pair(self, k):
        # float32 distance + (for k > 1) int64 argpartition indices, a comparison mask and slack.
        return 5 if k == 1 else 21

    def _kneighbors_l2(self, Q, k, exact_distances=True):
        N, D = Q.shape
        M = self.X_train_.shape[0]
        convert = self._X_search is None
        compiled = compiled_search(k)
        if compiled:
            q_step, m_step, q_block = plan_l2(N, M, D, k, int(self.max_memory), convert)
        else:
            q_step, m_step = plan_chunks(N, M, D, self._bytes_per_pair(k), int(self.max_memory), convert=convert)
        self.backend_ = "numba" if compiled else "numpy"
        dist = np.empty((N, k))
        ind = np.empty((N, k), np.int64)
        for i in range(0, N, q_step):
            # -2 is folded into the queries (exact in binary) to save a pass over the block.
            q = np.subtract(Q[i:i + q_step], self._shift, dtype=np.float32)
            if not np.isfinite(np.einsum("nd,nd->n", q, q)).all():
                raise ValueError("X has values too large for float32 distances (squared norms overflow); "
                                 "scale the queries like the training data.")
            q *= np.float32(-2)
            if compiled:
                found = self._l2_select_compiled(q, k, m_step, q_block)
                if found is None:  # the kernel failed: start again on the reference path
                    return self._kneighbors_l2(Q, k, exact_distances)
                ind[i:i + q_step] = found
            else:
                best = None
                for j in range(0, M, m_step):
                    key = q @ self._search_rows(j, j + m_step).T
                    key += self._train_sums()[j:j + m_step]
                    best = merge_best(best, topk_rows(key, min(k, key.shape[1]), j), k)
                ind[i:i + q_step] = best[1]
            if not exact_distances:
                continue
            # The expanded form ranks well but loses absolute precision near 0, so the k
            # reported distances are recomputed directly from the differences (N * k * D work).
            q *= np.float32(-0.5)
            for c in range(k):
                diff = q - (self.X_train_[ind[i:i + q_step, c]] - self._shift)
                dist[i:i + q_step, c] = np.sqrt(np.einsum("nd,nd->n", diff, diff, dtype=np.float64))
        return dist, ind

    def _l2_select_compiled(self, q, k, m_step, q_block):
        """Indices (n, k) of the k smallest keys for the prepared queries q (-2 (x - shift)),
        each training chunk converted once and every key block merged by the compiled kernel;
        None when the kernel cannot run (the caller then uses the reference)."""
        n = q.shape[0]
        M = self.X_train_.shape[0]
        best_d = np.full((n, k), np.inf, np.float32)
        best_i = np.zeros((n, k), np.int64)
        key = np.empty((min(q_block, n), min(m_step, M)), np.float32)
        # Filled chunk by chunk below from the rows converted for the search, and published
        # only once complete; decided once, so another thread's search cannot change it midway.
        fill = self._sum_train is None
        sums = np.empty(M, np.float32) if fill else self._sum_train

        def run():
            for j in range(0, M, m_step):
                rows = self._search_rows(j, j + m_step)
                add = sums[j:j + m_step]
                if fill:
                    add[:] = self._row_sums(rows)
                for a in range(0, n, q_block):
                    block = key[:min(q_block, n - a), :rows.shape[0]]
                    np.matmul(q[a:a + q_block], rows.T, out=block)
                    _knn_kernels.topk_merge(block, add, j, best_d[a:a + q_block], best_i[a:a + q_block])
            return True

        if run_compiled(run, self.n_jobs) is None:
            return None
        if fill:
            self._sum_train = sums
        return best_i

    def _kneighbors_l1(self, Q, k):
        """The NumPy reference (and fallback) L1 search."""
        N, D = Q.shape
        M = self.X_train_.shape[0]
        jobs = (os.cpu_count() or 1) if self.n_jobs is None else int(self.n_jobs)
        jobs = max(1, min(jobs, N))
        block = _L1_QB * _L1_MB * D * 4
        budget = max(1, (int(self.max_memory) - jobs * block) // jobs)
        q_step, m_step = plan_chunks(N, M, D, self._bytes_per_pair(k), budget, min_rows=_L1_QB,
                                     convert=self._X_search is None)
        q_step = min(q_step, -(-N // jobs))  # every thread gets work
        dist = np.empty((N, k))
        ind = np.empty((N, k), np.int64)
        ones = np.ones(D, np.float32)
        sums = self._train_sums()

        def run(i):
            q = np.subtract(Q[i:i + q_step], self._shift, dtype=np.float32)
            sum_q = q.sum(axis=1)
            buf = np.empty((_L1_QB, _L1_MB, D), np.float32)
            best = None
            for j in range(0, M, m_step):
                Xt = self._search_rows(j, j + m_step)
                # |a - b| = a + b - 2 min(a, b): one elementwise pass (min) instead of two
                # (subtract, abs); the row sums of the minima are a matrix-vector product.
                smin = np.empty((q.shape[0], Xt.shape[0]), np.float32)
                for a in range(0, q.shape[0], _L1_QB):
                    qa = q[a:a + _L1_QB, None, :]
                    for b in range(0, Xt.shape[0], _L1_MB):
                        xb = Xt[b:b + _L1_MB]
                        out = buf[:qa.shape[0], :xb.shape[0]]
                        np.minimum(qa, xb, out=out)
                        np.matmul(out, ones, out=smin[a:a + _L1_QB, b:b + _L1_MB])
                key = smin
                key *= np.float32(-2)
                key += sum_q[:, None]
                key += sums[j:j + m_step]
                best = merge_best(best, topk_rows(key, min(k, key.shape[1]), j), k)
            dist[i:i + q_step] = np.maximum(best[0], 0)
            ind[i:i + q_step] = best[1]

        starts = range(0, N, q_step)
        if jobs == 1:
            for i in starts:
                run(i)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(run, starts))
        return dist, ind

    # ------------------------------------------------------------------ prediction
    def vote_counts(self, X, k=None):
        """Counts of each class among the k nearest neighbours: (N, C) int64."""
        ind = self.kneighbors(X, k, return_distance=False)
        return _counts(self.y_train_[ind], self.num_classes_)

    def predict(self, X):
        """Majority label among the k nearest neighbours of each query: (N,) int64.

        A vote tie goes to the smallest label among the tied classes.
        """
        ind = self.kneighbors(X, return_distance=False)
        return vote(self.y_train_[ind], self.num_classes_)

    def predict_for_ks(self, X, ks):
        """Predictions for several k from one search: dict k -> (N,) int64.

        Distances are computed once and neighbours sorted up to max(ks); each k votes on the
        first k of that list, so the result equals separate predict calls with each k.
        """
        ks = [int(k) for k in ks]
        if not ks:
            raise ValueError("ks is empty; give at least one k.")
        ind = self.kneighbors(X, max(ks), return_distance=False)
        labels = self.y_train_[ind]
        return {k: vote(labels[:, :k], self.num_classes_) for k in ks}

    def score(self, X, y):
        """Accuracy of predict(X) against y (N,)."""
        return accuracy(y, self.predict(X))

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1; found {self.k!r}.")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; found {self.metric!r}.")
        if (isinstance(self.max_memory, bool) or not isinstance(self.max_memory, (int, float, np.number))
                or not self.max_memory >= 1):
            raise ValueError(f"max_memory must be a positive number of bytes; found {self.max_memory!r}.")
        if self.n_jobs is not None and (not isinstance(self.n_jobs, (int, np.integer)) or self.n_jobs < 1):
            raise ValueError(f"n_jobs must be None or an integer >= 1; found {self.n_jobs!r}.")

    def _check_fitted(self):
        if not hasattr(self, "X_train_"):
            raise ValueError("this KNearestNeighbor is not fitted yet; call fit(X, y) first.")


def _as_2d(X, name):
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be 2-D (N, D); found shape {X.shape}. Use X.reshape(1, -1) for one example."
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) or np.iscomplexobj(X):
        raise ValueError(f"{name} must hold real numbers; found dtype {X.dtype}.")
    return X.reshape(X.shape[0], int(np.prod(X.shape[1:])))
