"""A real Dask cluster from the command line (`dask scheduler`, two `dask worker`s on 127.0.0.1):
a worker and then the scheduler are killed in the middle of a cv run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env, cv_table, mlcv, run_mlcv, start_mlcv, wait_for

pytest.importorskip("distributed")

DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
CV = ["cv", "--model", "softmax", "--folds", "3", "--grid", "train.lr=0.002,0.008", "--set", "data.num_train=300",
      "--set", "data.num_val=0", "--set", "data.num_test=10", "--set", "train.epochs=400", "--json"]
# 400 epochs: about 0.5 s a job, so that the kills below land while jobs are left (at 8 epochs all
# six were done 0.1 s after the first, before the scheduler was killed)


def _env():
    return clean_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="5s")


def _spawn(args, cwd, log):
    return subprocess.Popen(args, cwd=cwd, env=_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(predicate, what):
    return wait_for(predicate, what, timeout=90, every=0.1)


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, scheduler process, [worker processes]); everything is killed afterwards."""
    if DASK is None:
        pytest.fail("the dask command is missing although distributed is installed")
    sched_file = tmp_path / "scheduler.json"
    scheduler = _spawn([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                       tmp_path, tmp_path / "scheduler.log")
    procs = [scheduler]
    try:
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size, "the scheduler")
        address = json.loads(sched_file.read_text())["address"]
        workers = [_spawn([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                          tmp_path, tmp_path / f"worker{i}.log") for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, scheduler, workers
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def _mlcv(args, cwd):
    return start_mlcv(*args, cwd=cwd, env=_env())


def _jobs_done(runs):
    found = list(Path(runs).glob("*/jobs.jsonl"))
    return len(found[0].read_text().splitlines()) if found else 0


def test_cv_survives_a_killed_worker_and_a_killed_scheduler(cluster, in_tmp, tmp_path):
    address, scheduler, workers = cluster
    reference = mlcv(*CV, "--set", f"output.dir={tmp_path / 'ref'}")  # serial, in this process
    assert reference.exit_code == 0, reference.output
    expected = cv_table(json.loads(reference.stdout))

    # A worker dies mid-run: its jobs are run again on the other one; the results do not change.
    runs = tmp_path / "runs"
    cv = _mlcv([*CV, "--dask-scheduler", address, "--set", f"output.dir={runs}"], tmp_path)
    _wait(lambda: _jobs_done(runs) >= 1 or cv.poll() is not None, "the first job")
    workers[0].kill()
    out, err = cv.communicate(timeout=300)
    assert cv.returncode == 0, err
    assert cv_table(json.loads(out)) == expected

    # The scheduler dies mid-run: one line saying how to resume, finished jobs kept, no hang.
    runs2 = tmp_path / "runs2"
    cv = _mlcv([*CV, "--dask-scheduler", address, "--set", f"output.dir={runs2}"], tmp_path)
    _wait(lambda: _jobs_done(runs2) >= 1 or cv.poll() is not None, "the first job")
    scheduler.kill()
    out, err = cv.communicate(timeout=120)
    assert cv.returncode == 1, err
    assert "Traceback" not in err and "mlcv cv --resume" in err, err
    [run] = runs2.iterdir()
    kept = _jobs_done(runs2)
    assert kept >= 1
    assert json.loads((run / "meta.json").read_text())["status"] in ("failed", "interrupted")
    resumed = run_mlcv("cv", "--resume", run, "--json", cwd=tmp_path, env=_env(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["jobs_resumed"] == kept and cv_table(result) == expected
