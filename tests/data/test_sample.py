"""The CIFAR-10 sample shipped inside the package: real, balanced, and loadable offline."""

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlcv_cli import data as datasets

DIGESTS = Path(__file__).parent / "cifar10-train-pixel-digests.npy"


@pytest.fixture(scope="module")
def sample():
    return datasets.load_sample()


def test_shipped_sample_shapes_dtypes_and_balance(sample):
    ds = sample
    assert ds.classes == list(datasets.CIFAR10_CLASSES)
    assert ds.train_x.shape == (5000, 32, 32, 3) and ds.train_x.dtype == np.uint8
    assert ds.test_x.shape == (1000, 32, 32, 3) and ds.test_x.dtype == np.uint8
    assert ds.train_y.dtype == np.int64 and ds.test_y.dtype == np.int64
    assert np.bincount(ds.train_y, minlength=10).tolist() == [500] * 10
    assert np.bincount(ds.test_y, minlength=10).tolist() == [100] * 10
    # Real photographs: varied pixels, not a constant or synthetic pattern.
    assert 60 < ds.train_x.mean() < 200 and ds.train_x.std() > 40


def test_shipped_sample_is_small_jpegs():
    assert datasets.SAMPLE_ZIP.stat().st_size < 10 * 2**20
    with zipfile.ZipFile(datasets.SAMPLE_ZIP) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
    assert all(n.endswith(".jpg") for n in names)
    train = {n.split("/", 1)[1] for n in names if n.startswith("train/")}
    test = {n.split("/", 1)[1] for n in names if n.startswith("test/")}
    # The splits come from different CIFAR-10 files, so equal names are not equal images:
    # the pixel checks below are what keeps the splits apart.
    assert len(train) == 5000 and len(test) == 1000


def _pixel_digests(images):
    """The same digest data/make_sample.py records: first 8 bytes of SHA-256 of the pixels."""
    return np.array([int.from_bytes(hashlib.sha256(im.tobytes()).digest()[:8], "little") for im in images], dtype=np.uint64)


def test_shipped_test_images_are_not_training_images(sample):
    ds = sample
    train = {im.tobytes() for im in ds.train_x}
    assert len(train) == 5000
    assert not any(im.tobytes() in train for im in ds.test_x)


def test_shipped_test_split_is_not_from_the_cifar10_training_set(sample):
    # Digests of all 50,000 CIFAR-10 training images, recorded by data/make_sample.py: a model
    # trained on CIFAR-10 must not be scored on a sample test image it has seen.
    cifar_train = np.load(DIGESTS, allow_pickle=False)
    assert cifar_train.shape == (50000,)
    ds = sample
    # The control: every sample training image is found, so the digests and decoding agree.
    assert np.isin(_pixel_digests(ds.train_x), cifar_train).all()
    assert not np.isin(_pixel_digests(ds.test_x), cifar_train).any()
