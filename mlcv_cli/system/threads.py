"""How many BLAS threads each kind of work gets (threadpoolctl sets it per operation).

Minibatch training multiplies small matrices (batch x D by D x C) thousands of times: there,
starting and syncing BLAS threads costs more than it saves, so it runs on one thread.
kNN's large distance products keep every core. See bench/bench_threads.py for the figures.
"""

from __future__ import annotations

import contextlib

# Threads for minibatch training of linear models; None leaves BLAS at its default (all cores).
LINEAR_FIT_THREADS = 1


def blas_threads(limit):
    """A context in which BLAS uses at most ``limit`` threads (``None``: unchanged)."""
    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without it is slower, not wrong
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")
