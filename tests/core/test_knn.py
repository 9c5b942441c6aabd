import numpy as np
import pytest

from mlcv_cli.core.knn import KNearestNeighbor, vote


def loop_distances(Q, X, metric):
    Q = np.asarray(Q, np.float64)
    X = np.asarray(X, np.float64)
    out = np.empty((len(Q), len(X)))
    for i in range(len(Q)):
        for j in range(len(X)):
            diff = Q[i] - X[j]
            out[i, j] = np.sqrt(np.sum(diff * diff)) if metric == "l2" else np.sum(np.abs(diff))
    return out


def loop_kneighbors(Q, X, k, metric):
    d = loop_distances(Q, X, metric)
    idx = np.array([sorted(range(len(X)), key=lambda j: (d[i, j], j))[:k] for i in range(len(Q))])
    return np.take_along_axis(d, idx, axis=1), idx


def loop_vote(labels, C):
    out = []
    for row in labels:
        counts = [list(row).count(c) for c in range(C)]
        out.append(counts.index(max(counts)))
    return np.array(out)


def pixel_data(seed, M=120, N=25, D=48):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (M, D), dtype=np.uint8)
    Q = rng.integers(0, 256, (N, D), dtype=np.uint8)
    y = rng.integers(0, 4, M)
    return X, y, Q


@pytest.mark.parametrize("metric", ["l2", "l1"])
@pytest.mark.parametrize("kind", ["uint8", "float_offset", "gaussian"])
def test_kneighbors_matches_loop(metric, kind):
    X, y, Q = pixel_data(1)
    if kind == "float_offset":  # large magnitudes would cancel without centring
        X, Q = X.astype(np.float64) + 1e4, Q.astype(np.float64) + 1e4
    elif kind == "gaussian":
        rng = np.random.default_rng(2)
        X, Q = rng.standard_normal(X.shape), rng.standard_normal(Q.shape)
    knn = KNearestNeighbor(k=7, metric=metric).fit(X, y, num_classes=4)
    dist, ind = knn.kneighbors(Q)
    ref_d, ref_i = loop_kneighbors(Q, X, 7, metric)
    assert ind.dtype == np.int64 and dist.shape == (len(Q), 7)
    np.testing.assert_array_equal(ind, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-3)
    if kind == "uint8" and metric == "l1":
        np.testing.assert_array_equal(dist, ref_d)  # integer data: float32 sums are exact


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_distance_ties_go_to_smaller_index(metric):
    X, y, Q = pixel_data(3, M=60, N=10)
    X[[5, 17, 40, 41]] = X[30]  # four copies of one row: equal distances to every query
    Q[0] = X[30]
    Q[1] = X[30] + 1
    knn = KNearestNeighbor(k=3, metric=metric).fit(X, y, 4)
    _, ind = knn.kneighbors(Q)
    np.testing.assert_array_equal(ind[0], [5, 17, 30])
    np.testing.assert_array_equal(ind[1], [5, 17, 30])
    np.testing.assert_array_equal(ind, loop_kneighbors(Q, X, 3, metric)[1])
    _, ind1 = knn.kneighbors(Q[:2], k=1)
    np.testing.assert_array_equal(ind1[:, 0], [5, 5])


def test_many_ties_at_kth_position():
    # All training points equidistant: only the index tie-break decides, across argpartition.
    X = np.zeros((50, 4))
    X[:, 0] = np.where(np.arange(50) % 2, 1.0, -1.0)
    knn = KNearestNeighbor(k=6, max_memory=2000).fit(X, np.zeros(50, int), 1)
    for metric in ("l2", "l1"):
        _, ind = knn.set_params(metric=metric).fit(X, np.zeros(50, int), 1).kneighbors(np.zeros((3, 4)))
        np.testing.assert_array_equal(ind, np.tile(np.arange(6), (3, 1)))


@pytest.mark.parametrize("metric", ["l2", "l1"])
@pytest.mark.parametrize("k", [1, 4])
def test_tiny_memory_budget_gives_identical_results(metric, k):
    X, y, Q = pixel_data(4, M=97, N=31)
    X[10] = X[50]
    full = KNearestNeighbor(k=k, metric=metric).fit(X, y, 4)
    d0, i0 = full.kneighbors(Q)
    for mem in (1, 500, 5000, 60000):
        for jobs in (1, 2):
            d, i = KNearestNeighbor(k=k, metric=metric, max_memory=mem, n_jobs=jobs).fit(X, y, 4).kneighbors(Q)
            np.testing.assert_array_equal(i, i0)
            np.testing.assert_allclose(d, d0, rtol=1e-6)


def test_matches_sklearn_on_gaussian_data():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(5)
    X, Q = rng.standard_normal((300, 20)), rng.standard_normal((40, 20))
    for metric, sk in (("l2", "euclidean"), ("l1", "manhattan")):
        d, i = KNearestNeighbor(k=5, metric=metric).fit(X, np.zeros(300, int), 1).kneighbors(Q)
        sd, si = NearestNeighbors(n_neighbors=5, metric=sk, algorithm="brute").fit(X).kneighbors(Q)
        np.testing.assert_array_equal(i, si)
        np.testing.assert_allclose(d, sd, rtol=1e-5)


def test_vote_matches_loop_and_breaks_ties_to_smallest_label():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, (200, 6))
    np.testing.assert_array_equal(vote(labels, 5), loop_vote(labels, 5))
    np.testing.assert_array_equal(vote(np.array([[3, 1, 1, 3], [4, 2, 2, 4], [0, 1, 2, 3]]), 5), [1, 2, 0])


def test_predict_vote_tie():
    X = np.array([[0.0], [1.0], [-1.2], [5.0]])
    y = np.array([2, 1, 0, 0])
    knn = KNearestNeighbor(k=2).fit(X, y, 3)
    # neighbours of 0.1 are index 0 (label 2) and index 1 (label 1): tie -> label 1
    assert knn.predict(np.array([[0.1]]))[0] == 1
    np.testing.assert_array_equal(knn.vote_counts(np.array([[0.1]])), [[0, 1, 1]])


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_predict_and_predict_for_ks(metric):
    X, y, Q = pixel_data(7, M=150, N=40)
    knn = KNearestNeighbor(metric=metric).fit(X, y, 4)
    ks = [1, 3, 5, 8]
    multi = knn.predict_for_ks(Q, ks)
    _, ref_i = loop_kneighbors(Q, X, 8, metric)
    for k in ks:
        single = KNearestNeighbor(k=k, metric=metric).fit(X, y, 4).predict(Q)
        np.testing.assert_array_equal(multi[k], single)
        np.testing.assert_array_equal(single, loop_vote(y[ref_i[:, :k]], 4))
    counts = knn.vote_counts(Q, k=5)
    assert counts.shape == (40, 4) and np.all(counts.sum(axis=1) == 5)
    yq = knn.predict(Q)
    assert knn.score(Q, yq) == 1.0


def test_fit_keeps_uint8_stores_other_dtypes_as_float32_and_flattens_images():
    rng = np.random.default_rng(8)
    imgs = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    knn = KNearestNeighbor().fit(imgs, np.arange(10) % 3, num_classes=5)
    assert knn.X_train_.dtype == np.uint8 and knn.X_train_.shape == (10, 48)
    assert knn.X_train_.flags.c_contiguous and knn.num_classes_ == 5
    assert knn.y_train_.dtype == np.int64
    assert KNearestNeighbor().fit(imgs, np.arange(10) % 3).num_classes_ == 3
    np.testing.assert_array_equal(knn.predict(imgs), np.arange(10) % 3)
    as_float = KNearestNeighbor().fit(imgs.astype(np.int64), np.arange(10) % 3, num_classes=5)
    assert as_float.X_train_.dtype == np.float32
    # A read-only or strided uint8 input is copied into a writable C array.
    frozen = imgs.reshape(10, -1)[:, ::2].copy()
    frozen.setflags(write=False)
    stored = KNearestNeighbor().fit(frozen, np.arange(10) % 3).X_train_
    assert stored.flags.writeable and stored.flags.c_contiguous and stored.dtype == np.uint8


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_uint8_storage_gives_the_float_answer(metric):
    # The same pixels searched as bytes and as float32 rows: the same neighbours, and for L1
    # (exact sums either way) the same distances.
    X, y, Q = pixel_data(9, M=211, N=33, D=75)
    X[100] = X[7]
    Q[3] = X[7]
    as_bytes = KNearestNeighbor(k=9, metric=metric, max_memory=20000).fit(X, y, 4)
    as_float = KNearestNeighbor(k=9, metric=metric, max_memory=20000).fit(X.astype(np.float32), y, 4)
    d8, i8 = as_bytes.kneighbors(Q)
    df, i_f = as_float.kneighbors(Q.astype(np.float32))
    np.testing.assert_array_equal(i8, i_f)
    np.testing.assert_allclose(d8, df, rtol=1e-6)
    # float queries holding byte values search a uint8 model exactly like uint8 queries
    np.testing.assert_array_equal(as_bytes.kneighbors(Q.astype(np.float64))[1], i8)


def test_non_finite_queries_are_refused():
    knn = KNearestNeighbor().fit(np.zeros((4, 3)), np.zeros(4, int), 1)
    with pytest.raises(ValueError, match="NaN"):
        knn.predict(np.array([[0.0, np.nan, 1.0]]))


def test_errors():
    X = np.zeros((5, 3))
    knn = KNearestNeighbor(k=6).fit(X, np.zeros(5, int), 2)
    with pytest.raises(ValueError, match="larger than the number of training examples"):
        knn.kneighbors(X)
    with pytest.raises(ValueError, match="k must be"):
        knn.kneighbors(X, k=0)
    with pytest.raises(ValueError, match="features"):
        knn.kneighbors(np.zeros((2, 4)), k=1)
    with pytest.raises(ValueError, match="metric"):
        KNearestNeighbor(metric="cosine").fit(X, np.zeros(5, int))
    with pytest.raises(ValueError, match="k must be"):
        KNearestNeighbor(k=0).fit(X, np.zeros(5, int))
    with pytest.raises(ValueError, match="not fitted"):
        KNearestNeighbor().predict(X)
    with pytest.raises(ValueError, match="num_classes"):
        KNearestNeighbor().fit(X, np.array([0, 1, 2, 3, 4]), num_classes=3)
    with pytest.raises(ValueError, match="2-D"):
        KNearestNeighbor().fit(np.zeros(5), np.zeros(5, int))
    with pytest.raises(ValueError, match="NaN"):
        KNearestNeighbor().fit(np.full((5, 3), np.nan), np.zeros(5, int))


def test_indices_without_distances_match():
    rng = np.random.default_rng(5)
    Xtr = rng.integers(0, 256, (300, 48)).astype(np.float32)
    Q = rng.integers(0, 256, (40, 48)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    for metric in ("l2", "l1"):
        knn = KNearestNeighbor(k=7, metric=metric).fit(Xtr, y, num_classes=4)
        _, ind = knn.kneighbors(Q)
        assert np.array_equal(knn.kneighbors(Q, return_distance=False), ind)
    assert knn.kneighbors(Q[:0], return_distance=False).shape == (0, 7)
