"""Figures of a trained model: loss and accuracy curves, the confusion matrix, weights as images."""

from __future__ import annotations

import math

import numpy as np

from .backend import plain_ticks, pyplot, short, show, text_color


def epoch_means(iterations, epochs, loss):
    """(x, mean) per epoch: the mean minibatch loss of each epoch, at the middle of its iterations
    (an epoch with a non-finite loss has none)."""
    xs, means = [], []
    for e in np.unique(epochs):
        inside = epochs == e
        if np.isfinite(loss[inside]).all():
            xs.append(float(iterations[inside].mean()))
            means.append(float(loss[inside].mean()))
    return np.array(xs), np.array(means)


def loss_figure(rows):
    """Training loss per iteration with the per-epoch means over it, and train/val accuracy per epoch.

    rows: history.csv rows (runs.files.read_history), at least one.
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    it = np.array([int(r["iteration"]) for r in rows])
    ep = np.array([int(r["epoch"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    finite = np.isfinite(loss)
    mx, means = epoch_means(it, ep, loss)
    if len(mx) == finite.sum():  # one step per epoch (full batch): the steps are the means
        a1.plot(it[finite], loss[finite], lw=1.2, marker="o" if finite.sum() <= 50 else None, ms=3,
                color="tab:blue", label="loss per iteration")
    else:
        # The minibatch losses scatter around the trend; the epoch means are what training reached.
        a1.plot(it[finite], loss[finite], lw=0.6, alpha=0.45, color="tab:blue", label="each minibatch")
        a1.plot(mx, means, lw=2.0, marker="o", ms=4, color="tab:orange", label="mean of each epoch")
        if len(means):
            a1.annotate(f"{means[-1]:.3f}", (mx[-1], means[-1]), textcoords="offset points", xytext=(0, 8),
                        ha="center", fontsize=8, color="tab:orange",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    title = "loss"
    shown = loss[finite & (loss > 0)]
    if shown.size and shown.max() / shown.min() > 1e3:
        a1.set_yscale("log")  # a loss that blew up would flatten the rest of the curve
        plain_ticks(a1.yaxis)
    elif finite.sum() > 100:
        # The first few minibatches of a fresh model can sit far above the rest and flatten it.
        top = max(float(np.percentile(loss[finite], 99)), float(means.max()) if len(means) else 0.0)
        if loss[finite].max() > 1.5 * top:
            a1.set_ylim(top=1.1 * top)
            title = f"loss (the first iterations, up to {loss[finite].max():.3g}, are above the axis)"
    if not finite.all():
        # A diverged run: say where, rather than leave a blank or unreadable panel.
        first = int(it[~finite][0])
        a1.axvline(first, color="tab:red", ls="--")
        a1.text(0.5, 0.5, f"diverged at iteration {first}\n(loss {loss[~finite][0]}): lower train.lr",
                transform=a1.transAxes, ha="center", va="center", color="tab:red", fontsize=11,
                bbox={"facecolor": "white", "edgecolor": "tab:red"})
    a1.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    a1.set_xlabel("iteration")
    a1.set_ylabel("training loss")
    a1.set_title(title, fontsize=10 if title != "loss" else None)
    a1.grid(alpha=0.3)
    if finite.any():
        a1.legend(loc="upper right", fontsize=8)
    ends = [r for r in rows if r.get("train_acc")]
    if ends:
        eps = [int(r["epoch"]) for r in ends]
        a2.plot(eps, [100 * float(r["train_acc"]) for r in ends], marker="o", label="train")
        if any(r.get("val_acc") for r in ends):
            a2.plot(eps, [100 * float(r["val_acc"]) if r.get("val_acc") else np.nan for r in ends], marker="o", label="val")
        kept = ends[-1].get("best_epoch")
        if kept:  # train.keep_best: the model file holds this epoch's weights
            a2.axvline(int(float(kept)), color="tab:green", ls="--", lw=1, label=f"weights kept (epoch {int(float(kept))})")
        a2.legend()
        a2.set_xlim(0.5, max(eps) + 0.5)
    else:
        a2.text(0.5, 0.5, "no epoch finished" + (" before training diverged" if not finite.all() else ""),
                transform=a2.transAxes, ha="center", va="center", fontsize=11)
    a2.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.set_title("accuracy at the end of each epoch")
    a2.grid(alpha=0.3)
    return fig


# Up to this many classes each cell shows its count; beyond it the matrix is a heat map
# with small labels (the evaluate command lists the largest confusions instead).
COUNTS_UP_TO = 20


def confusion_figure(cm, classes, title):
    """The confusion matrix cm (C, C) of counts (rows: true class) as a heat map."""
    plt = pyplot()
    C = len(classes)
    side = 0.6 * C + 3 if C <= COUNTS_UP_TO else 16
    fig, ax = plt.subplots(figsize=(side, side - 0.5))
    # Many classes: the diagonal would drown every confusion, so colour a log scale of counts.
    # Either way the scale starts at 0, so a pale cell means few images whatever the smallest count.
    shown = cm if C <= COUNTS_UP_TO else np.log1p(cm)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=max(float(shown.max()), 1.0))
    fontsize = 9 if C <= COUNTS_UP_TO else max(3, 400 // C)
    names = [short(c) for c in classes]
    ax.set_xticks(range(C), names, rotation=60 if C <= COUNTS_UP_TO else 90, ha="right" if C <= COUNTS_UP_TO else "center",
                  fontsize=fontsize)
    ax.set_yticks(range(C), names, fontsize=fontsize)
    if C <= COUNTS_UP_TO:
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=text_color(im, v))
    else:
        title += " (colour: log(1 + count))"
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="images" if C <= COUNTS_UP_TO else "log(1 + images)")
    return fig


def weights_figure(images, titles, title):
    """Weights that are images (K, H, W, channels), each stretched to its own range, with a title each."""
    plt = pyplot()
    n = len(images)
    cols = min(n, 5 if n <= 20 else 10)
    rows = math.ceil(n / cols)
    side = 2.0 if n <= 20 else 1.15  # many hidden units: smaller tiles, so the figure stays a page
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, (side + 0.2) * rows + 0.4), squeeze=False, layout="constrained")
    for c, ax in enumerate(axes.flat):
        ax.axis("off")
        if c >= n:
            continue
        img = np.asarray(images[c], np.float64)
        lo, hi = img.min(), img.max()
        show(ax, (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))
        ax.set_title(short(titles[c], 18), fontsize=9 if n <= 20 else 7)
    fig.suptitle(title)
    return fig
