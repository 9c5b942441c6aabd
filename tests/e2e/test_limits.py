"""Plans and memory have limits: a grid is counted before it is expanded, a run that cannot fit in
memory is refused before it allocates, and a MemoryError that still happens leaves a resumable run."""

import json
import os
import random
import resource
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs
from mlcv_cli.system import memory
from mlcv_cli.workflow import estimates
from mlcv_cli.config import features as feature_config
from mlcv_cli.workflow import resume as resuming
from mlcv_cli.workflow import train as training
from mlcv_cli.cli.app import cli
from mlcv_cli.errors import ConfigError, MlcvError

AS_LIMIT = 3 * 2**30  # address space for the child: plenty for mlcv, far from a gigabyte-sized grid


def _bounded_mlcv(cwd, *args, env=None):
    """mlcv in a process limited to AS_LIMIT of address space (as `ulimit -v` does), so an
    unbounded allocation fails fast instead of pressing on the machine."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    full_env = {**os.environ, "MLCV_DATA_DIR": str(cwd / "data"), **(env or {})}
    full_env.pop("MLCV_DEBUG", None)
    full_env.pop(memory.ENV, None) if memory.ENV not in (env or {}) else None
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, preexec_fn=limit, timeout=120)


def _one_error_line(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("Error:")]
    return line


def _sets(items):
    return [a for item in items for a in ("--set", item)]


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
    result = CliRunner().invoke(cli, ["cv", "--model", model, "--print-config", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_range_count_matches_len_of_range():
    rng = random.Random(0)
    for _ in range(2000):
        start, stop, step = rng.randint(-50, 50), rng.randint(-50, 50), rng.choice([-7, -3, -1, 1, 2, 5])
        assert config.range_count("range", [float(start), float(stop), float(step)]) == len(range(start, stop, step))
    assert config.range_count("range", [0.0, 10.0 ** 15]) == 10 ** 15


def test_repeated_grid_values_are_one_point_in_linear_time():
    assert config.check_grid_values("model.k", [3, 1, 3, 2, 1]) == [3, 1, 2]
    assert config.check_grid_values("train.lr", [0.1, 1e-1, 0.01]) == [0.1, 0.01]
    values = config.check_grid_values("model.k", list(range(1, config.MAX_GRID_POINTS + 1)) )
    assert len(values) == config.MAX_GRID_POINTS


def test_a_full_grid_of_the_limit_is_allowed_and_random_samples_any_grid(in_tmp):
    grid = {"train.lr": [10.0 ** -e for e in range(1, 101)], "model.reg": [10.0 ** -e for e in range(1, 101)]}
    assert len(crossval.grid_points(grid)) == 10_000
    grid["model.delta"] = [1.0, 2.0]
    with pytest.raises(ConfigError, match="20,000 grid points"):
        crossval.grid_points(grid)
    assert len(crossval.grid_points(grid, random_n=5)) == 5


def test_too_many_jobs_are_refused_before_features_or_a_run(in_tmp, tiny):
    result = CliRunner().invoke(cli, ["cv", "--model", "softmax", *_sets(tiny), "--folds", "21", "--grid", "train.lr=logspace(-7,-1,100)",
                                      "--grid", "model.reg=logspace(-7,-1,100)"])
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
    proc = _bounded_mlcv(tmp_path, "train", "--model", "softmax", *_sets(tiny), "--set", "features=[{type: kmeans, num_patches: 100000000}]",
                         "--set", "output.dir=runs")
    line = _one_error_line(proc, 1)
    assert "needs about" in line and "k-means patch sample 100,000,000 x 108" in line
    assert "under `ulimit -v`" in line and "features.0.num_patches" in line
    assert not (tmp_path / "runs").exists()


def test_max_memory_setting_names_the_largest_parts_and_their_fixes(in_tmp, tiny, monkeypatch):
    monkeypatch.setenv(memory.ENV, "10K")
    result = CliRunner().invoke(cli, ["train", "--model", "knn", *_sets(tiny)])
    assert result.exit_code == 1
    assert "kNN distance blocks" in result.output and "model.max_memory_mb" in result.output
    assert "(MLCV_MAX_MEMORY=10K)" in result.output
    result = CliRunner().invoke(cli, ["cv", "--model", "knn", *_sets(tiny), "--jobs", "2", "--folds", "2", "--grid", "model.k=1,3"])
    assert result.exit_code == 1
    assert "x 2 workers" in result.output and "fewer --jobs" in result.output
    assert not (in_tmp / "runs").exists()
    monkeypatch.setenv(memory.ENV, "lots")
    result = CliRunner().invoke(cli, ["train", "--model", "knn", *_sets(tiny)])
    assert result.exit_code == 1 and "expected a size such as 4G" in result.output


def test_estimates_follow_the_sizes():
    cfg = config.resolve(None, ["features=[{type: kmeans, num_centroids: 1000}]"], model_type="softmax")
    chain = feature_config.build_chain(cfg)
    parts = dict((d, n) for d, n, _ in estimates.train_parts(cfg, chain, 4000, 500, 500, (32, 32, 3), 10, False))
    assert parts["features 5,000 x 4,000 float32"] == 5000 * 4000 * 4
    assert parts["k-means patch sample 400,000 x 108"] == 400_000 * 108 * 8
    assert memory.parse_size("1.5G") == int(1.5 * 2**30) and memory.parse_size("512MB") == 512 * 2**20


def test_cgroup_limit_is_read_from_v2_else_v1_with_page_cache_given_back(tmp_path, monkeypatch):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    v2.mkdir()
    v1.mkdir()
    monkeypatch.setattr(memory, "_CGROUPS", ((str(v2), "memory.max", "memory.current"),
                                             (str(v1), "memory.limit_in_bytes", "memory.usage_in_bytes")))
    assert memory._cgroup_left() is None  # no controller files: no limit
    (v1 / "memory.limit_in_bytes").write_text("1000\n")
    (v1 / "memory.usage_in_bytes").write_text("600\n")
    (v1 / "memory.stat").write_text("cache 7\ntotal_inactive_file 100\n")
    assert memory._cgroup_left() == 1000 - 600 + 100
    (v2 / "memory.max").write_text("max\n")  # v2 without a limit: v1's decides
    (v2 / "memory.current").write_text("10\n")
    assert memory._cgroup_left() == 500
    (v2 / "memory.max").write_text("2000\n")
    (v2 / "memory.stat").write_text("inactive_file 30\n")
    assert memory._cgroup_left() == 2000 - 10 + 30
    (v1 / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # v1's "no limit"
    (v2 / "memory.max").write_text("max\n")
    assert memory._cgroup_left() is None


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
    real = cv_jobs.run_job
    calls = []

    def run_job(job, *args, **kwargs):
        calls.append(job["id"])
        if len(calls) == 3:
            raise MemoryError
        return real(job, *args, **kwargs)

    monkeypatch.setattr(cv_jobs, "run_job", run_job)
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

    monkeypatch.setattr(training, "load_dataset", load)
    result = CliRunner().invoke(cli, ["train", "--model", "softmax", *_sets(tiny)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ran out of memory") and "Traceback" not in result.output
    assert np.all([not p.name.startswith("softmax") for p in in_tmp.glob("runs/*")])
