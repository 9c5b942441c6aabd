"""KMeansFeatures and its steps against slow loop references on tiny images."""
import numpy as np
import pytest

from mlcv_cli.core import _kernels
from mlcv_cli.core.features import kmeans as km
from mlcv_cli.core.features.kmeans import KMeansFeatures


def _images(n, h, w, c, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _loop_patches(images, p, s):
    out = []
    for img in images:
        for r in range(0, img.shape[0] - p + 1, s):
            for c in range(0, img.shape[1] - p + 1, s):
                out.append(img[r:r + p, c:c + p, :].astype(np.float64).ravel())
    return np.array(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_extract_patches_every_stride_and_size(channels):
    images = _images(2, 7, 9, channels)
    for p in range(1, 8):
        for s in range(1, 9):
            got = km.extract_patches(images, p, s)
            want = _loop_patches(images, p, s)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
            assert got.shape[0] == 2 * np.prod(km.patch_grid(images.shape[1:], p, s))


def test_sample_patches_come_from_the_stride_grid_and_follow_the_seed():
    images = _images(3, 8, 8, 3)
    allowed = {tuple(row) for row in _loop_patches(images, 3, 2)}
    a = km.sample_patches(images, 3, 2, 200, np.random.default_rng(5))
    b = km.sample_patches(images, 3, 2, 200, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert all(tuple(row) in allowed for row in a.astype(np.float64))
    assert len({tuple(row) for row in a}) > 20


def test_normalize_patches_against_loop():
    X = _images(1, 40, 12, 1)[0, :, :, 0].astype(np.float32)
    X[3] = 7  # a flat patch stays finite thanks to eps
    got = km.normalize_patches(X.copy(), 10.0)
    for i, row in enumerate(X.astype(np.float64)):
        mean = sum(row) / len(row)
        var = sum((v - mean) ** 2 for v in row) / len(row)
        np.testing.assert_allclose(got[i], (row - mean) / np.sqrt(var + 10.0), rtol=1e-5, atol=1e-5)
    assert np.all(got[3] == 0)


def test_zca_whitening_gives_identity_covariance():
    rng = np.random.default_rng(0)
    # Correlated, full-rank data: whitened covariance is the identity.
    X = (rng.standard_normal((5000, 6)) @ rng.standard_normal((6, 6))).astype(np.float32)
    mean, M = km.fit_zca(X, 1e-9)
    Z = (X - mean) @ M
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(6), atol=1e-4)
    # ZCA (not any whitening): the matrix is symmetric, so patches keep their orientation.
    np.testing.assert_allclose(M, M.T, atol=1e-8)
    # After contrast normalisation one direction (the patch mean) is gone: identity on the rest.
    P = km.normalize_patches(km.extract_patches(_images(30, 8, 8, 3), 3, 1), 10.0)
    mean, M = km.fit_zca(P, 1e-7)
    d = P.shape[1]
    cov = np.cov((P.astype(np.float64) - mean) @ M, rowvar=False)
    np.testing.assert_allclose(cov, np.eye(d) - np.ones((d, d)) / d, atol=1e-3)


def test_zca_eps_shrinks_small_variances_as_documented():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 4)) * np.array([10.0, 1.0, 0.3, 0.05])
    eps = 0.1
    mean, M = km.fit_zca(X.astype(np.float32), eps)
    w, V = np.linalg.eigh(np.cov(X.astype(np.float32).astype(np.float64), rowvar=False))
    cov = np.cov((X - mean) @ M, rowvar=False)
    np.testing.assert_allclose(cov, (V * (w / (w + eps))) @ V.T, atol=1e-6)


def test_kmeans_assign_and_update_against_loops():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 5)).astype(np.float32)
    C = rng.standard_normal((7, 5)).astype(np.float32)
    C[6] = 100  # far from everything: its cluster is empty
    labels = km.kmeans_assign(X, C, max_memory=2**20)
    for i, x in enumerate(X.astype(np.float64)):
        d = [sum((x[j] - c[j]) ** 2 for j in range(5)) for c in C.astype(np.float64)]
        assert labels[i] == int(np.argmin(d))
    new = km.kmeans_update(X, labels, C, np.random.default_rng(0))
    for k in range(6):
        members = [X[i].astype(np.float64) for i in range(len(X)) if labels[i] == k]
        np.testing.assert_allclose(new[k], sum(members) / len(members), rtol=1e-5, atol=1e-6)
    # The empty cluster restarts at one of the data points.
    assert any(np.array_equal(new[6], x) for x in X)


def test_kmeans_assign_chunking_changes_nothing():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5000, 8)).astype(np.float32)
    C = rng.standard_normal((60, 8)).astype(np.float32)
    np.testing.assert_array_equal(km.kmeans_assign(X, C, 2**20), km.kmeans_assign(X, C, 2**30))


@pytest.mark.parametrize("rows,cols", [(4, 4), (5, 3), (2, 7)])
def test_quadrant_cells_against_loop(rows, cols):
    cells, n = km.pooling_cells(rows, cols, "quadrants")
    assert n == 4
    for r in range(rows):
        for c in range(cols):
            top = r < -(-rows // 2)  # the middle row of an odd count goes to the top half
            left = c < -(-cols // 2)
            assert cells[r * cols + c] == (0 if top else 2) + (0 if left else 1)


def _fitted(C=3, K=5, whiten=True, encoder="triangle", pooling="quadrants", stride=1, p=3, seed=0):
    rng = np.random.default_rng(seed)
    d = p * p * C
    A = rng.standard_normal((d, d))
    arrays = {"input_shape": np.array([8, 7, C]),
              "centroids": rng.standard_normal((K, d)).astype(np.float32)}
    if whiten:
        arrays["whiten_mean"] = (0.1 * rng.standard_normal(d)).astype(np.float32)
        arrays["whiten_matrix"] = (np.eye(d) + 0.05 * (A + A.T)).astype(np.float32)
    params = dict(num_centroids=K, patch_size=p, stride=stride, whiten=whiten, encoder=encoder,
                  alpha=0.3, pooling=pooling, num_patches=K)
    return KMeansFeatures.from_state(params, arrays), arrays


def _loop_features(images, arrays, p, stride, encoder, alpha, pooling, whiten, eps=10.0):
    C = arrays["centroids"].astype(np.float64)
    K = len(C)
    out = []
    for img in images:
        rows = (img.shape[0] - p) // stride + 1
        cols = (img.shape[1] - p) // stride + 1
        pooled = np.zeros((4 if pooling == "quadrants" else 1, K))
        for r in range(rows):
            for c in range(cols):
                x = img[r * stride:r * stride + p, c * stride:c * stride + p].astype(np.float64).ravel()
                x = (x - x.mean()) / np.sqrt(x.var() + eps)
                if whiten:
                    x = (x - arrays["whiten_mean"]) @ arrays["whiten_matrix"].astype(np.float64)
                if encoder == "triangle":
                    z = np.array([np.sqrt(sum((x - ck) ** 2)) for ck in C])
                    f = np.maximum(0, z.mean() - z)
                else:
                    f = np.maximum(0, np.array([x @ ck for ck in C]) - alpha)
                q = 0 if pooling == "global" else 2 * (r >= (rows + 1) // 2) + (c >= (cols + 1) // 2)
                pooled[q] += f
        out.append(pooled.ravel())
    return np.array(out)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("encoder,pooling,whiten,channels,stride", [
    ("triangle", "quadrants", True, 3, 1),
    ("soft_threshold", "quadrants", True, 3, 2),
    ("triangle", "global", False, 1, 1),
    ("soft_threshold", "global", True, 1, 3),
])
def test_transform_against_loop_reference(monkeypatch, compiled, encoder, pooling, whiten, channels, stride):
    if not compiled:
        monkeypatch.setattr(_kernels, "available", lambda: False)
    else:
        assert _kernels.available(), _kernels.unavailable_reason()
    extractor, arrays = _fitted(C=channels, encoder=encoder, pooling=pooling, whiten=whiten, stride=stride)
    images = _images(3, 8, 7, channels, seed=4)
    got = extractor.transform(images)
    want = _loop_features(images, arrays, 3, stride, encoder, 0.3, pooling, whiten)
    assert got.shape == (3, extractor.output_dim((8, 7, channels)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("compiled", [True, False])
def test_mirror_averages_the_codes_of_the_image_and_its_mirror_image(monkeypatch, compiled):
    if not compiled:
        monkeypatch.setattr(_kernels, "available", lambda: False)
    extractor, arrays = _fitted(C=3, stride=2)
    extractor.mirror = True
    images = _images(4, 8, 7, 3, seed=8)
    mirrored = np.stack([np.array([[row[c] for c in reversed(range(len(row)))] for row in img]) for img in images])
    want = 0.5 * (_loop_features(images, arrays, 3, 2, "triangle", 0.3, "quadrants", True)
                  + _loop_features(mirrored, arrays, 3, 2, "triangle", 0.3, "quadrants", True))
    got = extractor.transform(images)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    # Flip-invariant: a mirrored image has exactly the features of the original.
    np.testing.assert_array_equal(extractor.transform(np.ascontiguousarray(images[:, :, ::-1])), got)
    # Round trip through the stored state keeps the parameter.
    again = KMeansFeatures.from_state(extractor.get_params(), extractor.state())
    assert again.mirror is True
    np.testing.assert_array_equal(again.transform(images), got)


def test_mirror_must_be_a_boolean():
    extractor, _ = _fitted()
    extractor.mirror = "yes"
    with pytest.raises(ValueError, match="mirror: expected true or false"):
        extractor.check((8, 7, 3))


@pytest.mark.parametrize("encoder", ["triangle", "soft_threshold"])
def test_compiled_kernel_matches_numpy_reference(encoder):
    rng = np.random.default_rng(5)
    B, rows, cols, K = 3, 5, 6, 37
    G = rng.standard_normal((B, rows * cols, K)).astype(np.float32)
    x2 = (rng.random((B, rows * cols)) * 20 + 10).astype(np.float32)
    c2 = (rng.random(K) * 5 + 1).astype(np.float32)
    cells, n = km.pooling_cells(rows, cols, "quadrants")
    order = np.argsort(cells, kind="stable")
    starts = np.searchsorted(cells[order], np.arange(n + 1))
    want = km.encode_pool_reference(G, x2, c2, cells, n, encoder, 0.25)
    got = np.zeros_like(want)
    if encoder == "triangle":
        _kernels.triangle_pool(G, x2, c2, order, starts, got)
    else:
        _kernels.soft_threshold_pool(G, np.float32(0.25), order, starts, got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_chunk_size_does_not_change_features():
    extractor, _ = _fitted()
    images = _images(23, 8, 7, 3, seed=6)
    whole = extractor.transform(images)
    extractor.max_memory = 2**20  # a few images per chunk
    np.testing.assert_array_equal(extractor.transform(images), whole)


@pytest.mark.parametrize("channels", [1, 3])
def test_fit_is_deterministic_under_its_seed(channels):
    images = _images(20, 10, 10, channels, seed=7)
    params = dict(num_centroids=8, patch_size=4, num_patches=500, iterations=3)
    a = KMeansFeatures(seed=1, **params).fit(images)
    b = KMeansFeatures(seed=1, **params).fit(images)
    c = KMeansFeatures(seed=2, **params).fit(images)
    for key, value in a.state().items():
        np.testing.assert_array_equal(value, b.state()[key])
    assert not np.array_equal(a.centroids_, c.centroids_)
    assert a.centroids_.shape == (8, 16 * channels)
    assert a.transform(images).shape == (20, 32)


def test_fit_runs_lloyd_on_whitened_patches():
    # Repeat the fit's steps by hand: sample, normalise, whiten, then Lloyd from K sampled patches.
    images = _images(15, 9, 9, 3, seed=8)
    ex = KMeansFeatures(num_centroids=6, patch_size=3, stride=2, num_patches=400, iterations=4, seed=3).fit(images)
    rng = np.random.default_rng(3)
    X = km.normalize_patches(km.sample_patches(images, 3, 2, 400, rng), 10.0)
    mean, M = km.fit_zca(X, 0.1)
    np.testing.assert_allclose(ex.whiten_matrix_, M, rtol=1e-5, atol=1e-6)
    X = (X @ M.astype(np.float32)) - mean.astype(np.float32) @ M.astype(np.float32)
    C = X[rng.choice(400, 6, replace=False)]
    for _ in range(4):
        C = km.kmeans_update(X, km.kmeans_assign(X, C), C, rng)
    np.testing.assert_allclose(ex.centroids_, C, rtol=1e-4, atol=1e-4)


def test_filters_undo_the_whitening():
    extractor, arrays = _fitted(C=3, K=4)
    filters = extractor.filters()
    assert filters.shape == (4, 3, 3, 3)
    rewhitened = (filters.reshape(4, -1).astype(np.float64) - arrays["whiten_mean"]) @ arrays["whiten_matrix"]
    np.testing.assert_allclose(rewhitened, arrays["centroids"], atol=1e-4)
    gray, arrays = _fitted(C=1, K=4, whiten=False)
    np.testing.assert_array_equal(gray.filters().reshape(4, -1), arrays["centroids"])


@pytest.mark.parametrize("params,shape,name", [
    (dict(patch_size=9), (8, 8, 3), "patch_size"),
    (dict(patch_size=0), (8, 8, 3), "patch_size"),
    (dict(num_centroids=0), (8, 8, 3), "num_centroids"),
    (dict(stride=0), (8, 8, 3), "stride"),
    (dict(num_centroids=10, num_patches=5), (8, 8, 3), "num_patches"),
    (dict(encoder="sparse"), (8, 8, 3), "encoder"),
    (dict(pooling="max"), (8, 8, 3), "pooling"),
    (dict(patch_size=8), (8, 8, 3), "pooling"),
    (dict(whiten_eps=0), (8, 8, 3), "whiten_eps"),
    (dict(contrast_eps=-1), (8, 8, 3), "contrast_eps"),
    (dict(alpha=float("nan")), (8, 8, 3), "alpha"),
    (dict(iterations=-1), (8, 8, 3), "iterations"),
    (dict(whiten="yes"), (8, 8, 3), "whiten"),
    (dict(num_centroids=2.5), (8, 8, 3), "num_centroids"),
])
def test_bad_parameters_name_the_parameter(params, shape, name):
    base = dict(num_centroids=4, patch_size=3, num_patches=100)
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        KMeansFeatures(**{**base, **params}).check(shape)


def test_global_pooling_allows_a_single_position():
    images = _images(4, 6, 6, 1)
    ex = KMeansFeatures(num_centroids=2, patch_size=6, pooling="global", num_patches=10, iterations=1).fit(images)
    assert ex.transform(images).shape == (4, 2)
