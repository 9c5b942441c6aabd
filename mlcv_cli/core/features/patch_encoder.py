"""The compiled encoding path of KMeansFeatures: each patch read once, in a basis where the
left-right mirror only flips signs, against centroids with the whitening folded into them.

Two identities make it fast, and both are exact algebra (the results differ from the
NumPy reference in kmeans.py by float32 rounding only):

- Whitening folded into the centroids: ((x - m) W) . c = x . (W c) - m . (W c), so the
  products are taken with F = W C (d, K) once per transform, and the bias m . (W c) moves
  into the per-centroid constant of the encoder. The triangle encoder also needs the
  whitened patch's norm; its d whitening columns ride along in the same product.
- Mirror basis: a patch x and its mirror image P x (columns swapped) have the same
  even part u = (x_a + x_b) / 2 and opposite odd parts v = (x_a - x_b) / 2 over the
  pairs (a, b) the mirror swaps. So x . f = u . f_even + v . f_odd and
  (P x) . f = u . f_even - v . f_odd: the products of the mirror image's patches come
  from the same two half-size products, added instead of subtracted. mirror=True costs no
  extra products; only the encoder and pooling run twice.

The mirror image's patch grid is the original's only when (W - p) is a multiple of the
stride; otherwise the mirror image is encoded on its own (still one product per patch).
"""
import numpy as np

from .. import _patch_kernels
from ._common import chunk_size

SLAB_PATCHES = 256
"""Patches per product: enough rows for the BLAS kernel to run at its full rate, few enough
that the products (2 x 256 x (K + d) float32: 3.5 MB for K = 1600) stay in the cache until
the pooling kernel reads them."""


class MirrorBasis:
    """The pairs of patch elements that the left-right mirror swaps, for p x p x C patches.

    ``a``, ``b`` (d_even,) int64: indices into the patch vector (ordered row, column,
    channel as extract_patches): first the ``n_pairs`` true pairs (column j and p - 1 - j),
    then, for odd p, the middle column (a == b). The even part has d_even = n_pairs +
    p * C * (p % 2) entries, the odd part n_pairs; together d.
    """

    def __init__(self, patch_size, channels):
        p, C = patch_size, channels
        index = np.arange(p * p * C).reshape(p, p, C)
        left = index[:, : p // 2, :].ravel()
        right = index[:, ::-1][:, : p // 2, :].ravel()
        middle = index[:, p // 2, :].ravel() if p % 2 else np.empty(0, np.int64)
        self.n_pairs = left.size
        self.a = np.concatenate([left, middle]).astype(np.int64)
        self.b = np.concatenate([right, middle]).astype(np.int64)

    def split(self, M):
        """Rows of M (d, m) for the even and the odd part: (d_even, m), (n_pairs, m).

        x . M = u . even + v . odd for x's even and odd parts u, v (see ``transform``).
        """
        n = self.n_pairs
        even = M[self.a].copy()
        even[:n] += M[self.b[:n]]
        return even, M[self.a[:n]] - M[self.b[:n]]

    def transform(self, X):
        """Patches X (n, d) in the mirror basis: (n, d) = [u (d_even) | v (n_pairs)]."""
        n = self.n_pairs
        u = (X[:, self.a] + X[:, self.b]) / 2
        v = (X[:, self.a[:n]] - X[:, self.b[:n]]) / 2
        return np.concatenate([u, v], axis=1)

    def weights(self):
        """Squared-norm weights of the basis: |x|^2 = sum(w * z^2) for z = transform(x)."""
        w = np.full(self.a.size + self.n_pairs, 2.0)
        w[self.n_pairs : self.a.size] = 1.0
        return w


def mirror_basis_reference(X, basis):
    """NumPy reference of ``_patch_kernels.mirror_basis_patches``: contrast-normalised patches
    X (n, d) (kmeans.normalize_patches) in the mirror basis, (Z (n, d) float32, x2 (n,) float64)."""
    Z = basis.transform(X.astype(np.float64))
    return Z.astype(np.float32), (Z * Z) @ basis.weights()


def pool_codes_reference(RE, RO, K, sides, triangle, x2, mw, cvec, rows, cols, cells, mcells, num_cells):
    """NumPy reference of ``_patch_kernels.pool_codes`` on whole images (g0 = 0): the
    pooled codes of side 0 and of side 1 (zeros when sides == 1), float64 (B, cells, K) each."""
    B = RE.shape[0] // (rows * cols)
    dy = RE.shape[1] - K
    outs = []
    for sign in (1.0, -1.0)[:sides]:
        R = RE.astype(np.float64) + (sign * RO if RO.shape[0] else 0.0)
        if triangle:
            norm = ((R[:, K:] - mw) ** 2).sum(axis=1) if dy else x2.astype(np.float64)
            z = np.sqrt(np.maximum(norm[:, None] + cvec - 2 * R[:, :K], 0))
            codes = np.maximum(z.mean(axis=1, keepdims=True) - z, 0)
        else:
            codes = np.maximum(R[:, :K] - cvec, 0)
        codes = codes.reshape(B, rows * cols, K)
        which = cells if sign > 0 else mcells
        outs.append(np.stack([codes[:, which == q].sum(axis=1) for q in range(num_cells)], axis=1))
    if sides == 1:
        outs.append(np.zeros_like(outs[0]))
    return outs


class PatchEncoder:
    """Encodes blocks of images of one shape with the compiled kernels; built per transform
    from a fitted KMeansFeatures (nothing here is saved: the model file keeps the centroids
    and whitening as fitted)."""

    def __init__(self, extractor, image_shape, pooling_cells):
        H, W, C = image_shape
        p, s = extractor.patch_size, extractor.stride
        self.rows, self.cols = (H - p) // s + 1, (W - p) // s + 1
        self.K = K = extractor.num_centroids
        self.eps = float(extractor.contrast_eps)
        self.mirror = bool(extractor.mirror)
        # The mirror image's patches are the original ones (mirrored) only on a symmetric grid.
        self.sides = 2 if self.mirror and (W - p) % s == 0 else 1
        self.triangle = extractor.encoder == "triangle"
        self.steps = (s * W * C, s * C)
        basis = MirrorBasis(p, C)
        offsets = (np.arange(p)[:, None, None] * W * C + np.arange(p)[None, :, None] * C
                   + np.arange(C)[None, None, :]).ravel()
        self.off_a, self.off_b, self.n_pairs = offsets[basis.a], offsets[basis.b], basis.n_pairs
        self.d_even = basis.a.size

        centroids = extractor.centroids_.astype(np.float64)
        F, bias, self.mw = centroids.T, np.zeros(K), np.zeros(0, np.float32)
        if extractor.whiten:
            matrix = extractor.whiten_matrix_.astype(np.float64)
            F = matrix @ F
            bias = extractor.whiten_mean_.astype(np.float64) @ F
            if self.triangle:  # the whitened norm needs the whitened patch: its columns join F
                self.mw = (extractor.whiten_mean_.astype(np.float64) @ matrix).astype(np.float32)
                F = np.hstack([F, matrix])
        if self.triangle:  # |y - c|^2 = |y|^2 + |c|^2 + 2 m.Wc - 2 x.Wc
            cvec = np.einsum("ij,ij->i", centroids, centroids) + 2 * bias
        else:  # y.c - alpha = x.Wc - (alpha + m.Wc)
            cvec = float(extractor.alpha) + bias
        self.cvec = cvec.astype(np.float32)
        even, odd = basis.split(F)
        self.M_even = np.ascontiguousarray(even, np.float32)
        self.M_odd = np.ascontiguousarray(odd, np.float32)
        self.M_whole = np.vstack([self.M_even, self.M_odd])

        self.cells, self.num_cells = pooling_cells
        self.mcells = np.ascontiguousarray(self.cells.reshape(self.rows, self.cols)[:, ::-1].ravel())
        self.slab_rows = max(1, SLAB_PATCHES // self.cols)

    def temp_bytes(self):
        """Bytes of temporaries one ``encode`` call holds besides its images' output rows."""
        n = self.slab_rows * self.cols
        return 4 * n * (self.M_whole.shape[0] + 1 + 2 * self.M_whole.shape[1])

    def out_bytes_per_image(self):
        return 4 * self.num_cells * self.K * (2 if self.mirror else 1)

    def encode(self, images):
        """Pooled codes of uint8 images (B, H, W, C): float32 (B, cells * K)."""
        B = images.shape[0]
        out = np.zeros((B, self.num_cells, self.K), np.float32)
        out_m = np.zeros_like(out) if self.mirror else out
        self._pool(np.ascontiguousarray(images).reshape(B, -1), out, out_m, self.sides)
        if self.mirror and self.sides == 1:
            flipped = np.ascontiguousarray(images[:, :, ::-1]).reshape(B, -1)
            self._pool(flipped, out_m, out_m, 1)
        if self.mirror:
            out += out_m
            out *= np.float32(0.5)
        return out.reshape(B, -1)

    def _pool(self, flat, out, out_m, sides):
        rows, cols, K = self.rows, self.cols, self.K
        n_max = self.slab_rows * cols
        d = self.M_whole.shape[0]
        Z = np.empty((n_max, d), np.float32)
        x2 = np.empty(n_max, np.float32)
        RE = np.empty((n_max, self.M_whole.shape[1]), np.float32)
        RO = np.empty_like(RE) if sides == 2 else np.empty((0, RE.shape[1]), np.float32)
        total = flat.shape[0] * rows
        for g0 in range(0, total, self.slab_rows):
            g1 = min(total, g0 + self.slab_rows)
            n = (g1 - g0) * cols
            _patch_kernels.mirror_basis_patches(flat, g0, g1, rows, cols, self.steps[0], self.steps[1],
                                                self.off_a, self.off_b, self.n_pairs, self.eps, Z, x2)
            if sides == 2:
                np.matmul(Z[:n, : self.d_even], self.M_even, out=RE[:n])
                np.matmul(Z[:n, self.d_even :], self.M_odd, out=RO[:n])
            else:
                np.matmul(Z[:n], self.M_whole, out=RE[:n])
            _patch_kernels.pool_codes(RE[:n], RO[:n], K, sides, self.triangle, x2[:n], self.mw, self.cvec,
                                      g0, g1, rows, cols, self.cells, self.mcells, out, out_m)


def images_per_block(encoder, num_images, threads, max_memory):
    """Images per worker task: within max_memory across threads, at least one."""
    per_image = encoder.out_bytes_per_image()
    budget = max(max_memory // threads - encoder.temp_bytes(), per_image)
    return max(1, min(-(-num_images // threads), chunk_size(per_image, budget), 64))
