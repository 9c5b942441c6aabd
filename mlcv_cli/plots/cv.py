"""The cross-validation figure: every grid key shown, whatever the number of keys.

One swept key: accuracy per fold and mean +- std at each grid value (ticks at the values).
Two: a heat map of the mean (a scatter for random points). Three or more: one heat map of the
first two keys per setting of the others (a scatter per key for random points). Keys with one
value are named in the title as fixed.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .backend import finish_panels, is_log, is_number, label, plain_ticks, pyplot, sort_key, text_color

_MAX_FACETS = 16
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}  # more heat maps than this are unreadable: one panel per key instead


def cv_figure(summary):
    """The figure of a cv_summary.json document (checked by runs.files.read_cv_summary)."""
    keys = list(summary["grid"])
    rows = sorted(summary["summary"], key=lambda s: s["point"])
    swept = [k for k in keys if len({json.dumps(s["params"].get(k)) for s in rows}) > 1]
    fixed = [k for k in keys if k not in swept and rows and k in rows[0]["params"]]
    if len(swept) <= 1:
        fig = _curve(summary, rows, swept[0] if swept else (keys[0] if keys else None))
    elif summary.get("random"):
        fig = _scatter(rows, swept) if len(swept) == 2 else _panels(rows, swept)
    elif len(swept) == 2:
        fig = _facets(summary, rows, swept[0], swept[1], [])
    else:
        combos = {tuple(json.dumps(s["params"].get(k)) for k in swept[2:]) for s in rows}
        fig = _facets(summary, rows, swept[0], swept[1], swept[2:]) if len(combos) <= _MAX_FACETS else _panels(rows, swept)
    best = max(rows, key=lambda s: s["mean"]) if rows else None
    title = f"{summary['folds']}-fold cross-validation: {summary['model']} on {summary['dataset']}"
    lines = [title]
    if best is not None and swept:
        lines.append("best: " + ", ".join(f"{k}={label(best['params'].get(k))}" for k in swept)
                     + f" ({100 * best['mean']:.1f}% ± {100 * best['std']:.1f})")
    if fixed:
        lines.append("fixed: " + ", ".join(f"{k}={label(rows[0]['params'][k])}" for k in fixed))
    fig.suptitle("\n".join(lines), fontsize=10)
    return fig


def _curve(summary, rows, key):
    """Fold accuracies (dots) and mean +- std (line) at each value of one key."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    values = [s["params"].get(key) if key else "default" for s in rows]
    numeric = all(is_number(v) for v in values)
    order = sorted(range(len(rows)), key=lambda i: sort_key(values[i]))
    xs = [values[i] if numeric else n for n, i in enumerate(order)]
    for n, (x, i) in enumerate(zip(xs, order)):
        folds = np.array(rows[i]["folds"]) * 100
        ax.scatter([x] * len(folds), folds, color="tab:blue", s=16, alpha=0.7, zorder=3,
                   label=f"one fold's accuracy ({summary['folds']} per value)" if n == 0 else None)
    means = np.array([rows[i]["mean"] for i in order]) * 100
    stds = np.array([rows[i]["std"] for i in order]) * 100
    ax.errorbar(xs, means, yerr=stds, color="tab:orange", capsize=4, marker="o", label="mean ± 1 std", zorder=2)
    for x, m, s in zip(xs, means, stds):
        ax.annotate(f"{m:.1f}", (x, m), textcoords="offset points", xytext=(7, 0), ha="left", va="center", fontsize=8,
                    color="tab:orange", bbox=_LABEL_BOX, zorder=4)
    if numeric and is_log(values):
        ax.set_xscale("log")
    if numeric:
        plain_ticks(ax.xaxis, [values[i] for i in order])
    else:
        ax.set_xticks(range(len(order)), [label(values[i]) for i in order], rotation=30 if len(order) > 6 else 0)
    ax.margins(x=0.1, y=0.15)  # room for the end points' labels
    ax.set_xlabel(key or "")
    ax.set_ylabel("cross-validation accuracy (%)")
    ax.grid(alpha=0.3)
    # Below the axes, so it never hides a point.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    return fig


def _facets(summary, rows, kx, ky, others):
    """Heat maps of the mean accuracy over kx (columns) and ky (rows), one per setting of ``others``."""
    plt = pyplot()
    xs = sorted({json.dumps(s["params"].get(kx)) for s in rows}, key=lambda t: sort_key(json.loads(t)))
    ys = sorted({json.dumps(s["params"].get(ky)) for s in rows}, key=lambda t: sort_key(json.loads(t)))
    combos = sorted({tuple(json.dumps(s["params"].get(k)) for k in others) for s in rows},
                    key=lambda c: [sort_key(json.loads(t)) for t in c])
    n = len(combos)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    w, h = 1.1 * len(xs) + 2.2, 0.7 * len(ys) + 1.8
    fig, axes = plt.subplots(nrows, cols, figsize=(w * cols + 1.2, h * nrows + 0.6), squeeze=False, layout="constrained")
    lo = 100 * min(s["mean"] for s in rows)
    hi = 100 * max(s["mean"] for s in rows)
    im = None
    for ax, combo in zip(axes.flat, combos):
        grid = np.full((len(ys), len(xs)), np.nan)
        for s in rows:
            if tuple(json.dumps(s["params"].get(k)) for k in others) == combo:
                grid[ys.index(json.dumps(s["params"].get(ky))), xs.index(json.dumps(s["params"].get(kx)))] = s["mean"]
        im = ax.imshow(grid * 100, cmap="viridis", origin="lower", aspect="auto", vmin=lo, vmax=max(hi, lo + 1e-9))
        ax.set_xticks(range(len(xs)), [label(json.loads(t)) for t in xs], rotation=45 if len(xs) > 4 else 0)
        ax.set_yticks(range(len(ys)), [label(json.loads(t)) for t in ys])
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", color=text_color(im, 100 * v), fontsize=8)
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        if others:
            ax.set_title(", ".join(f"{k}={label(json.loads(t))}" for k, t in zip(others, combo)), fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), label="mean cross-validation accuracy (%)")
    return fig


def _scatter(rows, swept):
    """Random points of two keys: a scatter coloured (and labelled) by mean accuracy."""
    plt = pyplot()
    kx, ky = swept
    xs = [s["params"][kx] for s in rows]
    ys = [s["params"][ky] for s in rows]
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    sc = ax.scatter(xs, ys, c=[100 * s["mean"] for s in rows], cmap="viridis", s=80, edgecolors="black")
    for x, y, s in zip(xs, ys, rows):
        ax.annotate(f"{100 * s['mean']:.1f}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for values, axis, set_scale in ((xs, ax.xaxis, ax.set_xscale), (ys, ax.yaxis, ax.set_yscale)):
        if is_log(values):
            set_scale("log")
            plain_ticks(axis)
    ax.set_xlabel(kx)
    ax.set_ylabel(ky)
    ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=ax, label="mean cross-validation accuracy (%)")
    return fig


def _panels(rows, swept):
    """One panel per key: the mean accuracy of every point against that key's value (best in red)."""
    plt = pyplot()
    n = len(swept)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows + 0.6), squeeze=False, sharey=True,
                             layout="constrained")
    best = max(range(len(rows)), key=lambda i: rows[i]["mean"])
    means = np.array([s["mean"] for s in rows]) * 100
    for ax, key in zip(axes.flat, swept):
        values = [s["params"].get(key) for s in rows]
        if all(is_number(v) for v in values):
            xs = values
            if is_log(values):
                ax.set_xscale("log")
                plain_ticks(ax.xaxis)
        else:
            names = sorted({label(v) for v in values})
            xs = [names.index(label(v)) for v in values]
            ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0)
        ax.scatter(xs, means, s=22, color="tab:blue", alpha=0.75)
        ax.scatter([xs[best]], [means[best]], s=60, color="tab:red", zorder=3, label="best point")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    finish_panels(axes, n, "mean cv accuracy (%)")
    axes.flat[0].legend(loc="lower right", fontsize=8)
    return fig
