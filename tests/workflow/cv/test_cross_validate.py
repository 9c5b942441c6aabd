"""workflow/cv: plans, the kNN many-k path, executors that agree, the refit, grid-edge notes.
Runs stopped by signals are in tests/e2e/test_interrupt.py."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import cv_table
from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs
from mlcv_cli.core.knn import KNearestNeighbor
from mlcv_cli.core.model_selection import stratified_kfold
from mlcv_cli.errors import ConfigError

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


def test_a_full_grid_of_the_limit_is_allowed_and_random_samples_any_grid(in_tmp):
    grid = {"train.lr": [10.0 ** -e for e in range(1, 101)], "model.reg": [10.0 ** -e for e in range(1, 101)]}
    assert len(crossval.grid_points(grid)) == 10_000
    grid["model.delta"] = [1.0, 2.0]
    with pytest.raises(ConfigError, match="20,000 grid points"):
        crossval.grid_points(grid)
    assert len(crossval.grid_points(grid, random_n=5)) == 5


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


def test_serial_processes_and_dask_agree(tmp_path):
    cfg = cfg_for("softmax", tmp_path, {"train.lr": [0.003, 0.03]}, **{"train.epochs": 2})
    serial = crossval.cross_validate(cfg)
    procs = crossval.cross_validate(cfg, n_jobs=2)
    dask = crossval.cross_validate(cfg, n_jobs=2, dask_scheduler="local")
    assert cv_table(serial) == cv_table(procs) == cv_table(dask)
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


def test_cv_warns_when_the_best_value_is_at_the_grid_edge():
    grid = {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1], "model.k": [1, 3, 5]}
    notes = crossval.grid_edge_warnings(grid, {"train.lr": 0.1, "model.reg": 0.001, "model.k": 1})
    assert notes == ["the best train.lr=0.1 is the largest value tried: extend the grid above it",
                     "the best model.reg=0.001 is the smallest value tried: extend the grid below it"]  # k=1 is the floor
    assert crossval.grid_edge_warnings(grid, {"train.lr": 0.01, "model.reg": 0.01, "model.k": 3}) == []
