"""KMeansFeatures and its steps against slow loop references on tiny images."""
import numpy as np
import pytest

from mlcv_cli.core import _kernels, _patch_kernels
from mlcv_cli.core.features import kmeans as km
from mlcv_cli.core.features import patch_encoder as pe
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


def _grid_cell(i, n, side):
    """The grid cell (0 .. side - 1) of position i of n: cell j spans positions ceil(j n / side) .. ceil((j + 1) n / side) - 1."""
    for j in range(side):
        if -(-j * n // side) <= i < -(-(j + 1) * n // side):
            return j
    raise AssertionError((i, n, side))


@pytest.mark.parametrize("pooling,side", [("quadrants", 2), ("3x3", 3), ("4x4", 4)])
@pytest.mark.parametrize("rows,cols", [(4, 4), (5, 7), (27, 27), (10, 9)])
def test_grid_cells_against_loop(pooling, side, rows, cols):
    cells, n = km.pooling_cells(rows, cols, pooling)
    assert n == side * side
    for r in range(rows):
        for c in range(cols):
            assert cells[r * cols + c] == side * _grid_cell(r, rows, side) + _grid_cell(c, cols, side)
    for count in (np.bincount(cells[::cols] // side, minlength=side), np.bincount(cells[:cols] % side, minlength=side)):
        assert count.min() > 0 and count.max() - count.min() <= 1  # cell sides differ by one position at most
    if (rows, cols) == (27, 27):  # CIFAR-10 with 6x6 patches: cells of 9 (3x3), 7, 7, 7, 6 (4x4) positions a side
        assert sorted(set(np.bincount(cells).tolist())) == ([81] if side == 3 else [36, 42, 49] if side == 4 else [169, 182, 196])


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
        side = km.GRID_SIDES[pooling]
        pooled = np.zeros((side * side, K))
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
                q = side * _grid_cell(r, rows, side) + _grid_cell(c, cols, side)
                pooled[q] += f
        out.append(pooled.ravel())
    return np.array(out)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("encoder,pooling,whiten,channels,stride", [
    ("triangle", "quadrants", True, 3, 1),
    ("soft_threshold", "quadrants", True, 3, 2),
    ("triangle", "global", False, 1, 1),
    ("soft_threshold", "global", True, 1, 3),
    ("triangle", "3x3", True, 3, 1),
    ("soft_threshold", "4x4", False, 3, 1),
    ("soft_threshold", "3x3", True, 1, 2),
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
    # Flip-invariant: a mirrored image has the features of the original (to float32 rounding: see _same_sums).
    _same_sums(extractor.transform(np.ascontiguousarray(images[:, :, ::-1])), got)
    # Round trip through the stored state keeps the parameter.
    again = KMeansFeatures.from_state(extractor.get_params(), extractor.state())
    assert again.mirror is True
    np.testing.assert_array_equal(again.transform(images), got)


def test_mirror_must_be_a_boolean():
    extractor, _ = _fitted()
    extractor.mirror = "yes"
    with pytest.raises(ValueError, match="mirror: expected true or false"):
        extractor.check((8, 7, 3))


# ----------------------------------------------------------------- the compiled path (patch_encoder)

def _same_sums(got, want):
    """Equal up to float32 rounding: the same sums of products taken in another order (a flipped
    image's patches, other slab sizes) come out of BLAS bit-identical on some CPU kernels and a few
    ulps apart on others (seen with OPENBLAS_CORETYPE=Haswell: 1.6e-6 relative, 9.5e-7 absolute)."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(want).max())))


def _mirror_permutation(p, C):
    """Patch-vector index of each element of the left-right mirrored patch."""
    return np.arange(p * p * C).reshape(p, p, C)[:, ::-1].ravel()


@pytest.mark.parametrize("p,C", [(1, 1), (2, 3), (3, 1), (4, 3), (5, 3), (6, 3)])
def test_mirror_basis_is_exact_algebra(p, C):
    rng = np.random.default_rng(p * 10 + C)
    basis = pe.MirrorBasis(p, C)
    d = p * p * C
    X = rng.standard_normal((20, d))
    M = rng.standard_normal((d, 7))
    Z = basis.transform(X)
    even, odd = basis.split(M)
    d_e = basis.a.size
    assert Z.shape == (20, d) and even.shape[0] == d_e and odd.shape[0] == d - d_e
    np.testing.assert_allclose(Z[:, :d_e] @ even + Z[:, d_e:] @ odd, X @ M, atol=1e-12)
    np.testing.assert_allclose((Z * Z) @ basis.weights(), (X * X).sum(axis=1))
    # A mirrored patch has the same even part and the negated odd part, exactly; so its
    # products are the even products minus the odd ones.
    Zm = basis.transform(X[:, _mirror_permutation(p, C)])
    np.testing.assert_array_equal(Zm[:, :d_e], Z[:, :d_e])
    np.testing.assert_array_equal(Zm[:, d_e:], -Z[:, d_e:])


def _basis_kernel(images, p, s, eps=10.0):
    N, H, W, C = images.shape
    rows, cols = km.patch_grid(images.shape[1:], p, s)
    basis = pe.MirrorBasis(p, C)
    offsets = (np.arange(p)[:, None, None] * W * C + np.arange(p)[None, :, None] * C + np.arange(C)).ravel()
    Z = np.full((N * rows * cols, p * p * C), np.nan, np.float32)
    x2 = np.full(N * rows * cols, np.nan, np.float32)
    flat = images.reshape(N, -1)
    for g0 in range(0, N * rows, 2):  # two patch rows at a time, as slabs
        g1 = min(N * rows, g0 + 2)
        n = (g1 - g0) * cols
        _patch_kernels.mirror_basis_patches(flat, g0, g1, rows, cols, s * W * C, s * C, offsets[basis.a],
                                            offsets[basis.b], basis.n_pairs, eps, Z[g0 * cols:], x2[g0 * cols:])
        assert np.isfinite(Z[g0 * cols:g0 * cols + n]).all()
    return Z, x2, basis


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("p,s", [(1, 1), (2, 1), (3, 2), (4, 3), (5, 1)])
def test_mirror_basis_kernel_matches_reference(channels, p, s):
    assert _kernels.available(), _kernels.unavailable_reason()
    images = _images(3, 9, 7, channels, seed=p + s)
    images[0, :5, :5] = 9  # flat patches: only contrast_eps keeps them finite
    Z, x2, basis = _basis_kernel(images, p, s)
    X = km.normalize_patches(km.extract_patches(images, p, s), 10.0)
    Z_ref, x2_ref = pe.mirror_basis_reference(X, basis)
    np.testing.assert_allclose(Z, Z_ref, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(x2, x2_ref, rtol=1e-5)
    rows, cols = km.patch_grid(images.shape[1:], p, s)
    if (images.shape[2] - p) % s == 0:  # a symmetric grid: the mirror image's patches are ours
        Zm, x2m, _ = _basis_kernel(np.ascontiguousarray(images[:, :, ::-1]), p, s)
        flip = np.arange(len(Z)).reshape(3, rows, cols)[:, :, ::-1].ravel()
        d_e = basis.a.size
        np.testing.assert_array_equal(Zm[flip, :d_e], Z[:, :d_e])
        np.testing.assert_array_equal(Zm[flip, d_e:], -Z[:, d_e:])
        np.testing.assert_array_equal(x2m[flip], x2)


@pytest.mark.parametrize("pooling", ["quadrants", "4x4"])
@pytest.mark.parametrize("triangle", [True, False])
@pytest.mark.parametrize("sides,odd,dy", [(1, False, 0), (1, False, 5), (2, True, 0), (2, True, 5)])
def test_pool_codes_kernel_matches_reference(triangle, sides, odd, dy, pooling):
    assert _kernels.available(), _kernels.unavailable_reason()
    rng = np.random.default_rng(sides * 7 + dy)
    B, rows, cols, K = 3, 5, 7, 37
    n = B * rows * cols
    RE = rng.standard_normal((n, K + dy)).astype(np.float32)
    RO = (0.5 * rng.standard_normal((n, K + dy))).astype(np.float32) if odd else np.empty((0, K + dy), np.float32)
    x2 = (rng.random(n) * 20 + 10).astype(np.float32)
    mw = (0.1 * rng.standard_normal(dy)).astype(np.float32)
    cvec = (rng.random(K) * 5 + (1 if triangle else -0.5)).astype(np.float32)
    cells, num_cells = km.pooling_cells(rows, cols, pooling)
    mcells = np.ascontiguousarray(cells.reshape(rows, cols)[:, ::-1].ravel())
    out = np.zeros((B, num_cells, K), np.float32)
    out_m = np.zeros_like(out)
    for g0 in range(0, B * rows, 2):  # slabs of two patch rows accumulate into the same cells
        g1 = min(B * rows, g0 + 2)
        a, b = g0 * cols, g1 * cols
        _patch_kernels.pool_codes(RE[a:b], RO[a:b], K, sides, triangle, x2[a:b], mw, cvec, g0, g1,
                                  rows, cols, cells, mcells, out, out_m)
    want, want_m = pe.pool_codes_reference(RE, RO, K, sides, triangle, x2, mw, cvec, rows, cols,
                                           cells, mcells, num_cells)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out_m, want_m, rtol=1e-5, atol=1e-4)
    assert out.any() and (sides == 1 or out_m.any())


def _numpy_path(monkeypatch, extractor, images):
    with monkeypatch.context() as patch:
        patch.setattr(_kernels, "available", lambda: False)
        return extractor.transform(images)


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("encoder,pooling,whiten,channels,stride,shape", [
    ("triangle", "quadrants", True, 3, 1, (8, 7)),
    ("triangle", "quadrants", True, 3, 2, (9, 8)),    # the mirror image's grid is another one
    ("soft_threshold", "quadrants", True, 3, 2, (8, 9)),
    ("triangle", "global", False, 1, 1, (7, 10)),
    ("soft_threshold", "quadrants", False, 1, 3, (10, 9)),
    ("triangle", "quadrants", False, 3, 1, (11, 11)),
    ("triangle", "4x4", True, 3, 1, (11, 11)),
    ("soft_threshold", "3x3", True, 3, 2, (9, 12)),   # the mirror image's grid is another one
    ("triangle", "4x4", False, 1, 1, (7, 10)),
])
def test_compiled_path_equals_numpy_path(monkeypatch, mirror, encoder, pooling, whiten, channels, stride, shape):
    """The compiled path (fused whitening, mirror basis) gives the NumPy path's features up to
    float32 rounding, on odd sizes and strides, with and without mirror."""
    assert _kernels.available(), _kernels.unavailable_reason()
    extractor, arrays = _fitted(C=channels, K=11, encoder=encoder, pooling=pooling, whiten=whiten, stride=stride)
    extractor.mirror = mirror
    extractor = KMeansFeatures.from_state(extractor.get_params(), {**arrays, "input_shape": np.array([*shape, channels])})
    images = _images(5, *shape, channels, seed=9)
    got = extractor.transform(images)
    want = _numpy_path(monkeypatch, extractor, images)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # Flipping the images changes nothing with mirror, bit for bit.
    if mirror:
        _same_sums(extractor.transform(np.ascontiguousarray(images[:, :, ::-1])), got)


@pytest.mark.parametrize("whiten", [True, False])
def test_mirror_codes_are_the_original_patches_against_mirrored_centroids(monkeypatch, whiten):
    """The identity the compiled mirror rests on: the mirror image's pooled codes are the
    original patches' codes against the mirrored dictionary (centroids and whitening mirrored),
    pooled into the mirrored quadrants; the compiled path gets them bit for bit from the
    original image's products (the odd parts subtracted)."""
    assert _kernels.available(), _kernels.unavailable_reason()
    p, C, K = 3, 3, 9
    extractor, arrays = _fitted(C=C, K=K, whiten=whiten)
    extractor.mirror = True
    images = _images(4, 8, 7, C, seed=12)
    flipped = np.ascontiguousarray(images[:, :, ::-1])
    rows, cols = km.patch_grid(images.shape[1:], p, 1)
    cells = km.pooling_cells(rows, cols, "quadrants")
    encoder = pe.PatchEncoder(extractor, images.shape[1:], cells)
    assert encoder.sides == 2
    out, out_m = np.zeros((4, 4, K), np.float32), np.zeros((4, 4, K), np.float32)
    encoder._pool(images.reshape(4, -1), out, out_m, 2)
    f_out, f_out_m = np.zeros_like(out), np.zeros_like(out)
    encoder._pool(flipped.reshape(4, -1), f_out, f_out_m, 2)
    _same_sums(out_m, f_out)
    _same_sums(out, f_out_m)
    # The same through the NumPy path: a dictionary mirrored by hand, on the original images,
    # pooled into quadrants mirrored by hand, against the flipped images' own codes.
    perm = _mirror_permutation(p, C)
    mirrored = {**arrays, "centroids": arrays["centroids"][:, perm]}
    if whiten:
        mirrored["whiten_mean"] = arrays["whiten_mean"][perm]
        mirrored["whiten_matrix"] = arrays["whiten_matrix"][np.ix_(perm, perm)]
    plain = {**extractor.get_params(), "mirror": False}
    ref = km.ReferenceEncoder(KMeansFeatures.from_state(plain, mirrored), images.shape[1:], cells)
    ref.cells = encoder.mcells
    want = km.ReferenceEncoder(KMeansFeatures.from_state(plain, arrays), images.shape[1:], cells).encode(flipped)
    np.testing.assert_allclose(ref.encode(images), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out_m.reshape(4, -1), want, rtol=1e-5, atol=1e-4)


def test_slab_size_changes_nothing(monkeypatch):
    extractor, _ = _fitted(C=3, K=7)
    extractor.mirror = True
    images = _images(6, 8, 7, 3, seed=13)
    whole = extractor.transform(images)
    monkeypatch.setattr(pe, "SLAB_PATCHES", 1)  # one patch row per product
    _same_sums(extractor.transform(images), whole)


def test_a_kernel_that_fails_to_compile_falls_back_to_the_numpy_path(monkeypatch):
    extractor, arrays = _fitted(C=3, K=7)
    images = _images(3, 8, 7, 3, seed=14)

    def broken(*args):
        raise _kernels.KernelFailed("mirror_basis_patches: no compiler here")

    monkeypatch.setattr(_patch_kernels, "mirror_basis_patches", broken)
    got = extractor.transform(images)
    np.testing.assert_array_equal(got, _numpy_path(monkeypatch, extractor, images))
    # Nothing derived for the compiled path is saved: the state is what was fitted.
    assert set(extractor.state()) == set(arrays)


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
    (dict(patch_size=6, pooling="4x4"), (8, 8, 3), "pooling"),  # 3 x 3 positions
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


@pytest.mark.parametrize("pooling,side", [("3x3", 3), ("4x4", 4)])
def test_grid_pooling_fits_saves_and_loads(pooling, side):
    """A finer grid has side**2 * K features; the fitted state round-trips to the same features."""
    images = _images(12, 10, 10, 3, seed=15)
    ex = KMeansFeatures(num_centroids=5, patch_size=3, num_patches=300, iterations=2, pooling=pooling).fit(images)
    assert ex.output_dim((10, 10, 3)) == side * side * 5
    got = ex.transform(images)
    assert got.shape == (12, side * side * 5)
    again = KMeansFeatures.from_state(ex.get_params(), ex.state())
    assert again.pooling == pooling
    np.testing.assert_array_equal(again.transform(images), got)
    # Summing the 4x4 cells two by two gives the quadrants (27 or 8 positions: the grids nest).
    if side == 4:
        quad = KMeansFeatures.from_state({**ex.get_params(), "pooling": "quadrants"}, ex.state()).transform(images)
        fine = got.reshape(12, 2, 2, 2, 2, 5).sum(axis=(2, 4)).reshape(12, -1)
        np.testing.assert_allclose(fine, quad, rtol=1e-5, atol=1e-4)


def test_grid_pooling_needs_a_position_per_cell():
    with pytest.raises(ValueError, match=r"^pooling: expected at least 4 x 4 patch positions for '4x4', found 3 x 5"):
        KMeansFeatures(num_centroids=2, patch_size=6, pooling="4x4", num_patches=10).check((8, 10, 3))
    KMeansFeatures(num_centroids=2, patch_size=5, pooling="4x4", num_patches=10).check((8, 8, 3))
