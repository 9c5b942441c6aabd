"""Running cv jobs on a Dask cluster: reaching it, scattering the data once, checking that every answer
belongs to this run and job, and giving up on a cluster that lost its workers."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import time
from concurrent.futures import CancelledError

from ...errors import MlcvError, UsageError
from ...system import cluster as cluster_mod
from ...system import signals
from . import jobs as fold_jobs


def _run_on_dask(job, plan, data, token):
    # The answer names the run and job it belongs to; the client checks both on arrival.
    return {"run": token, "job": job["id"], "rows": fold_jobs.run_job(job, plan, data, 1)}


def _sigint_ignored():
    return signals.handling((signal.SIGINT,), signal.SIG_IGN)


@contextlib.contextmanager
def dask_client(address, n_jobs, timeout=None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--dask-scheduler needs dask.distributed; install it with: pip install 'mlcv[dask]'") from None
    cluster = None
    try:
        if address == "local":
            # Workers started while SIGINT is ignored keep ignoring it: a Ctrl-C in the
            # terminal then stops this process cleanly instead of every worker with a traceback.
            with _sigint_ignored():
                cluster = LocalCluster(
                    n_workers=max(1, n_jobs),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            client = Client(cluster)
        else:
            # mlcv reports a lost cluster in one line; distributed's own tracebacks would bury it.
            for name in list(logging.root.manager.loggerDict):
                if name == "distributed" or name.startswith("distributed."):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
            if "://" not in address or address.startswith("tcp://"):  # the CLI allows no other; the API may use inproc://
                cluster_mod.probe_scheduler(address, timeout)
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise MlcvError(f"cannot reach the Dask scheduler at {address} ({exc}); check the address or use --dask-scheduler local") from None
    try:
        if cluster is None:
            cluster_mod.check_workers(client, address, timeout)
        yield client
    finally:
        with contextlib.suppress(Exception):  # a dead scheduler cannot be told goodbye
            client.close(timeout=5)
        if cluster is not None:
            cluster.close()


class ClusterLost(MlcvError):
    """The Dask scheduler went away (or cancelled our work) in the middle of a run."""


def execute_on_dask(client, jobs, plan, data, on_done, timeout=None):
    from dask.distributed import as_completed

    # One copy of the data per worker, not one per job (scattered keys hash the content).
    [data_f] = client.scatter([data], broadcast=True)
    [plan_f] = client.scatter([plan], broadcast=True)
    # Task keys are unique to this execution: a scheduler hands an existing key's result to
    # whoever submits that key again, so keys from a pid or a job id alone would let two
    # runs (two containers with the same pid) receive each other's accuracies.
    token = secrets.token_hex(16)
    futures = {
        client.submit(_run_on_dask, job, plan_f, data_f, token, key=f"mlcv-{job['id']}-{token}", pure=False): job
        for job in jobs
    }

    from distributed.comm import CommClosedError

    watch = cluster_mod.WorkerWatch(client, timeout or cluster_mod.DEFAULT_TIMEOUT)
    for fut in _completed(as_completed(futures), watch):
        job = futures[fut]
        try:
            answer = fut.result()
        except (CancelledError, CommClosedError, OSError, TimeoutError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterLost(f"lost the Dask cluster while job {job['id']} ran ({reason[:200]})") from None
        except ImportError as exc:  # a worker that joined after the check, without mlcv
            raise ClusterLost(f"a Dask worker cannot run job {job['id']} ({exc}); install mlcv where the workers run") from None
        if not isinstance(answer, dict) or answer.get("run") != token or answer.get("job") != job["id"]:
            found = (answer.get("run"), answer.get("job")) if isinstance(answer, dict) else type(answer).__name__
            raise MlcvError(
                f"the Dask cluster answered job {job['id']} with a result for another run or job ({found}); "
                "nothing from it was recorded. Resume on a cluster of your own or with --jobs"
            )
        on_done(job["id"], answer["rows"])


def _completed(ac, watch):
    """Futures of ``ac`` as they finish; a cluster left without workers for the watch's timeout
    raises ClusterLost instead of waiting forever."""
    while not ac.is_empty():
        ready = ac.next_batch(block=False)
        if ready:
            yield from ready
            continue
        gone = watch.gone_for()
        if gone is not None:
            raise ClusterLost(f"the Dask cluster has had no workers for {gone:.0f} s (--dask-timeout {watch.timeout:g})")
        time.sleep(0.05)
