"""Compiled inner loops for what NumPy cannot do at hardware speed (numba, imported lazily).

Every kernel here has a NumPy reference elsewhere in core/ that the tests hold it to, and
callers fall back to that reference when ``available()`` is False (numba missing, or
MLCV_NO_JIT=1 in the environment). numba is imported on the first compiled call only, so
`mlcv --help` and the linear models never pay for it; compiled machine code is cached on
disk (numba's ``cache=True``), so only the first call on a machine compiles.
"""
import functools
import os

_numba = None
_reason = None


def _load():
    """The numba module, or None (with the reason kept for ``unavailable_reason``)."""
    global _numba, _reason
    if _numba is None and _reason is None:
        if os.environ.get("MLCV_NO_JIT", "").strip() not in ("", "0"):
            _reason = "MLCV_NO_JIT is set"
        else:
            try:
                import numba
            except Exception as exc:  # ImportError, or a broken llvmlite
                _reason = f"numba cannot be imported ({type(exc).__name__}: {exc})"
            else:
                _numba = numba
    return _numba


def available():
    """True when the compiled kernels can be used."""
    return _load() is not None


def unavailable_reason():
    """Why the compiled kernels cannot be used ('' when they can)."""
    _load()
    return _reason or ""


def jit(**options):
    """Decorator: compile ``fn`` with numba.njit(cache=True, **options) on its first call.

    Calling a kernel when ``available()`` is False raises RuntimeError; callers check
    ``available()`` first and use their NumPy reference instead.
    """

    def wrap(fn):
        compiled = None

        @functools.wraps(fn)
        def call(*args):
            nonlocal compiled
            if compiled is None:
                nb = _load()
                if nb is None:
                    raise RuntimeError(f"compiled kernel {fn.__name__} is unavailable: {_reason}")
                compiled = nb.njit(cache=True, **options)(fn)
            return compiled(*args)

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
