"""`mlcv predict`: the top classes of image files under a saved model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.channels import match_channels
from ..data.images import IMAGE_EXTENSIONS, header_size, read_image
from ..errors import MlcvError
from ..models import modelfile, registry
from ..models.build import estimator_from_file, model_rows
from .saved import feature_store_of, locate_model

UPSCALE_LIMIT = 2  # an image enlarged more than this on a side is warned about


def predict(target, files, *, top=3) -> dict:
    """Top-k classes for each image file; unreadable files are reported, the rest predicted."""

    path, warning = locate_model(target)
    mf = modelfile.load(path)
    est = estimator_from_file(mf, feature_store_of(mf))
    model_type = registry.get(mf.model_type)
    kind = model_type.score_kind
    C = len(mf.classes)
    top = max(1, min(top, C))
    images, ok, failed, small = [], [], [], {}
    for f in expand_image_paths(files):
        try:
            images.append(read_image(f, size=mf.image_size))
            ok.append(str(f))
        except MlcvError as exc:
            failed.append({"path": str(f), "error": str(exc)})
            continue
        found = header_size(f)
        if found and min(found) * UPSCALE_LIMIT < mf.image_size:
            small[str(f)] = found
    if not images and not failed:
        raise MlcvError(f"no image files found in {', '.join(str(f) for f in files)} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    rows = []
    if images:

        # Files are read as colour; a grayscale model sees them as Pillow's luma.
        X = model_rows(mf, match_channels(np.stack(images), mf.channels))
        values = model_type.values(est, X)
        cast = int if kind == "votes" else float
        # Stable sort on the negated values: equal values keep the smaller class index first.
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        for i, f in enumerate(ok):
            # A class no neighbour voted for is not a prediction: list only classes with votes.
            picks = [j for n, j in enumerate(order[i]) if n == 0 or kind != "votes" or values[i, j] > 0]
            rows.append({"path": f, "top": [{"class": mf.classes[j], kind: cast(values[i, j])} for j in picks]})
            if f in small:
                rows[-1]["upscaled_from"] = list(small[f])
    notes = [model_type.estimator_note(est) if images else None, model_type.predict_note(mf.arrays, top)]
    note = "; ".join(n for n in notes if n) or None
    warnings = [warning, _upscaled_warning(small, mf.image_size)]
    return {"model_path": str(path), "model": mf.model_type, "value": kind if images else None, "predictions": rows,
            "failed": failed, "warning": "; ".join(w for w in warnings if w) or None, "note": note}


def _upscaled_warning(small, size):
    """A prediction for an image blown up from a few pixels says little about it: say which."""
    if not small:
        return None
    shown = ", ".join(f"{p} ({w}x{h})" for p, (w, h) in list(small.items())[:3]) + (f" and {len(small) - 3} more" if len(small) > 3 else "")
    return (f"{shown} {'was' if len(small) == 1 else 'were'} upscaled more than {UPSCALE_LIMIT}x to the model's {size}x{size} "
            "pixels: the prediction says little about such a small image")


MAX_DEPTH = 64
"""Folders nested deeper than this under a directory given to predict are refused: no image
collection is, and a walk that followed them would only end in the recursion limit."""


def expand_image_paths(items):
    """Files as given; directories expand to the image files inside them (sorted, recursive;
    links to directories are not followed, so a link loop cannot make the walk endless)."""

    for item in items:
        p = Path(item)
        if p.is_dir():
            yield from sorted(q for q in _files_under(p) if q.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            yield p


def _files_under(root):
    """Every regular file below ``root``, walked with a stack (no recursion), at most MAX_DEPTH levels down."""

    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise MlcvError(f"cannot read folder {folder}: {exc.strerror or exc}; check its permissions") from None
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 > MAX_DEPTH:
                        raise MlcvError(f"{root}: folders are nested more than {MAX_DEPTH} levels deep (at {path}); "
                                        "give the folders that hold the images, or files")
                    stack.append((path, depth + 1))
                elif entry.is_file():
                    yield path
            except OSError:
                continue
