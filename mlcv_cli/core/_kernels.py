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
