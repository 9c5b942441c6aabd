"""Learned patch features (Coates, Lee and Ng 2011): k-means on whitened image patches, encoded and pooled.

Pipeline per image: every patch_size x patch_size patch at the given stride, each patch
contrast-normalised ((x - mean) / sqrt(var + contrast_eps) on the 0-255 scale), ZCA-whitened,
encoded against the K centroids, and the codes summed over the cells of a grid on the image
(the four quadrants by default).
With the compiled kernels, transform runs patch_encoder.PatchEncoder (the same features up to
float32 rounding, computed in fewer operations); without them, ReferenceEncoder below.
"""
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _kernels
from ._common import DEFAULT_MAX_MEMORY, Extractor, check_choice, check_float, check_int, chunk_size, progress_bar
from .patch_encoder import PatchEncoder, images_per_block

ENCODERS = ("triangle", "soft_threshold")
GRID_SIDES = {"global": 1, "quadrants": 2, "3x3": 3, "4x4": 4}
"""Pooling name -> cells per side of the grid of patch positions the codes are summed over."""
POOLINGS = tuple(GRID_SIDES)


# ----------------------------------------------------------------- patches

def patch_grid(image_shape, patch_size, stride):
    """(rows, cols) of patch positions on images of shape (H, W, ...)."""
    H, W = image_shape[:2]
    return (H - patch_size) // stride + 1, (W - patch_size) // stride + 1


def extract_patches(images, patch_size, stride):
    """All patches of uint8 images (N, H, W, C): float32 (N * rows * cols, patch_size**2 * C).

    Patches are ordered image by image, row-major over positions (top-left corner at
    (stride * r, stride * c)); each patch vector is ordered (row, column, channel), so
    ``reshape(patch_size, patch_size, C)`` gives the patch as an image.
    """
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (N, rows, cols, C, p, p)
    N, rows, cols, C = windows.shape[:4]
    return windows.transpose(0, 1, 2, 4, 5, 3).astype(np.float32).reshape(N * rows * cols, -1)


def sample_patches(images, patch_size, stride, count, rng):
    """count patches at random positions of random images (with replacement): float32 (count, d)."""
    rows, cols = patch_grid(images.shape[1:], patch_size, stride)
    which = rng.integers(images.shape[0], size=count)
    top = stride * rng.integers(rows, size=count)
    left = stride * rng.integers(cols, size=count)
    offsets = np.arange(patch_size)
    patches = images[which[:, None, None], (top[:, None] + offsets)[:, :, None],
                     (left[:, None] + offsets)[:, None, :]]  # (count, p, p, C)
    return patches.astype(np.float32).reshape(count, -1)


def normalize_patches(X, eps):
    """Per-patch contrast normalisation, in place on float32 X (n, d): (x - mean) / sqrt(var + eps).

    var is the population variance over the d values of a patch; eps (on the 0-255 scale)
    keeps flat patches from being blown up into noise. Returns X.
    """
    X -= X.mean(axis=1, keepdims=True)
    scale = np.einsum("ij,ij->i", X, X)
    scale /= X.shape[1]
    scale += np.float32(eps)
    np.sqrt(scale, out=scale)
    X /= scale[:, None]
    return X


def fit_zca(X, eps, max_memory=DEFAULT_MAX_MEMORY):
    """ZCA whitening of patches X (n, d): (mean (d,), matrix (d, d)), both float64.

    (x - mean) @ matrix has covariance V diag(w / (w + eps)) V^T, where V diag(w) V^T is the
    covariance of X (divided by n - 1): the identity wherever the variance w is well above
    eps. eps keeps the directions the contrast normalisation flattened (w near 0) from
    being amplified into noise.
    """
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d))
    step = chunk_size(16 * d, max_memory)
    for start in range(0, n, step):
        block = X[start:start + step].astype(np.float64)
        block -= mean
        cov += block.T @ block
    cov /= max(n - 1, 1)
    w, V = np.linalg.eigh(cov)
    w = np.maximum(w, 0.0)  # eigh can return -1e-15 for the flattened directions
    return mean, (V * (1.0 / np.sqrt(w + eps))) @ V.T


# ----------------------------------------------------------------- k-means

def kmeans_assign(X, centroids, max_memory=DEFAULT_MAX_MEMORY):
    """Index of the nearest centroid (squared Euclidean distance) of each row of X: int64 (n,).

    ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2, and ||x||^2 is the same for every c, so the
    nearest centroid maximises x.c - ||c||^2 / 2: one matrix product per chunk of rows.
    """
    half_norms = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(X.shape[0], np.int64)
    step = chunk_size(4 * centroids.shape[0], max_memory)
    Ct = np.ascontiguousarray(centroids.T)
    for start in range(0, X.shape[0], step):
        scores = X[start:start + step] @ Ct
        scores -= half_norms
        labels[start:start + step] = scores.argmax(axis=1)
    return labels


def kmeans_sums(X, labels, num_centroids):
    """Sum (float64 (K, d)) and count (int64 (K,)) of the rows of X assigned to each centroid."""
    counts = np.bincount(labels, minlength=num_centroids)
    sums = np.zeros((num_centroids, X.shape[1]))
    order = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[order], return_index=True)
    if present.size:
        sums[present] = np.add.reduceat(X[order].astype(np.float64), starts, axis=0)
    return sums, counts


def kmeans_update(X, labels, centroids, rng):
    """New centroids: the mean of the rows assigned to each; an empty cluster restarts at a
    random row of X (drawn from rng), so no centroid is wasted. Returns float32 (K, d)."""
    sums, counts = kmeans_sums(X, labels, centroids.shape[0])
    new = centroids.astype(np.float64)
    filled = counts > 0
    new[filled] = sums[filled] / counts[filled, None]
    empty = np.flatnonzero(~filled)
    if empty.size:
        new[empty] = X[rng.integers(X.shape[0], size=empty.size)]
    return new.astype(np.float32)


# ----------------------------------------------------------------- encoding

def pooling_cells(rows, cols, pooling):
    """Pooling cell of every patch position (row-major): int64 (rows * cols,), and the cell count.

    An n x n grid (n = GRID_SIDES[pooling]; "quadrants" is 2 x 2, "global" one cell), cells
    numbered row-major: position row r is in cell row r * n // rows (likewise columns), so
    the cells' sides differ by at most one position (with an odd count, the middle row of
    "quadrants" belongs to the top half).
    """
    n = GRID_SIDES[pooling]
    r = np.arange(rows, dtype=np.int64) * n // rows
    c = np.arange(cols, dtype=np.int64) * n // cols
    return (n * r[:, None] + c[None, :]).ravel(), n * n


def encode_pool_reference(G, x2, c2, cells, num_cells, encoder, alpha):
    """NumPy encoder and pooling (the NumPy path's; patch_encoder.pool_codes_reference is the
    compiled kernel's reference).

    G (B, P, K) dot products of the B images' P whitened patches with the K centroids;
    x2 (B, P) squared norms of the patches; c2 (K,) of the centroids; cells (P,) the pooling
    cell of each position. "triangle": f_k = max(0, mean_j(z_j) - z_k) with z_k the distance
    to centroid k; "soft_threshold": f_k = max(0, x.c_k - alpha). Returns float32
    (B, num_cells, K): the codes summed over each cell.
    """
    if encoder == "triangle":
        z = x2[:, :, None] + c2[None, None, :] - 2 * G
        np.maximum(z, 0, out=z)
        np.sqrt(z, out=z)
        codes = z.mean(axis=2, keepdims=True) - z
    else:
        codes = G - np.float32(alpha)
    np.maximum(codes, 0, out=codes)
    pooled = np.zeros((G.shape[0], num_cells, G.shape[2]), np.float32)
    for cell in range(num_cells):
        pooled[:, cell] = codes[:, cells == cell].sum(axis=1)
    return pooled


# ----------------------------------------------------------------- extractor

class ReferenceEncoder:
    """The NumPy encoding path (no compiled kernels): patches extracted, normalised and
    whitened as in fit, products with the centroids, encode_pool_reference; the mirror image
    is encoded on its own. patch_encoder.PatchEncoder is held to it."""

    def __init__(self, extractor, image_shape, pooling):
        self.x = extractor
        self.d = extractor.patch_size ** 2 * image_shape[2]
        self.cells, self.num_cells = pooling
        self.P = self.cells.size
        self.Ct = np.ascontiguousarray(extractor.centroids_.T)
        self.c2 = np.einsum("ij,ij->i", extractor.centroids_, extractor.centroids_)
        self.offset = extractor.whiten_mean_ @ extractor.whiten_matrix_ if extractor.whiten else None

    def images_per_block(self, num_images, threads, max_memory):
        # Patches (float32 copy, whitened copy, uint8 view), dot products, distances, codes.
        per_image = self.P * (self.d * 9 + 16 * self.x.num_centroids)
        return max(1, min(-(-num_images // threads), chunk_size(per_image * threads, max_memory)))

    def encode(self, images):
        """Pooled codes of uint8 images (B, H, W, C): float32 (B, cells * K)."""
        pooled = self._encode(images)
        if self.x.mirror:
            pooled += self._encode(images[:, :, ::-1])
            pooled *= np.float32(0.5)
        return pooled.reshape(images.shape[0], -1)

    def _encode(self, images):
        x = self.x
        X = normalize_patches(extract_patches(images, x.patch_size, x.stride), x.contrast_eps)
        if x.whiten:
            X = X @ x.whiten_matrix_
            X -= self.offset
        G = (X @ self.Ct).reshape(len(images), self.P, -1)
        x2 = np.einsum("ij,ij->i", X, X).reshape(len(images), self.P)
        return encode_pool_reference(G, x2, self.c2, self.cells, self.num_cells, x.encoder, x.alpha)


def cpu_count():
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _blas_threads(limit):
    """BLAS limited to ``limit`` threads inside (no limit when None or threadpoolctl is missing).

    The workers split the images between the cores themselves; a multithreaded BLAS under
    each of them would oversubscribe the cores and spin against the compiled kernels.
    """
    if limit is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


class KMeansFeatures(Extractor):
    """k-means dictionary of whitened patches; features are pooled patch encodings.

    Hyperparameters: num_centroids K; patch_size p and stride (pixels) of the patches;
    contrast_eps, added to each patch's variance before dividing (0-255 pixel scale);
    whiten (ZCA) and whiten_eps, added to the covariance eigenvalues; num_patches sampled
    (seeded, with replacement) from the fitting images for the whitening and k-means;
    iterations of k-means (Lloyd's, initialised at K distinct sampled patches); seed;
    encoder "triangle" or "soft_threshold" (with alpha); pooling "quadrants", "global", or
    the finer grids "3x3" and "4x4" (9 or 16 cells: more features, not more encoding time);
    mirror: also encode each image's left-right mirror image and average the two pooled
    codes, so that flipping an image does not change its features (a picture of a car
    facing left is as much a car as one facing right); same dimension, nothing more
    learned; with the compiled kernels about 1.15x the encoding time (the mirror image's
    products come from the original's, see patch_encoder.py), twice without them;
    max_memory, bytes of temporaries a transform may use.

    Learned: centroids_ float32 (K, p*p*C) in whitened space; whiten_mean_ (d,) and
    whiten_matrix_ (d, d) float32 when whiten; input_shape_; inertia_ (mean squared
    distance of the sampled patches to their centroid, one per iteration; not stored).
    Output: float32 (N, cells * K), cell-major (all K codes of the top-left cell first).

    Memory: fit holds the float32 patch sample (num_patches x d x 4 bytes: 173 MB for the
    defaults on colour images) plus max_memory of temporaries; transform holds
    max_memory of temporaries besides its output.
    """

    ADDED_LATER = {"mirror": False}
    """Parameters added after model files and feature caches existed, with their old behaviour."""

    def __init__(self, num_centroids=1600, patch_size=6, stride=1, contrast_eps=10.0, whiten=True,
                 whiten_eps=0.1, num_patches=400_000, iterations=10, seed=0, encoder="triangle",
                 alpha=0.5, pooling="quadrants", max_memory=DEFAULT_MAX_MEMORY, mirror=False):
        self.num_centroids = num_centroids
        self.patch_size = patch_size
        self.stride = stride
        self.contrast_eps = contrast_eps
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.num_patches = num_patches
        self.iterations = iterations
        self.seed = seed
        self.encoder = encoder
        self.alpha = alpha
        self.pooling = pooling
        self.mirror = mirror
        self.max_memory = max_memory

    def _check_params(self, image_shape):
        H, W, _ = image_shape
        check_int("num_centroids", self.num_centroids, 1)
        check_int("patch_size", self.patch_size, 1, min(H, W), f" (at most the image side of {H}x{W} images)")
        check_int("stride", self.stride, 1)
        check_float("contrast_eps", self.contrast_eps, 0, strict=True)
        for name in ("whiten", "mirror"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name}: expected true or false, found {getattr(self, name)!r}.")
        check_float("whiten_eps", self.whiten_eps, 0, strict=True)
        check_int("num_patches", self.num_patches, self.num_centroids,
                  what=f" (at least num_centroids: k-means starts from {self.num_centroids} distinct patches)")
        check_int("iterations", self.iterations, 0)
        check_int("seed", self.seed, 0)
        check_choice("encoder", self.encoder, ENCODERS)
        check_float("alpha", self.alpha, 0)
        check_choice("pooling", self.pooling, POOLINGS)
        rows, cols = patch_grid(image_shape, self.patch_size, self.stride)
        side = GRID_SIDES[self.pooling]
        if min(rows, cols) < side:
            raise ValueError(
                f"pooling: expected at least {side} x {side} patch positions for {self.pooling!r}, found {rows} x {cols} "
                f"(patch_size {self.patch_size}, stride {self.stride} on {H}x{W} images); "
                f"use a smaller patch_size or stride, or a coarser pooling "
                f"({', '.join(repr(name) for name, n in GRID_SIDES.items() if n < side)})."
            )

    def output_dim(self, image_shape):
        return GRID_SIDES[self.pooling] ** 2 * int(self.num_centroids)

    def _active_learned(self):
        d = lambda obj, shape: obj.patch_size ** 2 * shape[2]  # noqa: E731
        learned = {"centroids": ("centroids_", np.float32, lambda obj, shape: (obj.num_centroids, d(obj, shape)))}
        if self.whiten:
            learned["whiten_mean"] = ("whiten_mean_", np.float32, lambda obj, shape: (d(obj, shape),))
            learned["whiten_matrix"] = ("whiten_matrix_", np.float32, lambda obj, shape: (d(obj, shape),) * 2)
        return learned

    # -------------------------------------------------------------- fit
    def _fit(self, images, progress):
        rng = np.random.default_rng(self.seed)
        K = self.num_centroids
        bar = progress_bar(progress, self.iterations + 1, "k-means dictionary")
        try:
            X = sample_patches(images, self.patch_size, self.stride, self.num_patches, rng)
            normalize_patches(X, self.contrast_eps)
            if self.whiten:
                mean, matrix = fit_zca(X, self.whiten_eps, self.max_memory)
                self.whiten_mean_ = mean.astype(np.float32)
                self.whiten_matrix_ = matrix.astype(np.float32)
                self._whiten_rows(X)
            bar.update(1)
            centroids = X[rng.choice(X.shape[0], K, replace=False)]
            self.inertia_ = []
            for _ in range(self.iterations):
                labels = kmeans_assign(X, centroids, self.max_memory)
                centroids = kmeans_update(X, labels, centroids, rng)
                bar.update(1)
            self.centroids_ = np.ascontiguousarray(centroids, dtype=np.float32)
        finally:
            bar.close()

    def _whiten_rows(self, X):
        """Whiten float32 patches X (n, d) in place, a chunk of rows at a time."""
        step = chunk_size(8 * X.shape[1], self.max_memory)
        offset = self.whiten_mean_ @ self.whiten_matrix_
        for start in range(0, X.shape[0], step):
            block = X[start:start + step] @ self.whiten_matrix_
            block -= offset
            X[start:start + step] = block

    # -------------------------------------------------------------- transform
    def _transform(self, images, progress):
        rows, cols = patch_grid(images.shape[1:], self.patch_size, self.stride)
        pooling = pooling_cells(rows, cols, self.pooling)
        threads = max(1, min(cpu_count(), images.shape[0]))
        if _kernels.available():
            encoder = PatchEncoder(self, images.shape[1:], pooling)
            try:
                return self._encode_blocks(encoder.encode, images, threads, progress,
                                           images_per_block(encoder, images.shape[0], threads, self.max_memory))
            except _kernels.KernelFailed:
                pass  # a kernel that cannot be compiled here: the NumPy path gives the same features
        encoder = ReferenceEncoder(self, images.shape[1:], pooling)
        return self._encode_blocks(encoder.encode, images, threads, progress,
                                   encoder.images_per_block(images.shape[0], threads, self.max_memory))

    def _encode_blocks(self, encode, images, threads, progress, per_block):
        """encode(block) for blocks of per_block images, one worker thread per core: (N, D)."""
        N = images.shape[0]
        out = np.empty((N, self.output_dim(images.shape[1:])), np.float32)

        def run(start):
            stop = min(N, start + per_block)
            out[start:stop] = encode(images[start:stop])
            return stop - start

        bar = progress_bar(progress, N, "k-means encoding")
        try:
            with _blas_threads(1 if threads > 1 else None), ThreadPoolExecutor(threads) as pool:
                for done in pool.map(run, range(0, N, per_block)):
                    bar.update(done)
        finally:
            bar.close()
        return out

    # -------------------------------------------------------------- display
    def filters(self):
        """The centroids in pixel space, for display: float32 (K, p, p, C).

        Undoes the whitening (x @ inv(matrix) + mean); the contrast normalisation cannot be
        undone, so values are on the normalised scale (about -3..3): scale each filter to
        [0, 1] on its own before drawing.
        """
        if not hasattr(self, "centroids_"):
            raise ValueError("KMeansFeatures is not fitted yet; call fit(images) first.")
        C = self.centroids_.astype(np.float64)
        if self.whiten:
            C = np.linalg.solve(self.whiten_matrix_.astype(np.float64), C.T).T + self.whiten_mean_
        p, channels = self.patch_size, int(self.input_shape_[2])
        return C.astype(np.float32).reshape(-1, p, p, channels)
