"""plots.py: every plot is drawn for cv, training and evaluation runs, and a person can read it:
label colours from the cell's colour, count scales from 0, labelled colour bars, whole-number
epochs, a legend for the fold dots, a diverged run said so, class names drawn literally."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import mlcv_uncaught
from mlcv_cli import config, plots
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.evaluate import evaluate
from mlcv_cli.workflow.train import train


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept for inspection."""
    saved = []
    real_save = plots._save

    def keep(fig, path):
        saved.append(fig)
        fig.canvas.draw()  # lay out text and ticks as in the PNG
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def _assert_png(path, min_side=200):
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= min_side
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 5  # not a blank canvas


def test_plots(tmp_path, tiny):
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


def _luminance(rgba):
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _labels_contrast(ax, image):
    """Every cell label is dark on a light cell and light on a dark cell."""
    for text in ax.texts:
        x, y = text.get_position()
        cell = image.cmap(image.norm(image.get_array()[int(round(y)), int(round(x))]))
        assert (text.get_color() == "black") == (_luminance(cell) > 0.18), text.get_text()


def test_confusion_on_a_balanced_set_reads_and_starts_at_zero(tmp_path, figures):
    cm = np.array([[30, 3, 2], [4, 28, 3], [1, 2, 32]])
    plots.draw_confusion(cm, ["cat", "dog", "fox"], "test", tmp_path / "c.png")
    [fig] = figures
    ax, bar = fig.axes
    image = ax.images[0]
    assert image.norm.vmin == 0
    _labels_contrast(ax, image)
    colors = {t.get_text(): t.get_color() for t in ax.texts}
    assert colors["2"] == "black" and colors["32"] == "white"  # pale and dark cells both readable
    assert bar.get_ylabel() == "images"


def _cv_run(tmp_path, grid, rows, folds=3):
    points = [dict(zip(grid, vals)) for vals in rows]
    summary = [{"point": i, "params": p, "mean": m, "std": 0.01, "folds": [m] * folds} for i, (p, m) in
               enumerate(zip(points, [0.2 + 0.03 * i for i in range(len(points))]))]
    (tmp_path / "cv_summary.json").write_text(json.dumps(
        {"grid": grid, "summary": summary, "folds": folds, "model": "softmax", "dataset": "sample", "random": None}))
    return tmp_path


def test_cv_heat_map_labels_read_and_fold_dots_are_explained(tmp_path, figures):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    grid = {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01]}
    plots.plot_cv(_cv_run(tmp_path / "a", grid, [(lr, reg) for lr in grid["train.lr"] for reg in grid["model.reg"]]))
    ax = figures[-1].axes[0]
    _labels_contrast(ax, ax.images[0])
    plots.plot_cv(_cv_run(tmp_path / "b", {"model.k": [1, 3, 5]}, [(1,), (3,), (5,)]))
    legend = [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()]
    assert any("one fold" in t for t in legend) and any("mean" in t for t in legend)


def test_plot_of_a_diverged_run_says_so(in_tmp, figures):
    trained = mlcv_uncaught("train", "--model", "softmax", "--set", "data.num_train=400", "--set", "data.num_test=50",
                            "--set", "train.lr=1e12", "--json")
    assert trained.exit_code == 1
    run_dir = json.loads(trained.stdout)["run_dir"]
    drawn = mlcv_uncaught("plot", run_dir)
    assert drawn.exit_code == 0, drawn.output
    loss_fig = figures[0]
    texts = [t.get_text() for ax in loss_fig.axes for t in ax.texts]
    assert any("diverged at iteration" in t for t in texts)


def test_epoch_ticks_are_whole_numbers(tmp_path, figures):
    rows = [{"iteration": str(i), "epoch": str((i + 1) // 2), "loss": str(2.0 - 0.1 * i),
             "train_acc": "0.3" if i % 2 == 0 else "", "val_acc": "0.25" if i % 2 == 0 else ""} for i in range(1, 7)]
    plots.plot_loss(tmp_path, rows)
    ticks = figures[0].axes[1].get_xticks()
    assert all(float(t).is_integer() for t in ticks)


def test_plots_draw_class_names_with_dollar_signs(tmp_path):
    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.set_title("cost$\\notacommand$")  # mathtext would refuse this at draw time
    fig.savefig(tmp_path / "t.png")
    plt.close(fig)
    assert (tmp_path / "t.png").stat().st_size > 0
