"""Compiled inner loops for what NumPy cannot do at hardware speed (numba, imported lazily):
whether they can run, and the ``jit`` that compiles them. The kernels live by consumer in
_knn_kernels.py, _patch_kernels.py and _linear_kernels.py.

Every kernel has a NumPy reference elsewhere in core/ that the tests hold it to, and
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
                _tune_llvm()
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
    callers may answer with the reference; later errors are raised as they are. A kernel
    module binds ``prange = range`` (so py_func runs as plain Python); it becomes numba.prange
    there before the module's first kernel compiles.
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
                if "prange" in fn.__globals__:
                    fn.__globals__["prange"] = nb.prange
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
