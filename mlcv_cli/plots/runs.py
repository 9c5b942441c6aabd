"""The figure of a folder of runs: validation and test accuracy against each hyperparameter the runs differ in."""

from __future__ import annotations

import math

from .backend import finish_panels, is_log, is_number, label, plain_ticks, pyplot, sort_key


def runs_figure(panels):
    """One panel per hyperparameter. panels: [(key, groups)], a group being the runs that differ only
    in that key, [(value, val accuracy or None, test accuracy or None)]; each group's points are joined."""
    plt = pyplot()
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows + 0.5), squeeze=False, sharey=True, layout="constrained")
    for ax, (key, groups) in zip(axes.flat, panels):
        values = [p[0] for g in groups for p in g]
        numeric = all(is_number(v) for v in values)
        names = sorted({label(v) for v in values}, key=sort_key)

        def x_of(v):
            return v if numeric else names.index(label(v))

        for group in groups:
            group = sorted(group, key=lambda p: sort_key(p[0]))
            for column, color, name in ((1, "tab:orange", "val"), (2, "tab:blue", "test")):
                shown = [(x_of(p[0]), 100 * p[column]) for p in group if p[column] is not None]
                if shown:
                    ax.plot(*zip(*shown), marker="o", ms=4, lw=0.8, alpha=0.7, color=color, label=name)
        distinct = sorted({v for v in values}, key=sort_key) if numeric else None
        if numeric and is_log(values):
            ax.set_xscale("log")
        if numeric:
            plain_ticks(ax.xaxis, distinct if len(distinct) <= 8 else None)
        else:  # text values (an optimizer, a metric): one column each, in sorted order
            ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0)
        ax.margins(x=0.08)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    finish_panels(axes, n, "accuracy (%)")
    handles, names = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(names, handles))
    if unique:  # one legend for all panels, below them, so it hides no point
        fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncol=2, frameon=False)
    return fig
