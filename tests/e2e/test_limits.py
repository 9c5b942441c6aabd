"""Plans and memory have limits: a grid is counted before it is expanded, a run that cannot fit in
memory is refused before it allocates, and a MemoryError that still happens leaves a resumable run."""

import json
import resource

import numpy as np
import pytest

from helpers import clean_env, memory_error_in_cv_job, mlcv, run_mlcv, sets
from mlcv_cli import config, data
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs
from mlcv_cli.system import memory
from mlcv_cli.workflow import resume as resuming
from mlcv_cli.workflow import train as training
from mlcv_cli.errors import MlcvError

AS_LIMIT = 3 * 2**30  # address space for the child: plenty for mlcv, far from a gigabyte-sized grid


def _bounded_mlcv(cwd, *args, env=None):
    """mlcv in a process limited to AS_LIMIT of address space (as `ulimit -v` does), so an
    unbounded allocation fails fast instead of pressing on the machine."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    full_env = clean_env(MLCV_DATA_DIR=cwd / "data", **(env or {}))
    full_env.pop(memory.ENV, None) if memory.ENV not in (env or {}) else None
    return run_mlcv(*args, cwd=cwd, env=full_env, preexec_fn=limit, timeout=120)


def _one_error_line(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
    return line


# -- plans ----------------------------------------------------------------------------------


def test_huge_ranges_are_refused_before_they_are_expanded(tmp_path):
    # Before: a MemoryError traceback (or the OOM killer) after minutes of expanding.
    proc = _bounded_mlcv(tmp_path, "cv", "--model", "softmax", "--grid", "train.lr=logspace(-7,-5,100000000)", "--print-config")
    line = _one_error_line(proc, 2)
    assert "100,000,000 values" in line and f"{config.MAX_GRID_POINTS:,}" in line
    # The product of reasonable axes is counted too, before any data is loaded or run made.
    proc = _bounded_mlcv(tmp_path, "cv", "--model", "softmax", "--grid", "train.lr=logspace(-7,-1,200)",
                         "--set", "output.dir=runs", "--grid", "model.reg=logspace(-6,0,200)")
    line = _one_error_line(proc, 2)
    assert "200 (train.lr) x 200 (model.reg) = 40,000 grid points" in line and "--random" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, expected", [
    (["--grid", "model.k=range(1,100000000000000000000)"], "99,999,999,999,999,999,999 values"),  # len() would overflow
    (["--grid", "train.lr=logspace(-7,400,3)"], "beyond what a number can hold"),
    (["--grid", "train.lr=logspace(1e400,2,3)"], "finite numbers"),
    (["--grid", "train.lr=linspace(1e-3,1e-2,nan)"], "finite numbers"),
    (["--grid", "model.k=" + ",".join(str(k) for k in range(1, 20002))], "20,001 values"),
    (["--set", "cv.grid={model.reg: 'logspace(-5,-1,10001)'}"], "cv.grid.model.reg: 'logspace(-5,-1,10001)' gives 10,001 values"),
    (["--random", "10001"], "10001 is not in the range"),
])
def test_grid_limits_on_every_way_in(in_tmp, args, expected):
    model = "knn" if "model.k" in " ".join(args) else "softmax"
    result = mlcv("cv", "--model", model, "--print-config", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_too_many_jobs_are_refused_before_features_or_a_run(in_tmp, tiny):
    result = mlcv("cv", "--model", "softmax", *sets(*tiny), "--folds", "21", "--grid", "train.lr=logspace(-7,-1,100)",
                  "--grid", "model.reg=logspace(-7,-1,100)")
    assert result.exit_code == 2, result.output
    assert "10,000 grid point(s) x 21 folds = 210,000 jobs" in result.output
    assert not (in_tmp / "runs").exists()


def test_an_edited_plan_with_a_huge_random_count_is_refused(in_tmp, tiny):
    r = crossval.cross_validate(config.resolve(None, tiny, model_type="knn",
                                               extra={"cv.folds": 2, "cv.grid": {"model.k": [1, 3]}}), random_n=2)
    plan_path = in_tmp / r["run_dir"] / crossval.PLAN_FILE
    plan = json.loads(plan_path.read_text())
    plan["random"] = 10 ** 12
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(MlcvError, match="random is 1000000000000"):
        crossval.cross_validate(resume_dir=in_tmp / r["run_dir"])


# -- memory -----------------------------------------------------------------------------------


def test_a_run_larger_than_the_machine_is_refused_before_allocating(tmp_path, tiny):
    # Before: a raw MemoryError traceback from the k-means patch sample (80 GB).
    proc = _bounded_mlcv(tmp_path, "train", "--model", "softmax", *sets(*tiny), "--set", "features=[{type: kmeans, num_patches: 100000000}]",
                         "--set", "output.dir=runs")
    line = _one_error_line(proc, 1)
    assert "needs about" in line and "k-means patch sample 100,000,000 x 108" in line
    assert "under `ulimit -v`" in line and "features.0.num_patches" in line
    assert not (tmp_path / "runs").exists()


def test_max_memory_setting_names_the_largest_parts_and_their_fixes(in_tmp, tiny, monkeypatch):
    monkeypatch.setenv(memory.ENV, "10K")
    result = mlcv("train", "--model", "knn", *sets(*tiny))
    assert result.exit_code == 1
    assert "kNN distance blocks" in result.output and "model.max_memory_mb" in result.output
    assert "(MLCV_MAX_MEMORY=10K)" in result.output
    result = mlcv("cv", "--model", "knn", *sets(*tiny), "--jobs", "2", "--folds", "2", "--grid", "model.k=1,3")
    assert result.exit_code == 1
    assert "x 2 workers" in result.output and "fewer --jobs" in result.output
    assert not (in_tmp / "runs").exists()
    monkeypatch.setenv(memory.ENV, "lots")
    result = mlcv("train", "--model", "knn", *sets(*tiny))
    assert result.exit_code == 1 and "expected a size such as 4G" in result.output


def test_memory_error_during_training_keeps_the_run_resumable(in_tmp, tiny, monkeypatch):
    from mlcv_cli.core.linear import LinearClassifier

    overrides = [*tiny, "train.epochs=3", "train.batch_size=20"]
    cfg = config.resolve(None, overrides, model_type="softmax")
    reference = training.train(config.replace(cfg, {"output.dir": "ref"}))
    real_end_epoch = LinearClassifier._end_epoch

    ends = []

    def end_epoch(self, X, y):  # the second epoch's end: after the first epoch's checkpoint
        ends.append(1)
        if len(ends) == 2:
            raise MemoryError("simulated")
        return real_end_epoch(self, X, y)

    monkeypatch.setattr(LinearClassifier, "_end_epoch", end_epoch)
    with pytest.raises(MlcvError, match="ran out of memory; the last checkpoint is kept") as err:
        training.train(cfg)
    run = err.value.run_dir
    assert json.loads((in_tmp / run / "meta.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(LinearClassifier, "_end_epoch", real_end_epoch)
    resumed = resuming.resume(run)
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert resumed["final_loss"] == reference["final_loss"]


def test_memory_error_in_a_cv_job_keeps_finished_jobs(in_tmp, tiny, monkeypatch):
    cfg = config.resolve(None, tiny, model_type="knn", extra={"cv.folds": 2, "cv.grid": {"preprocess.subtract_mean": [True, False]}})
    real = memory_error_in_cv_job(monkeypatch, 3)
    with pytest.raises(MlcvError, match="ran out of memory; 2 of 4 jobs are done and kept") as err:
        crossval.cross_validate(cfg)
    run = in_tmp / err.value.run_dir
    assert len((run / crossval.JOBS_FILE).read_text().splitlines()) == 2
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(cv_jobs, "run_job", real)
    assert crossval.cross_validate(resume_dir=run)["jobs_resumed"] == 2


def test_memory_error_outside_a_run_is_one_line(in_tmp, tiny, monkeypatch):
    def load(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(data, "load_folder", load)  # the tiny folder is read through mlcv_cli.data, before any run exists
    result = mlcv("train", "--model", "softmax", *sets(*tiny))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ran out of memory") and "Traceback" not in result.output
    assert np.all([not p.name.startswith("softmax") for p in in_tmp.glob("runs/*")])
