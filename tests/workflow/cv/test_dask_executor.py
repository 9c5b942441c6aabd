"""workflow/cv/dask_executor.py: results that come back from a Dask cluster belong to the run and job that
asked for them, and a cluster without workers is given up after --dask-timeout."""

import threading
import time

import pytest

from helpers import cv_table
from mlcv_cli import config
from mlcv_cli.errors import MlcvError
from mlcv_cli.system.cluster import WorkerWatch
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import dask_executor

distributed = pytest.importorskip("distributed")

SMALL = {"data.num_train": 300, "data.num_val": 0, "data.num_test": 10, "train.epochs": 1, "cv.folds": 2}


def _cfg(tmp_path, seed):
    values = {**SMALL, "seed": seed, "output.dir": str(tmp_path / "runs"), "cv.grid": {"train.lr": [0.003, 0.03]}}
    return config.replace(config.resolve(model_type="softmax"), values)


class _HeldBar:
    """A progress bar that blocks on the first finished job until released, so the run's futures stay alive."""

    def __init__(self, reached, release):
        self.reached, self.release = reached, release

    def __call__(self, total, desc):
        return self

    def update(self, n=1, **postfix):
        if n:
            self.reached.set()
            self.release.wait(60)

    def close(self):
        pass


def test_two_runs_from_one_pid_on_one_scheduler_keep_their_own_results(tmp_path):
    # Two runs in one process share a pid, as two runs in two containers can.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        reached, release = threading.Event(), threading.Event()
        results = {}

        def run_a():
            results["a"] = crossval.cross_validate(_cfg(tmp_path, 1), dask_scheduler=cluster.scheduler_address,
                                                   progress=_HeldBar(reached, release))

        thread = threading.Thread(target=run_a)
        thread.start()
        try:
            assert reached.wait(120), "run A never finished a job"
            results["b"] = crossval.cross_validate(_cfg(tmp_path, 2), dask_scheduler=cluster.scheduler_address)
        finally:
            release.set()
            thread.join(120)
    alone = crossval.cross_validate(_cfg(tmp_path, 2))
    assert cv_table(results["b"]) == cv_table(alone)
    assert cv_table(results["a"]) == cv_table(crossval.cross_validate(_cfg(tmp_path, 1)))


@pytest.mark.parametrize("forge", ["other run", "other job", "extra fold", "nan accuracy"])
def test_an_answer_that_is_not_for_the_job_is_refused_and_not_recorded(tmp_path, monkeypatch, forge):
    genuine = dask_executor._run_on_dask

    def forged(job, plan, data, token):
        answer = genuine(job, plan, data, token)
        if forge == "other run":
            answer["run"] = "0" * 32
        elif forge == "other job":
            answer["job"] = "p1-f1" if job["id"] != "p1-f1" else "p0-f0"
        elif forge == "extra fold":
            answer["rows"] = answer["rows"] + [dict(answer["rows"][0], fold=5)]
        else:
            answer["rows"][0]["accuracy"] = float("nan")
        return answer

    monkeypatch.setattr(dask_executor, "_run_on_dask", forged)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(MlcvError, match="nothing from it was recorded"):
            crossval.cross_validate(_cfg(tmp_path, 1), dask_scheduler=cluster.scheduler_address)
    journals = list((tmp_path / "runs").glob("*/jobs.jsonl"))
    assert all(j.read_text() == "" for j in journals)


# -- a cluster without workers ------------------------------------------------------------------


class _SchedulerInfo:
    """Stands in for a Client: only scheduler_info(), with the workers the test says."""

    def __init__(self):
        self.workers = {"tcp://a": {}}

    def scheduler_info(self):
        return {"workers": dict(self.workers)}


def test_worker_watch_counts_the_time_without_workers():
    client = _SchedulerInfo()
    watch = WorkerWatch(client, timeout=0.2, every=0)
    assert watch.gone_for() is None
    client.workers = {}
    assert watch.gone_for() is None  # the clock starts now
    time.sleep(0.25)
    assert watch.gone_for() >= 0.2
    client.workers = {"tcp://b": {}}
    assert watch.gone_for() is None and watch.empty_since is None


def test_jobs_waiting_on_a_cluster_without_workers_end_after_the_timeout():
    class NothingFinishes:
        def is_empty(self):
            return False

        def next_batch(self, block=True):
            return []

    client = _SchedulerInfo()
    client.workers = {}
    with pytest.raises(dask_executor.ClusterLost, match=r"no workers for \d+ s \(--dask-timeout 0.2\)"):
        list(dask_executor._completed(NothingFinishes(), WorkerWatch(client, timeout=0.2, every=0)))
