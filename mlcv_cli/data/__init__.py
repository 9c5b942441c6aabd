"""Where images come from: CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST, image folders, the shipped sample.

Every loader returns a Dataset of uint8 (N, H, W, C) images (C = 3, or 1 for grayscale),
int64 labels and class names.
"""

from __future__ import annotations

from pathlib import Path

import mlcv_cli

from ..errors import DataError
from .base import Dataset, load_cache, read_manifest, save_cache
from .cifar10 import CLASSES as CIFAR10_CLASSES
from .cifar10 import load_cifar10, prepare_cifar10
from .folder import import_folder, load_folder, load_imported
from .images import IMAGE_EXTENSIONS, MAX_PIXELS, read_image, read_images

SAMPLE_ZIP = Path(mlcv_cli.__file__).parent / "sample" / "cifar10-sample.zip"

__all__ = [
    "CIFAR10_CLASSES",
    "Dataset",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "SAMPLE_ZIP",
    "import_folder",
    "load_cache",
    "load_cifar10",
    "load_folder",
    "load_imported",
    "load_sample",
    "prepare_cifar10",
    "read_image",
    "read_images",
    "read_manifest",
    "save_cache",
]


def load_sample(size=32):
    """The small CIFAR-10 sample inside the package (train: 500 per class, test: 100 per class)."""
    if not SAMPLE_ZIP.is_file():
        raise DataError(
            f"the sample dataset is missing from this installation (expected {SAMPLE_ZIP}); "
            "reinstall mlcv, or use data.dataset: cifar10 after `mlcv download cifar10`"
        )
    dataset, _ = load_folder(SAMPLE_ZIP, size=size)
    dataset.name = "sample"
    return dataset
