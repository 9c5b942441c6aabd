"""`mlcv cv --jobs N` when its processes die: a worker killed (as the OOM killer does) ends the run
with one line and its finished jobs kept; a killed cv process takes its workers with it."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from helpers import clean_env, sets, start_mlcv, wait_for
from mlcv_cli import config
from mlcv_cli.runs.rundir import RunDir
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs

CV = ["cv", "--model", "softmax", "--folds", "2", "--jobs", "2", "--set", "train.batch_size=10",
      "--grid", "train.lr=1e-3,1e-2,1e-1", "--grid", "model.reg=1e-3,1e-2", "--set", "output.dir=runs"]


def _start(tmp_path, tiny, *extra):
    return start_mlcv(*CV, *sets(*tiny), *extra, cwd=tmp_path, env=clean_env(MLCV_DATA_DIR=tmp_path / "data"))


def _workers(pid):
    """Pids of the pool workers that ``pid`` spawned (found through /proc, as a user would with ps)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(entry.name))
    return found


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, timeout=60, what="condition"):
    return wait_for(predicate, what, timeout=timeout, every=0.02)


def _journal_lines(tmp_path):
    runs = list((tmp_path / "runs").glob("*-cv-*"))
    if not runs:
        return 0
    path = runs[0] / "jobs.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
def test_worker_killed_keeps_finished_jobs_and_resumes_to_the_same_result(tmp_path, tiny):
    proc = _start(tmp_path, tiny, "--set", "train.epochs=150")
    try:
        _wait_for(lambda: _journal_lines(tmp_path) >= 1, what="a finished job")
        victims = _workers(proc.pid)
        assert victims
        os.kill(victims[0], signal.SIGKILL)  # what the kernel's OOM killer does
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    errors = [x for x in err.splitlines() if not x.startswith("cv softmax")]  # the rest is progress
    assert len(errors) == 1 and errors[0].startswith("Error: a worker process died"), err
    assert f"{victims[0]} was killed by SIGKILL" in errors[0] and "mlcv cv --resume" in errors[0], out
    [run] = (tmp_path / "runs").glob("*-cv-*")
    kept = [json.loads(x) for x in (run / "jobs.jsonl").read_text().splitlines()]
    assert kept and json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    for w in victims:
        _wait_for(lambda: not _alive(w), 10, "the workers to end")

    resumed = crossval.cross_validate(resume_dir=run, n_jobs=1)
    assert resumed["jobs_resumed"] >= len(kept)
    # What was kept is what the job computes: recompute the first kept job here.
    plan, _ = crossval.read_plan(RunDir(run))
    by_id = {j["id"]: j for j in crossval.plan_jobs(config.from_dict(plan["config"]), plan["points"])}
    ds_cfg = config.from_dict(plan["config"])
    from mlcv_cli.data.splits import split_dataset
    from mlcv_cli.workflow.inputs import load_dataset

    splits = split_dataset(config.replace(ds_cfg, {"data.num_val": 0}), load_dataset(ds_cfg))
    again = cv_jobs.run_job(by_id[kept[0]["id"]], plan, (splits.train_x, splits.train_y, len(splits.classes)))
    assert [(r["point"], r["fold"], r["accuracy"]) for r in again] == [(r["point"], r["fold"], r["accuracy"]) for r in kept[0]["rows"]]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
def test_killed_cv_process_takes_its_workers_with_it(tmp_path, tiny):
    # Long jobs: a worker left behind would compute for minutes holding the data.
    proc = _start(tmp_path, tiny, "--set", "train.epochs=100000")
    workers = []
    try:
        workers = _wait_for(lambda: (w := _workers(proc.pid)) and len(w) == 2 and w, what="two workers")
        time.sleep(1.0)  # let them receive the plan and the data and start a job
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for w in workers:
            _wait_for(lambda: not _alive(w), 10, f"worker {w} to end after its parent was killed")
    finally:
        for w in workers:  # survivors hold the pipes open: kill them before reading to the end
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        proc.kill()
        proc.communicate()
