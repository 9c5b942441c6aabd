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
    cost one packed add and compare. Reference: knn._topk_rows and knn._merge.
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
def triangle_pool(G, x2, c2, order, starts, out):
    """Triangle codes max(0, mean_k(z) - z_k), z_k = ||x - c_k||, summed per pooling cell, in one
    pass over the dot products G (B, P, K) float32 of B images' P patches with K centroids.

    x2 (B, P) and c2 (K,): squared norms of the patches and centroids (float32); the
    positions of cell q are order[starts[q]:starts[q + 1]] (int64); out (B, cells, K)
    float32, zeroed, receives the sums. Each row of G is read once, while it is in the L1
    cache. Serial and without the GIL: callers run one block per thread.
    Reference: features.kmeans.encode_pool_reference.
    """
    B, P, K = G.shape
    num_cells = starts.shape[0] - 1
    two = np.float32(2.0)
    zero = np.float32(0.0)
    z = np.empty(K, np.float32)
    for i in range(B):
        for cell in range(num_cells):
            acc = out[i, cell]
            for j in range(starts[cell], starts[cell + 1]):
                p = order[j]
                row = G[i, p]
                norm = x2[i, p]
                total = zero
                for k in range(K):
                    dist = np.sqrt(max(norm + c2[k] - two * row[k], zero))
                    z[k] = dist
                    total += dist
                mean = total / np.float32(K)
                for k in range(K):
                    acc[k] += max(mean - z[k], zero)


@jit(nogil=True, fastmath=True)
def soft_threshold_pool(G, alpha, order, starts, out):
    """Soft-threshold codes max(0, G - alpha) summed per pooling cell (arguments as triangle_pool;
    alpha a float32)."""
    B, P, K = G.shape
    num_cells = starts.shape[0] - 1
    zero = np.float32(0.0)
    for i in range(B):
        for cell in range(num_cells):
            acc = out[i, cell]
            for j in range(starts[cell], starts[cell + 1]):
                row = G[i, order[j]]
                for k in range(K):
                    acc[k] += max(row[k] - alpha, zero)
