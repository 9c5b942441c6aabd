"""Results that come back from a Dask cluster belong to the run and job that asked for them."""

import threading

import pytest

from mlcv_cli import config
from mlcv_cli.errors import MlcvError
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import dask_executor

distributed = pytest.importorskip("distributed")

SMALL = {"data.num_train": 300, "data.num_val": 0, "data.num_test": 10, "train.epochs": 1, "cv.folds": 2}


def _cfg(tmp_path, seed):
    values = {**SMALL, "seed": seed, "output.dir": str(tmp_path / "runs"), "cv.grid": {"train.lr": [0.003, 0.03]}}
    return config.replace(config.resolve(model_type="softmax"), values)


def _table(result):
    return [(s["params"], s["folds"]) for s in result["summary"]]


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
    assert _table(results["b"]) == _table(alone)
    assert _table(results["a"]) == _table(crossval.cross_validate(_cfg(tmp_path, 1)))


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
