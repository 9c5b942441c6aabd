"""Cross-validation: plans, the kNN many-k path, executors that agree, resume, plots."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs
from mlcv_cli.cli.app import cli as mlcv
from mlcv_cli.core.knn import KNearestNeighbor
from mlcv_cli.core.model_selection import stratified_kfold
from mlcv_cli.errors import ConfigError, UsageError

SMALL = {"data.num_train": 500, "data.num_val": 100, "data.num_test": 100}


def cfg_for(model, tmp_path, grid, **extra):
    values = {**SMALL, "output.dir": str(tmp_path / "runs"), "cv.grid": grid, "cv.folds": 3, **extra}
    return config.replace(config.resolve(model_type=model), values)


def test_full_grid_and_random_points():
    pts = crossval.grid_points({"model.k": [1, 3], "model.metric": ["l1", "l2"]})
    assert pts == [{"model.k": 1, "model.metric": "l1"}, {"model.k": 1, "model.metric": "l2"},
                   {"model.k": 3, "model.metric": "l1"}, {"model.k": 3, "model.metric": "l2"}]
    rnd = crossval.grid_points({"train.lr": [1e-7, 1e-5], "model.k": [1, 100]}, random_n=50, seed=3)
    lrs = np.array([p["train.lr"] for p in rnd])
    assert len(rnd) == 50 and lrs.min() >= 1e-7 and lrs.max() <= 1e-5
    assert np.mean(lrs < 1e-6) > 0.3  # log scale: half the mass below the geometric middle
    assert all(isinstance(p["model.k"], int) for p in rnd)
    assert rnd == crossval.grid_points({"train.lr": [1e-7, 1e-5], "model.k": [1, 100]}, random_n=50, seed=3)


def test_grid_option_parsing():
    grid = config.parse_grid_option(["model.k=1,3,5", "train.lr=logspace(-7,-5,3)", "model.metric=l1,l2"])
    assert grid["model.k"] == [1, 3, 5] and grid["model.metric"] == ["l1", "l2"]
    assert grid["train.lr"] == pytest.approx([1e-7, 1e-6, 1e-5])
    with pytest.raises(UsageError):
        config.parse_grid_option(["model.k"])
    with pytest.raises(ConfigError):
        config.parse_grid_option(["model.k=a,b"])


def test_knn_points_share_one_job_per_fold_and_metric(tmp_path):
    cfg = cfg_for("knn", tmp_path, {"model.k": [1, 3, 5], "model.metric": ["l1", "l2"]})
    jobs = crossval.plan_jobs(cfg, crossval.grid_points(cfg.cv.grid))
    assert len(jobs) == 2 * 3  # (metric) x (fold), not (k x metric x fold)
    assert sorted(len(j["points"]) for j in jobs) == [3] * 6


def test_knn_many_k_equals_separate_runs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(120) % 4
    cfg = config.replace(config.resolve(model_type="knn"), {"cv.folds": 3, "cv.grid": {"model.k": [1, 2, 5, 9]}})
    points = crossval.grid_points(cfg.cv.grid)
    plan = {"config": cfg.to_dict(), "points": points}
    folds = stratified_kfold(labels, 3, seed=cfg.seed)
    X = images.reshape(120, -1).astype(np.float32)
    for job in crossval.plan_jobs(cfg, points):
        rows = cv_jobs.run_job(job, plan, (images, labels, 4))
        tr, va = folds[job["fold"]]
        for row in rows:
            k = points[row["point"]]["model.k"]
            separate = KNearestNeighbor(k=k).fit(X[tr], labels[tr], num_classes=4).predict(X[va])
            assert row["accuracy"] == pytest.approx(np.mean(separate == labels[va]))


def _table(result):
    return [(s["params"], s["folds"]) for s in result["summary"]]


def test_serial_processes_and_dask_agree(tmp_path):
    cfg = cfg_for("softmax", tmp_path, {"train.lr": [0.003, 0.03]}, **{"train.epochs": 2})
    serial = crossval.cross_validate(cfg)
    procs = crossval.cross_validate(cfg, n_jobs=2)
    dask = crossval.cross_validate(cfg, n_jobs=2, dask_scheduler="local")
    assert _table(serial) == _table(procs) == _table(dask)
    assert serial["summary"][0]["mean"] > 0.15
    rd = Path(serial["run_dir"])
    for name in ("cv_results.csv", "best.yaml", "jobs.jsonl", "cv_summary.json", "config.yaml", "meta.json"):
        assert (rd / name).is_file()
    lines = (rd / "cv_results.csv").read_text().splitlines()
    assert lines[0] == "point,train.lr,fold,accuracy,time_s,note" and len(lines) == 1 + 2 * 3
    best = config.resolve(rd / "best.yaml")
    assert best.train.lr == serial["best_params"]["train.lr"]


def test_refit_scores_test_split_into_same_run(tmp_path):
    cfg = cfg_for("knn", tmp_path, {"model.k": [1, 5]})
    result = crossval.cross_validate(cfg, refit=True)
    rd = Path(result["run_dir"])
    refit = rd / "refit"
    assert result["refit"]["run_dir"] == str(refit)
    metrics = json.loads((refit / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result["refit"]["test_accuracy"]
    assert result["refit"]["n_train"] == 500  # the data.num_train images the folds used (cv carves no val split)
    saved = config.resolve(refit / "config.yaml")  # what `mlcv train --resume` would use
    assert saved.model.k == result["best_params"]["model.k"] and saved.data.num_val == 0
    from mlcv_cli.workflow.evaluate import evaluate

    assert evaluate(rd)["accuracy"] == result["refit"]["test_accuracy"]  # the cv dir finds its refit model
    assert (refit / "model.npz").is_file() and json.loads((refit / "meta.json").read_text())["status"] == "done"


def test_resume_after_kill_skips_finished_jobs(tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "mlcv_cli.cli.app", "cv", "--model", "softmax", "--folds", "3",
            "--grid", "train.lr=0.001,0.003,0.01,0.03", "--set", "data.num_train=1500", "--set", "train.epochs=4",
            "--set", f"output.dir={runs}", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    jobs_file = None
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(runs.glob("*/jobs.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 3:
            jobs_file = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert jobs_file is not None, "the cv run never finished three jobs"
    done_before = len(jobs_file.read_text().splitlines())
    assert done_before < 12
    rd = jobs_file.parent
    resumed = crossval.cross_validate(resume_dir=rd)
    assert resumed["jobs_resumed"] == done_before
    ids = [json.loads(l)["id"] for l in jobs_file.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 12  # nothing was run twice
    fresh_cfg = config.resolve(rd / "config.yaml")
    fresh = crossval.cross_validate(config.replace(fresh_cfg, {"output.dir": str(tmp_path / "fresh")}))
    assert _table(resumed) == _table(fresh)


def _assert_png(path, min_side=200):
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5  # not a blank canvas


def test_plots(tmp_path, tiny):
    from mlcv_cli.workflow.evaluate import evaluate
    from mlcv_cli.workflow.train import train
    from mlcv_cli import plots

    def tiny_cfg(model, values):  # the plots do not need real images: the tiny folder loads at once
        return config.replace(config.resolve(None, tiny, model_type=model), {"output.dir": str(tmp_path / "runs"), **values})

    one = crossval.cross_validate(tiny_cfg("knn", {"cv.grid": {"model.k": [1, 3, 7]}, "cv.folds": 3}))
    _assert_png(plots.plot_cv(one["run_dir"]))
    two = crossval.cross_validate(tiny_cfg("knn", {"cv.grid": {"model.k": [1, 3], "model.metric": ["l1", "l2"]}, "cv.folds": 3}))
    _assert_png(plots.plot_cv(two["run_dir"]))
    rd = train(tiny_cfg("svm", {"train.epochs": 2}))["run_dir"]
    made = plots.plot_run(rd)
    assert sorted(Path(p).name for p in made) == ["confusion-test.png", "loss.png", "templates.png"]
    for p in made:
        _assert_png(p)
    knn_rd = train(tiny_cfg("knn", {}))["run_dir"]
    ev = evaluate(knn_rd, plot=plots.evaluation_plots)
    assert sorted(Path(p).name for p in ev["plots"]) == ["confusion-test.png", "neighbors-test.png"]
    for p in ev["plots"]:
        _assert_png(p)


def test_sigterm_marks_cv_interrupted_and_exits_143(tmp_path):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "mlcv_cli.cli.app", "cv", "--model", "softmax", "--folds", "3",
            "--grid", "train.lr=0.001,0.003,0.01,0.03", "--set", "data.num_train=1500", "--set", "train.epochs=6",
            "--set", f"output.dir={runs}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not [p for p in runs.glob("*/jobs.jsonl") if p.read_text().strip()]:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert "mlcv cv --resume" in err and "Traceback" not in err
    [rd] = list(runs.iterdir())
    assert json.loads((rd / "meta.json").read_text())["status"] == "interrupted"


def test_interrupted_refit_is_finished_by_cv_resume(in_tmp, tmp_path):
    runs = tmp_path / "runs"
    cli = [sys.executable, "-m", "mlcv_cli.cli.app"]
    args = [*cli, "cv", "--model", "softmax", "--folds", "2", "--grid", "train.lr=0.01", "--refit",
            "--set", "data.num_train=1000", "--set", "train.epochs=60", "--set", f"output.dir={runs}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/refit/checkpoint.npz")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, err
    assert "accuracy (mean ± std)" in out  # the cv table was shown before the refit started
    [rd] = list(runs.iterdir())
    meta = json.loads((rd / "meta.json").read_text())
    assert meta["status"] == "done" and meta["refit"] == "interrupted"
    # No signal from here on: the commands run in this process (no start-up, no second decoding of the data).
    ev = CliRunner().invoke(mlcv, ["evaluate", str(rd)])
    assert ev.exit_code == 1 and f"mlcv cv --resume {rd}" in ev.stderr
    resumed = CliRunner().invoke(mlcv, ["cv", "--resume", str(rd), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["refit"]["test_accuracy"] > 0.1
    assert json.loads((rd / "meta.json").read_text())["refit"] == "done"
    ev = CliRunner().invoke(mlcv, ["evaluate", str(rd), "--json"])
    assert ev.exit_code == 0 and json.loads(ev.stdout)["model_path"] == str(rd / "refit" / "model.npz")
