"""The datasets mlcv knows by name, in one place: each name, what it is, its native image size
(data.image_size defaults to it) and how its cached copy is loaded from the data dir. Image
folders are not listed: they are named by their path (data.dataset: folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import cifar10, cifar100, idx


@dataclass(frozen=True)
class NamedDataset:
    name: str
    title: str
    native_size: Optional[int]
    """Every image is this size (data.image_size defaults to it); None: resized to data.image_size."""
    load: Optional[Callable] = None
    """load(data_dir, labels) -> Dataset of the copy `mlcv download NAME` made; None for the shipped sample."""


SAMPLE = "sample"
FOLDER = "folder"
DATASETS = {
    d.name: d
    for d in (
        NamedDataset(SAMPLE, "the CIFAR-10 sample shipped with mlcv", None),
        NamedDataset("cifar10", "CIFAR-10", 32, lambda data_dir, labels: cifar10.load_cifar10(data_dir)),
        NamedDataset("mnist", "MNIST", 28, lambda data_dir, labels: idx.load_idx(idx.SOURCES["mnist"], data_dir)),
        NamedDataset("fashion-mnist", "Fashion-MNIST", 28, lambda data_dir, labels: idx.load_idx(idx.SOURCES["fashion-mnist"], data_dir)),
        NamedDataset("cifar100", "CIFAR-100", 32, lambda data_dir, labels: cifar100.load_cifar100(data_dir, labels=labels)),
    )
}
NAMES = (*list(DATASETS)[:2], FOLDER, *list(DATASETS)[2:])
"""Every value data.dataset takes, in the order messages have always listed them."""
NATIVE_IMAGE_SIZE = {d.name: d.native_size for d in DATASETS.values() if d.native_size}
