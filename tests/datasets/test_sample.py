"""The CIFAR-10 sample shipped inside the package: real, balanced, and loadable offline."""

import zipfile

import numpy as np

from mlcv_cli import datasets


def test_shipped_sample_shapes_dtypes_and_balance():
    ds = datasets.load_sample()
    assert ds.classes == list(datasets.CIFAR10_CLASSES)
    assert ds.train_x.shape == (5000, 32, 32, 3) and ds.train_x.dtype == np.uint8
    assert ds.test_x.shape == (1000, 32, 32, 3) and ds.test_x.dtype == np.uint8
    assert ds.train_y.dtype == np.int64 and ds.test_y.dtype == np.int64
    assert np.bincount(ds.train_y, minlength=10).tolist() == [500] * 10
    assert np.bincount(ds.test_y, minlength=10).tolist() == [100] * 10
    # Real photographs: varied pixels, not a constant or synthetic pattern.
    assert 60 < ds.train_x.mean() < 200 and ds.train_x.std() > 40


def test_shipped_sample_is_small_jpegs_with_disjoint_splits():
    assert datasets.SAMPLE_ZIP.stat().st_size < 10 * 2**20
    with zipfile.ZipFile(datasets.SAMPLE_ZIP) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
    assert all(n.endswith(".jpg") for n in names)
    train = {n.split("/", 1)[1] for n in names if n.startswith("train/")}
    test = {n.split("/", 1)[1] for n in names if n.startswith("test/")}
    assert len(train) == 5000 and len(test) == 1000 and not train & test
