"""Seeded train/val/test splits of a dataset: validation images carved from the training images,
and the test split held out from them when the dataset has none. ``cfg`` is a resolved Config."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import ConfigError


@dataclass
class Splits:
    classes: list
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: Optional[np.ndarray]
    test_y: Optional[np.ndarray]

    def get(self, split):
        x, y = {"train": (self.train_x, self.train_y), "val": (self.val_x, self.val_y), "test": (self.test_x, self.test_y)}[split]
        return x, y


def holdout_size(n: int) -> int:
    """The default size of a split carved from n images: 10%, at most 1,000 (0 below 10 images)."""
    return min(n // 10, 1000)


def _carved_test(cfg, ds):
    """Indices into the training images held out as the test split of a dataset without one, or None."""
    if ds.test_y is not None:
        return None
    n = len(ds.train_y)
    num_test = holdout_size(n) if cfg.data.num_test is None else cfg.data.num_test
    if num_test == 0:
        return None
    if num_test >= n:
        raise ConfigError(
            f"data.num_test: {ds.name} has no test split, so the test images are carved from its {n} training "
            f"images, but {num_test} were asked for; set data.num_test below {n} (e.g. --set data.num_test={max(1, n // 5)})"
        )
    return np.sort(np.random.default_rng([cfg.seed, 3]).permutation(n)[:num_test])


def split_indices(cfg, ds) -> dict:
    """Which images each split takes: {"train": ("train", idx), "val": ("train", idx), "test": (source, idx)
    or None}, idx sorted int64 indices into ds.train_* ("train") or ds.test_* ("test")."""
    carved = _carved_test(cfg, ds)
    pool = np.arange(len(ds.train_y)) if carved is None else np.setdiff1d(np.arange(len(ds.train_y)), carved)
    n = len(pool)
    num_val = holdout_size(n) if cfg.data.num_val is None else cfg.data.num_val
    num_train = cfg.data.num_train if cfg.data.num_train is not None else n - num_val
    images = f"the {ds.name} training set has {'only ' if num_val >= n else ''}{n} images" + (
        f" after the {len(carved)} test images carved from it" if carved is not None else "")
    if num_val >= n:
        raise ConfigError(
            f"data.num_val: {num_val} validation images asked for, but {images}; "
            f"set data.num_val below {n} (e.g. --set data.num_val={n // 10}), or null for 10%"
        )
    if num_train + num_val > n:
        raise ConfigError(
            f"data.num_train + data.num_val: {images}, "
            f"asked for {num_train} + {num_val}; lower them (null num_train takes all that is left)"
        )
    rng = np.random.default_rng([cfg.seed, 1])
    order = pool[rng.permutation(n)]
    return {"train": ("train", np.sort(order[num_val : num_val + num_train])), "val": ("train", np.sort(order[:num_val])),
            "test": test_indices(cfg, ds, carved)}


def test_indices(cfg, ds, carved=False):
    """(source, idx) of the test images (see held_out_test), or None when there are none."""
    if carved is False:
        carved = _carved_test(cfg, ds)
    if carved is not None:
        return "train", carved
    if ds.test_y is None:
        return None
    if cfg.data.num_test is None:
        return "test", np.arange(len(ds.test_y))
    if cfg.data.num_test > len(ds.test_y):
        raise ConfigError(f"data.num_test: the {ds.name} test set has {len(ds.test_y)} images, asked for {cfg.data.num_test}")
    return "test", np.sort(np.random.default_rng([cfg.seed, 2]).permutation(len(ds.test_y))[: cfg.data.num_test])


def split_record(indices: dict) -> dict:
    """What a run records of its splits (meta.json, inputs.splits): per split, its size and a digest of
    which images it took, so that a split rebuilt later can be told apart from the one trained with."""
    record = {}
    for split, where in indices.items():
        if where is not None:
            source, idx = where
            digest = hashlib.sha256(f"{source}|{len(idx)}|".encode() + np.asarray(idx, "<i8").tobytes()).hexdigest()
            record[split] = {"n": int(len(idx)), "from": source, "sha256": digest}
    return record


def split_dataset(cfg, ds) -> Splits:
    """Seeded train/val/test split: the validation images are carved from the training images
    (and so is the test split of a dataset that has none)."""
    where = split_indices(cfg, ds)
    train_idx, val_idx = where["train"][1], where["val"][1]
    test_x, test_y = take(ds, where["test"])
    return Splits(
        classes=list(ds.classes),
        train_x=ds.train_x[train_idx],
        train_y=np.asarray(ds.train_y[train_idx], np.int64),
        val_x=ds.train_x[val_idx],
        val_y=np.asarray(ds.train_y[val_idx], np.int64),
        test_x=test_x,
        test_y=test_y,
    )


def held_out_test(cfg, ds):
    """The test images and labels (a seeded subset of data.num_test, or for a dataset without a
    test split the images carved from its training images), or (None, None)."""
    return take(ds, test_indices(cfg, ds))


def take(ds, where):
    """(images, int64 labels) at (source, idx), or (None, None)."""
    if where is None:
        return None, None
    source, idx = where
    x, y = (ds.train_x, ds.train_y) if source == "train" else (ds.test_x, ds.test_y)
    if source == "test" and len(idx) == len(y):  # the whole test set: no copy of a memory map
        return np.asarray(x), np.asarray(y, np.int64)
    return np.asarray(x[idx]), np.asarray(y[idx], np.int64)
