"""Figures of what features and image-keeping models see: the k-means dictionary, HOG cells,
and nearest training images."""

from __future__ import annotations

import math

import numpy as np

from .backend import pyplot, short, show


def filters_figure(filters):
    """The k-means dictionary (K, p, p, channels), each filter stretched to [0, 1] on its own
    (KMeansFeatures.filters() undoes the whitening; the contrast normalisation stays)."""
    F = np.asarray(filters, np.float64)
    K, p = F.shape[0], F.shape[1]
    lo = F.reshape(K, -1).min(axis=1)[:, None, None, None]
    hi = F.reshape(K, -1).max(axis=1)[:, None, None, None]
    F = (F - lo) / np.where(hi > lo, hi - lo, 1.0)
    if F.shape[3] == 1:
        F = np.repeat(F, 3, axis=3)
    cols = math.ceil(math.sqrt(K))
    rows = math.ceil(K / cols)
    mosaic = np.ones((rows * (p + 1) + 1, cols * (p + 1) + 1, 3))  # white 1-pixel gaps
    for k in range(K):
        r, c = divmod(k, cols)
        mosaic[1 + r * (p + 1): 1 + r * (p + 1) + p, 1 + c * (p + 1): 1 + c * (p + 1) + p] = F[k]
    plt = pyplot()
    side = min(12.0, max(4.0, cols * 0.25))
    fig, ax = plt.subplots(figsize=(side, side * rows / cols + 0.4))
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"k-means dictionary: {K} centroids of {p}x{p} patches (whitening undone)", fontsize=9)
    return fig


_HOG_COLUMNS = 5


def hog_figure(cells, classes, total_classes=None):
    """One image per class above its HOG cells, each cell's histogram drawn as lines along the
    edge directions (perpendicular to the gradients), longer for more votes.

    cells: workflow.examples.hog_cells' dict: images uint8 (N, H, W, C), labels (N,), hist (N, cy, cx, B),
    edge_angles (B,) in radians, cell_size, orientations. total_classes: the dataset's number of
    classes when only the first N are drawn (said in the title).
    """
    from matplotlib.collections import LineCollection

    images, labels, hist = cells["images"], cells["labels"], np.asarray(cells["hist"], np.float64)
    angles, s = cells["edge_angles"], cells["cell_size"]
    n = len(images)
    cols = min(n, _HOG_COLUMNS)
    blocks = math.ceil(n / cols)
    plt = pyplot()
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(1.8 * cols, 3.7 * blocks), squeeze=False)
    for i in range(n):
        b, c = divmod(i, cols)
        top, bottom = axes[2 * b, c], axes[2 * b + 1, c]
        show(top, images[i])
        top.set_title(short(classes[labels[i]], 16), fontsize=8)
        h = hist[i] / (hist[i].max() or 1.0)
        cy, cx, _ = h.shape
        yc, xc = (np.mgrid[0:cy, 0:cx] + 0.5) * s - 0.5
        r = 0.5 * s * h  # (cy, cx, B): half-length of each orientation's line
        dx, dy = r * np.cos(angles), r * np.sin(angles)
        x0, y0 = xc[..., None] - dx, yc[..., None] - dy
        x1, y1 = xc[..., None] + dx, yc[..., None] + dy
        segments = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], -2).reshape(-1, 2, 2)
        bottom.set_facecolor("black")
        bottom.add_collection(LineCollection(segments, colors="white", linewidths=1.0, alpha=0.9))
        bottom.set_xlim(-0.5, images.shape[2] - 0.5)
        bottom.set_ylim(images.shape[1] - 0.5, -0.5)
        bottom.set_aspect("equal")
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if (k // cols // 2) * cols + k % cols >= n:
            ax.axis("off")
    shown = "one image per class" if not total_classes or total_classes <= n else f"the first {n} of {total_classes} classes"
    fig.suptitle(f"HOG, {shown}: {cells['orientations']} orientations per {s}x{s}-pixel cell (line length: gradient votes)",
                 fontsize=9)
    return fig


def neighbors_figure(queries, neighbors, query_labels, neighbor_labels, classes, split="test"):
    """Query images in the first column, their nearest training images along the row.

    queries: uint8 (Q, H, W, C); neighbors: uint8 (Q, k, H, W, C) with C 1 or 3; labels as class indices.
    """
    plt = pyplot()
    Q, k = neighbors.shape[:2]
    fig, axes = plt.subplots(Q, k + 1, figsize=(1.1 * (k + 1), 1.15 * Q), squeeze=False)
    for i in range(Q):
        show(axes[i, 0], queries[i])
        axes[i, 0].set_title(short(classes[query_labels[i]], 12), fontsize=6, color="black")
        for j in range(k):
            same = neighbor_labels[i, j] == query_labels[i]
            show(axes[i, j + 1], neighbors[i, j])
            axes[i, j + 1].set_title(short(classes[neighbor_labels[i, j]], 12), fontsize=6, color="green" if same else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{split} images (left) and their nearest training images (green: same class)", fontsize=9)
    return fig
