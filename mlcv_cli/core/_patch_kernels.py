"""Compiled kernels of the k-means patch encoder (features/patch_encoder.py; numba, through
_kernels.jit): normalised patches in the mirror basis, and their codes pooled per cell.
"""
import numpy as np

from ._kernels import jit


@jit(nogil=True, fastmath=True)
def mirror_basis_patches(images, g0, g1, rows, cols, row_step, col_step, off_a, off_b, n_pairs, eps, Z, x2):
    """Contrast-normalised patches in the mirror basis, from uint8 pixels, one patch per row of Z.

    images (B, H * W * C) uint8, each image flattened; patch rows g0 .. g1 - 1 counted over
    the whole batch (image g // rows, patch row g % rows); the patch at (r, c) starts at
    pixel offset r * row_step + c * col_step. The patch element pairs (a, b) that the
    left-right mirror swaps are off_a[j], off_b[j] (offsets from the patch's corner), the
    first n_pairs of them true pairs, the rest the middle column (a == b). Row
    (g - g0) * cols + c of Z (n, d) float32 receives u = ((x_a + x_b) / 2 - mean) / scale for
    the even part (Z[:, :len(off_a)]), then v = ((x_a - x_b) / 2) / scale for the pairs,
    with mean and scale = sqrt(var + eps) of the patch's d pixels, as normalize_patches;
    x2 (n,) float32 receives the squared norm of the normalised patch. Mirroring a patch
    leaves u bit for bit as it is and negates v exactly. Reference:
    features.patch_encoder.mirror_basis_reference.
    """
    d_e = off_a.shape[0]
    d = n_pairs + d_e
    half = np.float32(0.5)
    two = np.float32(2.0)
    xa = np.empty(d_e, np.float32)
    xb = np.empty(d_e, np.float32)
    for g in range(g0, g1):
        img = images[g // rows]
        top = (g % rows) * row_step
        for c in range(cols):
            base = top + c * col_step
            # Sums of at most 108 values below 2^16 are integers below 2^24: exact in float32.
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            for j in range(d_e):
                a = np.float32(img[base + off_a[j]])
                b = np.float32(img[base + off_b[j]])
                xa[j] = a
                xb[j] = b
                s1 += a + b
                s2 += a * a + b * b
            for j in range(n_pairs, d_e):  # the middle column was counted twice
                s1 -= xa[j]
                s2 -= xa[j] * xa[j]
            # The variance from exact sums: (d * S2 - S1^2) / d^2, exact up to the division.
            S1 = np.float64(s1)
            var = (np.float64(d) * np.float64(s2) - S1 * S1) / np.float64(d * d)
            mean = np.float32(S1 / np.float64(d))
            inv = np.float32(1.0 / np.sqrt(var + eps))
            row = Z[(g - g0) * cols + c]
            q = np.float32(0.0)
            for j in range(n_pairs):
                u = ((xa[j] + xb[j]) * half - mean) * inv
                v = ((xa[j] - xb[j]) * half) * inv
                row[j] = u
                row[d_e + j] = v
                q += two * (u * u + v * v)
            for j in range(n_pairs, d_e):
                u = (xa[j] - mean) * inv
                row[j] = u
                q += u * u
            x2[(g - g0) * cols + c] = q


@jit(nogil=True, fastmath=True)
def pool_codes(RE, RO, K, sides, triangle, x2, mw, cvec, g0, g1, rows, cols, cells, mcells, out, out_m):
    """Codes of a slab of patches from their products with the fused centroids, summed per pooling cell.

    Patch (g, c) of patch rows g0 .. g1 - 1 (image g // rows of out, patch row g % rows)
    is row (g - g0) * cols + c of RE and RO. RE (n, K + dy) float32 holds the products of the
    patches' even parts with the even parts of the fused centroids (K columns) and of the
    whitening (dy columns, 0 without whitening); RO the same for the odd parts, or has no rows
    when the products are whole in RE. Side 0 takes e + o, and pools into out (B, cells, K) by
    cells (rows * cols,); side 1 (when sides == 2) takes e - o: the mirror image's patch, pooled
    into out_m by mcells, visiting each patch row right to left, so that its sums are formed
    in the order of the mirror image's own side 0, bit for bit.
    triangle: f_k = max(0, mean(z) - z_k), z_k = sqrt(|y|^2 + cvec_k - 2 g_k), |y|^2 from the
    whitening columns (y = e + o - mw) or x2 (n,) when dy == 0; else soft threshold
    f_k = max(0, g_k - cvec_k). Reference: features.patch_encoder.pool_codes_reference.
    """
    dy = RE.shape[1] - K
    has_odd = RO.shape[0] > 0
    zero = np.float32(0.0)
    two = np.float32(2.0)
    z = np.empty(K, np.float32)
    for g in range(g0, g1):
        i = g // rows
        r = g % rows
        for side in range(sides):
            sign = np.float32(1.0) if side == 0 else np.float32(-1.0)
            for cc in range(cols):
                c = cc if side == 0 else cols - 1 - cc
                row = (g - g0) * cols + c
                e = RE[row]
                o = RO[row] if has_odd else RE[row]
                acc = out[i, cells[r * cols + c]] if side == 0 else out_m[i, mcells[r * cols + c]]
                if not triangle:
                    if has_odd:
                        for k in range(K):
                            acc[k] += max(e[k] + sign * o[k] - cvec[k], zero)
                    else:
                        for k in range(K):
                            acc[k] += max(e[k] - cvec[k], zero)
                    continue
                norm = zero
                if dy == 0:
                    norm = x2[row]
                elif has_odd:
                    for j in range(dy):
                        t = e[K + j] + sign * o[K + j] - mw[j]
                        norm += t * t
                else:
                    for j in range(dy):
                        t = e[K + j] - mw[j]
                        norm += t * t
                total = zero
                if has_odd:
                    for k in range(K):
                        dist = np.sqrt(max(norm + cvec[k] - two * (e[k] + sign * o[k]), zero))
                        z[k] = dist
                        total += dist
                else:
                    for k in range(K):
                        dist = np.sqrt(max(norm + cvec[k] - two * e[k], zero))
                        z[k] = dist
                        total += dist
                mean = total / np.float32(K)
                for k in range(K):
                    acc[k] += max(mean - z[k], zero)
