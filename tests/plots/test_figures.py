"""Plots that say what they show (#21 item 3): plain tick labels on log axes, ticks at the grid
values, every grid key labelled, a legend that hides no point, per-epoch mean loss drawn over the
minibatch curve, one HOG image per class. The figures are checked as drawn (text and positions)."""

import json

import numpy as np
import pytest

from mlcv_cli import plots
from mlcv_cli.plots.cv import cv_figure
from mlcv_cli.plots.features import hog_figure
from mlcv_cli.plots.training import epoch_means, loss_figure


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.pyplot().close("all")


def summary_of(grid, folds=3, random=None, seed=0):
    """A cv_summary.json document over the full grid, with made-up fold accuracies."""
    import itertools

    rng = np.random.default_rng(seed)
    keys = list(grid)
    rows = []
    for i, values in enumerate(itertools.product(*grid.values())):
        f = list(0.3 + 0.1 * rng.random(folds))
        rows.append({"point": i, "params": dict(zip(keys, values)), "mean": float(np.mean(f)), "std": float(np.std(f)), "folds": f})
    return {"grid": grid, "summary": rows, "folds": folds, "model": "softmax", "dataset": "sample", "random": random}


def drawn_texts(fig):
    """Every piece of text on the drawn figure: titles, labels, tick labels, legends, annotations."""
    fig.canvas.draw()
    found = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible())]
    return [t for t in found if t]


def test_one_key_log_grid_has_plain_ticks_at_the_grid_values():
    fig = cv_figure(summary_of({"train.lr": [0.001, 0.01, 0.1]}))
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks == ["0.001", "0.01", "0.1"]
    assert ax.get_xscale() == "log"
    assert not any("$" in t or "mathdefault" in t for t in drawn_texts(fig))
    assert ax.get_xlabel() == "train.lr"
    means = [t for t in ax.texts]  # each mean labelled with its value
    assert len(means) == 3


def test_linear_grid_ticks_are_the_values_and_the_legend_hides_no_point():
    fig = cv_figure(summary_of({"model.k": [1, 3, 5, 10]}))
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["1", "3", "5", "10"]
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0 + 1  # below the axes, not on the points


@pytest.mark.parametrize("grid", [
    {"train.lr": [0.001, 0.01], "model.reg": [0.001, 0.1], "train.batch_size": [50, 100]},
    {"train.lr": [0.001, 0.01], "model.reg": [0.001, 0.1], "train.batch_size": [50, 100], "train.momentum": [0.5, 0.9]},
])
def test_every_grid_key_is_labelled(grid):
    fig = cv_figure(summary_of(grid))
    texts = " ".join(drawn_texts(fig))
    for key in grid:
        assert key in texts, key
    heat_maps = [ax for ax in fig.axes if ax.images]
    combos = int(np.prod([len(v) for v in list(grid.values())[2:]]))
    assert len(heat_maps) == combos  # one panel per setting of the keys beyond the first two
    cells = sum(len(ax.texts) for ax in heat_maps)
    assert cells == int(np.prod([len(v) for v in grid.values()]))  # every point's mean written in its cell


def test_random_points_of_three_keys_get_a_panel_each():
    doc = summary_of({"train.lr": [0.001, 0.01], "model.reg": [0.001, 0.1], "train.momentum": [0.5, 0.9]}, random=8)
    fig = cv_figure(doc)
    labels = {ax.get_xlabel() for ax in fig.axes}
    assert {"train.lr", "model.reg", "train.momentum"} <= labels


def test_fixed_keys_are_named_in_the_title():
    doc = summary_of({"model.k": [1, 3], "model.metric": ["l2"]})
    assert "fixed: model.metric=l2" in fig_title(cv_figure(doc))


def fig_title(fig):
    return " ".join(t.get_text() for t in fig.texts)  # the suptitle is one of the figure's texts


def history(iterations_per_epoch, epochs, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(1, epochs + 1):
        for i in range(iterations_per_epoch):
            n = (e - 1) * iterations_per_epoch + i + 1
            end = i == iterations_per_epoch - 1
            rows.append({"iteration": str(n), "epoch": str(e), "loss": str(2.5 / e + rng.random()),
                         "train_acc": "0.4" if end else "", "val_acc": "0.35" if end else "", "lr": ""})
    return rows


def test_loss_plot_draws_the_mean_of_each_epoch_over_the_minibatches():
    rows = history(10, 4)
    fig = loss_figure(rows)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "each minibatch" in labels and "mean of each epoch" in labels
    [means] = [line for line in ax.get_lines() if line.get_label() == "mean of each epoch"]
    expected = [np.mean([float(r["loss"]) for r in rows if r["epoch"] == str(e)]) for e in range(1, 5)]
    assert np.allclose(means.get_ydata(), expected)
    assert np.allclose(means.get_xdata(), [5.5, 15.5, 25.5, 35.5])  # the middle of each epoch's iterations


def test_full_batch_loss_is_one_curve():
    fig = loss_figure(history(1, 6))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["loss per iteration"]


def test_epoch_means_skip_an_epoch_that_diverged():
    x, m = epoch_means(np.arange(1, 7), np.array([1, 1, 2, 2, 3, 3]), np.array([2.0, 1.0, 1.0, np.nan, 0.5, 0.5]))
    assert list(x) == [1.5, 5.5] and list(m) == [1.5, 0.5]


def test_hog_figure_has_one_image_per_class():
    C = 10
    rng = np.random.default_rng(0)
    cells = {"images": rng.integers(0, 255, (C, 16, 16, 3), dtype=np.uint8), "labels": np.arange(C),
             "hist": rng.random((C, 2, 2, 9)), "edge_angles": np.linspace(0, np.pi, 9, endpoint=False),
             "cell_size": 8, "orientations": 9}
    classes = [f"class{c}" for c in range(C)]
    fig = hog_figure(cells, classes, C)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == C and sorted(ax.get_title() for ax in shown) == sorted(classes)
    assert "one image per class" in fig_title(fig)


def test_plot_run_writes_a_cv_png_for_three_keys(tmp_path):
    (tmp_path / "cv_summary.json").write_text(json.dumps(summary_of({"a.b": [1, 2], "model.reg": [0.1, 1.0], "train.lr": [0.1, 0.2]})))
    made = plots.plot_run(tmp_path, which=("cv",))
    assert made == [str(tmp_path / "cv.png")] and (tmp_path / "cv.png").stat().st_size > 20_000
