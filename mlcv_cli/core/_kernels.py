"""Compiled inner loops for what NumPy cannot do at hardware speed (numba, imported lazily).

Every kernel here has a NumPy reference elsewhere in core/ that the tests hold it to, and
callers fall back to that reference when ``available()`` is False (numba missing, or
MLCV_NO_JIT=1 in the environment). numba is imported on the first compiled call only, so
`mlcv --help` and the linear models never pay for it; compiled machine code is cached on
disk (numba's ``cache=True``), so only the first call on a machine compiles.
"""
import functools
import os

prange = range  # numba.prange inside compiled kernels (see _load); plain range in py_func

_numba = None
_reason = None


def _load():
    """The numba module, or None (with the reason kept for ``unavailable_reason``)."""
    global _numba, _reason, prange
    if _numba is None and _reason is None:
        if os.environ.get("MLCV_NO_JIT", "").strip() not in ("", "0"):
            _reason = "MLCV_NO_JIT is set"
        else:
            try:
                import numba
            except Exception as exc:  # ImportError, or a broken llvmlite
                _reason = f"numba cannot be imported ({type(exc).__name__}: {exc})"
            else:
                _tune_llvm()
                prange = numba.prange
                _numba = numba
    return _numba


def _tune_llvm():
    # LLVM's loop vectorizer sizes vectors by the widest type in a loop: a uint8 L1 sum with
    # int32 accumulators gets 8 lanes, i.e. 8 bytes per packed absolute-difference
    # instruction. Sizing by the narrowest type (uint8: 32 lanes on AVX2) measured 2x faster
    # and leaves float-only loops unchanged. The option is process-wide; it must precede the
    # first compilation, and cached machine code was compiled with it.
    try:
        import llvmlite.binding as llvm

        llvm.set_option("", "-vectorizer-maximize-bandwidth")
    except Exception:  # an llvmlite without the option: correct code, just narrower vectors
        pass


def available():
    """True when the compiled kernels can be used."""
    return _load() is not None


def unavailable_reason():
    """Why the compiled kernels cannot be used ('' when they can)."""
    _load()
    return _reason or ""


class KernelFailed(RuntimeError):
    """A kernel could not be compiled or failed on its first call on this machine."""


def jit(**options):
    """Decorator: compile ``fn`` with numba.njit(cache=True, **options) on its first call.

    Calling a kernel when ``available()`` is False raises RuntimeError; callers check
    ``available()`` first and use their NumPy reference instead. Until a kernel has run once,
    any failure of it (a compiler that does not work here) is raised as KernelFailed, which
    callers may answer with the reference; later errors are raised as they are.
    """

    def wrap(fn):
        compiled = None
        proven = False

        @functools.wraps(fn)
        def call(*args):
            nonlocal compiled, proven
            if proven:
                return compiled(*args)
            if compiled is None:
                nb = _load()
                if nb is None:
                    raise RuntimeError(f"compiled kernel {fn.__name__} is unavailable: {_reason}")
                try:
                    compiled = nb.njit(cache=True, **options)(fn)
                except RuntimeError:  # no writable cache location: compile on every run instead
                    compiled = nb.njit(**options)(fn)
            try:
                out = compiled(*args)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:
                raise KernelFailed(f"{fn.__name__}: {type(exc).__name__}: {exc}") from exc
            proven = True
            return out

        call.py_func = fn  # the plain Python version, for tests on tiny inputs
        return call

    return wrap


def set_threads(n):
    """Threads used by parallel kernels (numba.set_num_threads); returns the previous count."""
    nb = _load()
    if nb is None:
        return n
    previous = nb.get_num_threads()
    nb.set_num_threads(max(1, min(int(n), nb.config.NUMBA_NUM_THREADS)))
    return previous


def set_chunk_size(n):
    """Iterations a thread takes at a time from the parallel loops that this thread starts
    (numba.set_parallel_chunksize; 0: equal static shares); returns the previous value.
    Taking them one at a time keeps all cores busy when one of them is also running other work."""
    nb = _load()
    if nb is None:
        return n
    return nb.set_parallel_chunksize(int(n))


# -- L1 distances (the kNN speed issue) -----------------------------------------------------

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


# -- patch encoding (the features issue) ----------------------------------------------------
import numpy as np  # noqa: E402  (kernels only; kept in this section so the loader stays import-free)


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


# -- linear models: the L-BFGS evaluation (the time-to-accuracy issue) ----------------------

CLASS_TILE = 5
"""Classes per register tile of linear_loss_grad: Wt and dWt_parts have a multiple of it rows."""


@jit(parallel=True, fastmath={"reassoc", "contract", "nsz"})
def linear_loss_grad(X, Wt, b, y, svm, delta, squared, chunk, dWt_parts, db_parts, loss_parts):
    """Data loss and gradient of a linear classifier, reading each row of X from memory once.

    X (N, D) float32 or float64, C-contiguous; Wt (Cp, D) the weights transposed, in X's
    dtype, padded with zero rows to Cp, a multiple of CLASS_TILE; b (C,) float64 (C <= Cp
    classes); y (N,) int64. Scores s = X @ W accumulate in X's dtype, + b in float64; svm:
    the multiclass hinge (delta, squared) of losses.svm_data_loss, else softmax
    cross-entropy, summed over rows (not averaged: the caller divides by N), as are dscores.
    Chunk q of rows [q * chunk, (q + 1) * chunk) writes sum_r X_r^T ds_r into dWt_parts[q]
    (Cp, D), zeroed by the caller, in X's dtype (ds cast to it, as the NumPy path does), the
    sum of its dscores into db_parts[q] (C,) and its loss into loss_parts[q]. Rows go by
    blocks of 8: their scores (tiles of 4 rows x 5 classes), loss and dscores, and their
    gradient (tiles of 8 rows x 5 classes) while the block is in the L2 cache. Chunks run in
    parallel, each in a fixed order, so the parts do not depend on the thread count.
    Reference: core.fused.loss_grad_reference.
    """
    N, D = X.shape
    Cp = Wt.shape[0]
    C = b.shape[0]
    zero_row = np.zeros(D, X.dtype)
    for q in prange(loss_parts.shape[0]):
        r1 = min(N, (q + 1) * chunk)
        acc = dWt_parts[q]
        S = np.zeros((8, Cp), X.dtype)
        ds = np.zeros((8, Cp), X.dtype)
        p = np.empty(C)
        db = np.zeros(C)
        loss = 0.0
        for r in range(q * chunk, r1, 8):
            R = min(8, r1 - r)  # a short last block reads zero rows, and its missing ds are 0
            x0 = X[r]
            x1 = X[r + 1] if R > 1 else zero_row
            x2 = X[r + 2] if R > 2 else zero_row
            x3 = X[r + 3] if R > 3 else zero_row
            x4 = X[r + 4] if R > 4 else zero_row
            x5 = X[r + 5] if R > 5 else zero_row
            x6 = X[r + 6] if R > 6 else zero_row
            x7 = X[r + 7] if R > 7 else zero_row
            for c in range(0, Cp, 5):
                w0, w1, w2, w3, w4 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3], Wt[c + 4]
                for half in range(2):
                    ya, yb, yc, yd = (x0, x1, x2, x3) if half == 0 else (x4, x5, x6, x7)
                    a0 = a1 = a2 = a3 = a4 = X.dtype.type(0)
                    b0 = b1 = b2 = b3 = b4 = X.dtype.type(0)
                    c0 = c1 = c2 = c3 = c4 = X.dtype.type(0)
                    e0 = e1 = e2 = e3 = e4 = X.dtype.type(0)
                    for j in range(D):
                        v0, v1, v2, v3, v4 = w0[j], w1[j], w2[j], w3[j], w4[j]
                        t = ya[j]
                        a0 += t * v0; a1 += t * v1; a2 += t * v2; a3 += t * v3; a4 += t * v4  # noqa: E702
                        t = yb[j]
                        b0 += t * v0; b1 += t * v1; b2 += t * v2; b3 += t * v3; b4 += t * v4  # noqa: E702
                        t = yc[j]
                        c0 += t * v0; c1 += t * v1; c2 += t * v2; c3 += t * v3; c4 += t * v4  # noqa: E702
                        t = yd[j]
                        e0 += t * v0; e1 += t * v1; e2 += t * v2; e3 += t * v3; e4 += t * v4  # noqa: E702
                    k = 4 * half
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = a0, a1, a2, a3, a4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = b0, b1, b2, b3, b4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = c0, c1, c2, c3, c4
                    k += 1
                    S[k, c], S[k, c + 1], S[k, c + 2], S[k, c + 3], S[k, c + 4] = e0, e1, e2, e3, e4
            for k in range(R):
                label = y[r + k]
                for c in range(C):
                    p[c] = np.float64(S[k, c]) + b[c]
                if svm:
                    sy = p[label]
                    total = 0.0
                    for c in range(C):
                        margin = max(p[c] - sy + delta, 0.0) if c != label else 0.0
                        loss += margin * margin if squared else margin
                        p[c] = 2.0 * margin if squared else (1.0 if margin > 0 else 0.0)
                        total += p[c]
                    p[label] = -total
                else:
                    top = p[0]
                    for c in range(1, C):
                        top = max(top, p[c])
                    sy = p[label] - top
                    total = 0.0
                    for c in range(C):
                        p[c] = np.exp(p[c] - top)
                        total += p[c]
                    loss += np.log(total) - sy
                    for c in range(C):
                        p[c] /= total
                    p[label] -= 1.0
                for c in range(C):
                    db[c] += p[c]
                    ds[k, c] = p[c]
            for k in range(R, 8):
                for c in range(C):
                    ds[k, c] = 0
            for c in range(0, Cp, 5):
                g0, g1, g2, g3, g4 = acc[c], acc[c + 1], acc[c + 2], acc[c + 3], acc[c + 4]
                d00, d01, d02, d03, d04 = ds[0, c], ds[0, c + 1], ds[0, c + 2], ds[0, c + 3], ds[0, c + 4]
                d10, d11, d12, d13, d14 = ds[1, c], ds[1, c + 1], ds[1, c + 2], ds[1, c + 3], ds[1, c + 4]
                d20, d21, d22, d23, d24 = ds[2, c], ds[2, c + 1], ds[2, c + 2], ds[2, c + 3], ds[2, c + 4]
                d30, d31, d32, d33, d34 = ds[3, c], ds[3, c + 1], ds[3, c + 2], ds[3, c + 3], ds[3, c + 4]
                d40, d41, d42, d43, d44 = ds[4, c], ds[4, c + 1], ds[4, c + 2], ds[4, c + 3], ds[4, c + 4]
                d50, d51, d52, d53, d54 = ds[5, c], ds[5, c + 1], ds[5, c + 2], ds[5, c + 3], ds[5, c + 4]
                d60, d61, d62, d63, d64 = ds[6, c], ds[6, c + 1], ds[6, c + 2], ds[6, c + 3], ds[6, c + 4]
                d70, d71, d72, d73, d74 = ds[7, c], ds[7, c + 1], ds[7, c + 2], ds[7, c + 3], ds[7, c + 4]
                for j in range(D):
                    t0, t1, t2, t3, t4, t5, t6, t7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
                    g0[j] += (t0 * d00 + t1 * d10 + t2 * d20 + t3 * d30 + t4 * d40 + t5 * d50 + t6 * d60 + t7 * d70)
                    g1[j] += (t0 * d01 + t1 * d11 + t2 * d21 + t3 * d31 + t4 * d41 + t5 * d51 + t6 * d61 + t7 * d71)
                    g2[j] += (t0 * d02 + t1 * d12 + t2 * d22 + t3 * d32 + t4 * d42 + t5 * d52 + t6 * d62 + t7 * d72)
                    g3[j] += (t0 * d03 + t1 * d13 + t2 * d23 + t3 * d33 + t4 * d43 + t5 * d53 + t6 * d63 + t7 * d73)
                    g4[j] += (t0 * d04 + t1 * d14 + t2 * d24 + t3 * d34 + t4 * d44 + t5 * d54 + t6 * d64 + t7 * d74)
        db_parts[q] = db
        loss_parts[q] = loss


@jit(parallel=True)
def sum_parts(parts, out):
    """out (D, C) float64 = the sum over q of parts[q, :C] ((Q, Cp, D), Cp >= C), transposed,
    added in the order of q (blocks of columns in parallel: the same bits whatever the
    thread count)."""
    Q, _, D = parts.shape
    C = out.shape[1]
    for blk in prange(-(-D // 512)):
        j0 = blk * 512
        n = min(D, j0 + 512) - j0
        t = np.zeros((C, n))
        for q in range(Q):
            for c in range(C):
                row = parts[q, c, j0:j0 + n]
                tc = t[c]
                for j in range(n):
                    tc[j] += row[j]
        for j in range(n):
            for c in range(C):
                out[j0 + j, c] = t[c, j]
