"""The compiled L1 kernel against brute force and against the NumPy reference search."""

import numpy as np
import pytest

from mlcv_cli.core import _kernels, _knn_kernels
from mlcv_cli.core import knn as knn_mod
from mlcv_cli.core import knn_search
from mlcv_cli.core.knn import KNearestNeighbor


def brute_l1(Q, X, k):
    """Every distance in float64, then a stable sort: equal distances keep index order."""
    full = np.abs(Q[:, None, :].astype(np.float64) - X[None, :, :].astype(np.float64)).sum(axis=2)
    idx = np.argsort(full, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(full, idx, axis=1), idx


def make(kind, n, m, d, seed):
    rng = np.random.default_rng(seed)
    if kind == "bytes":
        return rng.integers(0, 256, (n, d), dtype=np.uint8), rng.integers(0, 256, (m, d), dtype=np.uint8)
    if kind == "tied_bytes":  # two values per pixel: most distances are shared by many rows
        X = rng.integers(0, 2, (m, d), dtype=np.uint8) * np.uint8(255)
        X[m // 2:] = X[: m - m // 2]  # and every row of the second half repeats one of the first
        return rng.integers(0, 2, (n, d), dtype=np.uint8) * np.uint8(255), X
    if kind == "floats":
        return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((m, d)).astype(np.float32)
    # float32 multiples of 1/4: sums are exact, so exact ties stay exact ties
    Q = (rng.integers(-3, 4, (n, d)) / 4).astype(np.float32)
    X = (rng.integers(-3, 4, (m, d)) / 4).astype(np.float32)
    X[m // 2:] = X[: m - m // 2]
    return Q, X


# (queries, training rows, dimensions, k, queries per block, training rows per block): one
# query, one training row, k equal to the training set, sizes that are no multiple of a block.
SHAPES = [(1, 1, 1, 1, 64, 1), (1, 37, 5, 37, 64, 4), (67, 131, 19, 5, 8, 16), (130, 50, 3, 50, 64, 7), (9, 300, 70, 12, 4, 33)]


@pytest.mark.parametrize("kind", ["bytes", "tied_bytes", "floats", "tied_floats"])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_equals_brute_force(kind, threads):
    assert _kernels.available(), _kernels.unavailable_reason()
    previous = _kernels.set_threads(threads)
    try:
        for n, m, d, k, q_block, x_block in SHAPES:
            Q, X = make(kind, n, m, d, seed=n * m + d)
            dist = np.empty((n, k), np.int32 if X.dtype == np.uint8 else np.float32)
            ind = np.empty((n, k), np.int64)
            _knn_kernels.l1_kneighbors(Q, X, k, q_block, x_block, dist, ind)
            ref_d, ref_i = brute_l1(Q, X, k)
            np.testing.assert_array_equal(ind, ref_i, err_msg=f"{kind} {n}x{m}x{d} k={k}")
            if kind == "floats":
                np.testing.assert_allclose(dist, ref_d, rtol=1e-5)
            else:
                np.testing.assert_array_equal(dist, ref_d)
    finally:
        _kernels.set_threads(previous)


@pytest.mark.parametrize("kind", ["bytes", "tied_bytes", "floats", "tied_floats"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_compiled_search_equals_numpy_reference(kind, n_jobs):
    for n, m, d, k, _, _ in SHAPES:
        Q, X = make(kind, n, m, d, seed=7 + n + m)
        est = KNearestNeighbor(k=k, metric="l1", n_jobs=n_jobs, max_memory=50_000).fit(X, np.arange(m) % 3, 3)
        d_c, i_c = est.kneighbors(Q)
        assert est.backend_ == "numba"
        d_r, i_r = est._kneighbors_l1(Q, k)
        np.testing.assert_array_equal(i_c, i_r)
        np.testing.assert_allclose(d_c, d_r, rtol=1e-5, atol=1e-3)
        if kind != "floats":
            np.testing.assert_array_equal(d_c, d_r)


def test_strided_read_only_and_other_dtype_queries():
    Q, X = make("floats", 40, 60, 9, seed=5)
    est = KNearestNeighbor(k=3, metric="l1").fit(X, np.zeros(60, int), 1)
    frozen = Q.astype(np.float64)
    frozen.setflags(write=False)
    for queries in (Q[::3], Q[:, ::-1][:, ::-1], frozen, Q.T.copy().T):
        _, ind = est.kneighbors(queries)
        assert est.backend_ == "numba"
        np.testing.assert_array_equal(ind, brute_l1(np.asarray(queries, np.float32), X, 3)[1])


def test_the_reference_runs_when_numba_is_unavailable(monkeypatch):
    Q, X = make("tied_bytes", 20, 90, 12, seed=3)
    y = np.arange(90) % 4
    compiled = KNearestNeighbor(k=6, metric="l1").fit(X, y, 4)
    expected = compiled.kneighbors(Q)
    monkeypatch.setattr(_kernels, "available", lambda: False)
    monkeypatch.setattr(_kernels, "unavailable_reason", lambda: "MLCV_NO_JIT is set")
    assert knn_mod.l1_backend() == ("numpy", "MLCV_NO_JIT is set")
    fallback = KNearestNeighbor(k=6, metric="l1").fit(X, y, 4)
    got = fallback.kneighbors(Q)
    assert fallback.backend_ == "numpy"
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


def test_large_k_and_non_byte_queries_use_the_reference(monkeypatch):
    Q, X = make("bytes", 5, 40, 8, seed=4)
    est = KNearestNeighbor(k=30, metric="l1").fit(X, np.zeros(40, int), 1)
    monkeypatch.setattr(knn_search, "_MAX_K_COMPILED", 10)
    _, ind = est.kneighbors(Q)
    assert est.backend_ == "numpy"
    np.testing.assert_array_equal(ind, brute_l1(Q, X, 30)[1])
    monkeypatch.undo()
    half = Q.astype(np.float32) + 0.5  # not bytes: searched by the float reference against uint8 rows
    _, ind = est.kneighbors(half)
    assert est.backend_ == "numpy"
    np.testing.assert_array_equal(ind, brute_l1(half, X, 30)[1])


def brute_l2_distances(Q, X, k):
    """The k smallest L2 distances of each query, in float64."""
    diff = Q[:, None, :].astype(np.float64) - X[None, :, :].astype(np.float64)
    return np.sort(np.sqrt(np.einsum("nmd,nmd->nm", diff, diff)), axis=1)[:, :k]


@pytest.mark.parametrize("threads", [1, 2])
def test_topk_merge_equals_a_stable_sort(threads):
    """The merge kernel on key blocks of awkward widths, with many exact ties and k up to m."""
    rng = np.random.default_rng(threads)
    previous = _kernels.set_threads(threads)
    try:
        for n, m, k, width in [(1, 1, 1, 1), (3, 10, 10, 3), (17, 101, 7, 13), (5, 64, 1, 64), (40, 90, 33, 7)]:
            keys = rng.integers(0, 6, (n, m)).astype(np.float32)  # few values: ties everywhere
            add = rng.integers(-2, 3, m).astype(np.float32)
            dist = np.full((n, k), np.inf, np.float32)
            ind = np.zeros((n, k), np.int64)
            for j in range(0, m, width):
                _knn_kernels.topk_merge(np.ascontiguousarray(keys[:, j:j + width]), add[j:j + width], j, dist, ind)
            full = keys + add
            expected = np.argsort(full, axis=1, kind="stable")[:, :k]
            np.testing.assert_array_equal(ind, expected, err_msg=f"{n}x{m} k={k} width={width}")
            np.testing.assert_array_equal(dist, np.take_along_axis(full, expected, axis=1))
    finally:
        _kernels.set_threads(previous)


@pytest.mark.parametrize("kind", ["bytes", "tied_bytes", "floats", "tied_floats"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_compiled_l2_search_equals_numpy_reference(kind, n_jobs, monkeypatch):
    """Same neighbours (and distances) from the compiled selection as from the NumPy path when
    both compute the same key blocks (a budget that holds everything); with budgets small
    enough to split queries, training rows and key blocks unevenly, the k distances found
    are still the k smallest (the matrix products of other block shapes may round near-ties
    differently, so the order of near-equal neighbours is not compared there)."""
    for n, m, d, k, _, _ in SHAPES:
        Q, X = make(kind, n, m, d, seed=11 + n + m)
        y = np.arange(m) % 3
        for budget in (2_000, 50_000, 10**8):
            est = KNearestNeighbor(k=k, metric="l2", n_jobs=n_jobs, max_memory=budget).fit(X, y, 3)
            d_c, i_c = est.kneighbors(Q)
            assert est.backend_ == "numba"
            with monkeypatch.context() as patch:
                patch.setattr(_kernels, "available", lambda: False)
                d_r, i_r = est.kneighbors(Q)
            assert est.backend_ == "numpy"
            if budget == 10**8:
                np.testing.assert_array_equal(i_c, i_r, err_msg=f"{kind} {n}x{m}x{d} k={k}")
                np.testing.assert_array_equal(d_c, d_r)
            # The keys are float32 (the centring makes even byte data inexact), so the brute
            # force may order near-ties differently; the distances found must still be the k smallest.
            np.testing.assert_allclose(d_c, brute_l2_distances(Q, X, k), rtol=1e-4, atol=1e-3)


def test_lazy_norms_follow_the_fitted_metric_and_a_racing_search():
    """uint8 rows get their norms from the first search: computed for the metric of fit (not
    one set later) and published whole, even when another search published them meanwhile."""
    Q, X = make("bytes", 30, 300, 17, seed=21)
    y = np.arange(300) % 3
    clean = KNearestNeighbor(k=4, metric="l2", max_memory=20_000).fit(X, y, 3).kneighbors(Q)[1]
    switched = KNearestNeighbor(k=4, metric="l2", max_memory=20_000).fit(X, y, 3)
    switched.set_params(metric="l1")  # after fit: the search and the norms stay L2
    np.testing.assert_array_equal(switched.kneighbors(Q)[1], clean)
    racing = KNearestNeighbor(k=4, metric="l2", max_memory=20_000).fit(X, y, 3)
    rows = racing._search_rows

    def publish_midway(start, stop):
        if start > 0 and racing._sum_train is None:  # another thread's search finished first
            racing._sum_train = np.zeros(300, np.float32)
        return rows(start, stop)

    racing._search_rows = publish_midway
    np.testing.assert_array_equal(racing.kneighbors(Q)[1], clean)
    assert not np.any(racing._sum_train == 0)  # this search published none of it


def test_values_too_large_for_float32_distances_are_refused():
    Q, X = make("floats", 5, 40, 6, seed=22)
    X[:2] *= 1e20
    with pytest.raises(ValueError, match="too large for float32"):
        KNearestNeighbor(k=3).fit(X, np.zeros(40, int), 1)
    est = KNearestNeighbor(k=3).fit(X[2:], np.zeros(38, int), 1)
    with pytest.raises(ValueError, match="too large for float32"):
        est.kneighbors(Q.astype(np.float64) * 1e30)


def test_l2_plan_counts_the_best_lists_in_the_budget():
    budget = 512 * 2**20
    for n, m, d, k in [(10_000, 40_000, 3072, 1024), (500_000, 40_000, 64, 100), (7, 5, 3, 5)]:
        q_step, m_step, q_block = knn_search.plan_l2(n, m, d, k, budget, convert=True)
        used = q_step * (4 * d + 12 * k) + m_step * 4 * d + q_block * m_step * 4
        assert used <= budget and min(q_step, m_step, q_block) >= 1, (n, m, d, k, q_step, m_step, q_block)


def test_only_a_kernel_that_fails_falls_back(monkeypatch):
    """A kernel that cannot run here switches to the reference; an error of the code around it
    is raised, not hidden behind the fallback."""
    Q, X = make("floats", 8, 50, 5, seed=23)
    est = KNearestNeighbor(k=3).fit(X, np.zeros(50, int), 1)
    expected = est.kneighbors(Q)[1]

    def broken(*args):
        raise _kernels.KernelFailed("topk_merge: LoweringError: no")

    monkeypatch.setattr(_knn_kernels, "topk_merge", broken)
    monkeypatch.setattr(knn_search, "_compiled_failure", "")
    np.testing.assert_array_equal(est.kneighbors(Q)[1], expected)
    assert est.backend_ == "numpy" and "LoweringError" in knn_mod.l1_backend()[1]
    monkeypatch.setattr(knn_search, "_compiled_failure", "")

    def wrong(*args):
        raise ValueError("a bug in the code around the kernel")

    monkeypatch.setattr(_knn_kernels, "topk_merge", wrong)
    with pytest.raises(ValueError, match="a bug"):
        est.kneighbors(Q)
