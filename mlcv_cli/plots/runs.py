"""The figure of a folder of runs: validation and test accuracy against each hyperparameter the runs differ in."""

from __future__ import annotations

import math

from .backend import is_log, is_number, label, plain_ticks, pyplot, sort_key


def runs_figure(panels):
    """One panel per hyperparameter: panels is [(key, [(value, val accuracy or None, test accuracy or None)])]."""
    plt = pyplot()
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.5 * rows), squeeze=False, sharey=True)
    for ax, (key, points) in zip(axes.flat, panels):
        values = [p[0] for p in points]
        numeric = all(is_number(v) for v in values)
        if numeric:
            xs = values
        else:  # text values (an optimizer, a metric): one column each, in sorted order
            names = sorted({label(v) for v in values}, key=sort_key)
            xs = [names.index(label(v)) for v in values]
            ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0)
        for column, color, name in ((1, "tab:orange", "val"), (2, "tab:blue", "test")):
            shown = [(x, 100 * p[column]) for x, p in zip(xs, points) if p[column] is not None]
            if shown:
                ax.scatter(*zip(*shown), s=20, alpha=0.75, color=color, label=name)
        if numeric and is_log(values):
            ax.set_xscale("log")
            plain_ticks(ax.xaxis)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:  # one legend for all panels, below them, so it hides no point
        fig.legend(handles, names, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.02))
        fig.subplots_adjust(bottom=0.2 if rows == 1 else 0.1)
    return fig
