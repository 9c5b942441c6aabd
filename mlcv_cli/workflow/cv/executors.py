"""Running cv jobs: serially, or in spawned local worker processes that die with their parent; a Dask
cluster through dask_executor.py."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import threading
import time

from ...errors import MlcvError
from ...system import cluster as cluster_mod
from . import jobs as fold_jobs
from .dask_executor import dask_client, execute_on_dask

_WORKER_STATE = {}


def _init_worker(plan, data, threads, parent_pid=None):
    _die_with_parent(parent_pid)
    _WORKER_STATE.update(plan=plan, data=data, threads=threads)


def _die_with_parent(parent_pid):
    """End this worker when the cv process that started it dies, even by SIGKILL: an orphaned
    worker would go on holding the data (and a core) for nobody."""
    if parent_pid is None:
        return
    try:
        import ctypes

        pr_set_pdeathsig = 1
        if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
    except (OSError, AttributeError):  # not Linux
        pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="mlcv-parent-watch", daemon=True).start()


def _run_in_worker(job):
    return job["id"], fold_jobs.run_job(job, _WORKER_STATE["plan"], _WORKER_STATE["data"], _WORKER_STATE["threads"])


_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@contextlib.contextmanager
def executor(n_jobs, dask_scheduler, dask_timeout=None, resume_hint=""):
    """Yield ``execute(jobs, plan, data, on_done)`` for the chosen executor.

    A Dask cluster is reached on entry, so an unreachable scheduler fails before any
    run directory is made.
    """
    if dask_scheduler:
        timeout = dask_timeout or cluster_mod.DEFAULT_TIMEOUT
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(dask_client(dask_scheduler, n_jobs, timeout))
            except MlcvError as exc:
                exc.args = (f"{exc}{resume_hint}",)
                raise
            yield lambda jobs, plan, data, on_done: execute_on_dask(client, jobs, plan, data, on_done, timeout)
    elif n_jobs <= 1:
        def serial(jobs, plan, data, on_done):
            for job in jobs:
                on_done(job["id"], fold_jobs.run_job(job, plan, data))

        yield serial
    else:
        yield lambda jobs, plan, data, on_done: _execute_processes(jobs, plan, data, n_jobs, on_done)


def _execute_processes(jobs, plan, data, n_jobs, on_done):

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    # Workers are spawned (fresh interpreters), so these limits apply before their BLAS
    # starts: N workers x threads never oversubscribes the cores.
    saved = {k: os.environ.get(k) for k in _BLAS_ENV}
    os.environ.update({k: str(threads) for k in _BLAS_ENV})
    try:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(plan, data, threads, os.getpid())) as pool:
            futures = [pool.submit(_run_in_worker, job) for job in jobs]
            workers = dict(getattr(pool, "_processes", None) or {})  # pid -> Process, to say which one died
            recorded = set()
            try:
                for fut in cf.as_completed(futures):
                    on_done(*fut.result())
                    recorded.add(fut)
            except BaseException as exc:
                for fut in futures:
                    fut.cancel()
                if not isinstance(exc, cf.process.BrokenProcessPool):
                    raise
                # Results that arrived before the pool broke are kept.
                for fut in futures:
                    if fut not in recorded and fut.done() and not fut.cancelled() and fut.exception() is None:
                        on_done(*fut.result())
                pool.shutdown(wait=True)  # joins the workers, so their exit codes are known
                raise ExecutorLost(_dead_workers(workers)) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ExecutorLost(MlcvError):
    """The processes running the jobs are gone (a worker killed, a cluster lost); finished jobs are kept."""


def _dead_workers(workers) -> str:
    dead = []
    for pid, proc in workers.items():
        code = getattr(proc, "exitcode", None)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            dead.append(f"{pid} was killed by {name}" + (" (what the kernel's out-of-memory killer sends)" if -code == signal.SIGKILL else ""))
        elif code not in (None, 0):
            dead.append(f"{pid} exited with code {code}")
    return f"a worker process died ({'; '.join(dead) or 'ended abruptly'})"
