import json
import re

import numpy as np
import pytest

from mlcv_cli.data.base import Dataset, load_cache, read_manifest, save_cache
from mlcv_cli.errors import DataError


def array_file(directory, key):
    [path] = directory.glob(f"{key}-*.npy")
    return path


def small_dataset(with_test=True):
    rng = np.random.default_rng(0)
    return Dataset(
        name="tiny",
        classes=["a", "b", "c"],
        train_x=rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8),
        train_y=rng.integers(0, 3, 6).astype(np.int64),
        test_x=rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8) if with_test else None,
        test_y=np.array([0, 2], dtype=np.int64) if with_test else None,
        source="/somewhere/tiny.zip",
    )


@pytest.mark.parametrize("with_test", [True, False])
def test_round_trip(tmp_path, with_test):
    ds = small_dataset(with_test)
    manifest = save_cache(tmp_path / "c", ds, extra={"archive_md5": "abc"})
    assert manifest["archive_md5"] == "abc" and manifest["classes"] == ["a", "b", "c"]
    got = load_cache(tmp_path / "c")
    assert isinstance(got.train_x, np.memmap)
    np.testing.assert_array_equal(got.train_x, ds.train_x)
    np.testing.assert_array_equal(got.train_y, ds.train_y)
    assert got.classes == ds.classes and got.name == "tiny" and got.source == ds.source
    if with_test:
        np.testing.assert_array_equal(got.test_x, ds.test_x)
    else:
        assert got.test_x is None and got.test_y is None
    assert not isinstance(load_cache(tmp_path / "c", mmap=False).train_x, np.memmap)
    assert read_manifest(tmp_path / "c", verify=True)["name"] == "tiny"
    # No temporary files left behind.
    names = sorted(re.sub(r"-[0-9a-f]{8}\.npy$", ".npy", p.name) for p in (tmp_path / "c").iterdir())
    assert names == sorted(["manifest.json", "train_x.npy", "train_y.npy"] + (["test_x.npy", "test_y.npy"] if with_test else []))


def test_missing_manifest_not_trusted(tmp_path):
    save_cache(tmp_path, small_dataset())
    (tmp_path / "manifest.json").unlink()
    assert read_manifest(tmp_path) is None
    with pytest.raises(DataError, match="incomplete.*FIX"):
        load_cache(tmp_path, fix="FIX")


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"format": "other"}'])
def test_corrupt_manifest_not_trusted(tmp_path, text):
    save_cache(tmp_path, small_dataset())
    (tmp_path / "manifest.json").write_text(text)
    assert read_manifest(tmp_path) is None
    with pytest.raises(DataError, match="manifest"):
        load_cache(tmp_path)


def test_truncated_array_not_trusted(tmp_path):
    save_cache(tmp_path, small_dataset())
    path = array_file(tmp_path, "train_x")
    path.write_bytes(path.read_bytes()[:-10])
    assert read_manifest(tmp_path) is None
    with pytest.raises(DataError, match="train_x-.*npy.*bytes"):
        load_cache(tmp_path)


def test_changed_bytes_caught_by_verify(tmp_path):
    save_cache(tmp_path, small_dataset())
    path = array_file(tmp_path, "train_x")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_manifest(tmp_path) is not None  # sizes still agree
    assert read_manifest(tmp_path, verify=True) is None
    with pytest.raises(DataError, match="checksum"):
        load_cache(tmp_path, verify=True)


def test_missing_array_file(tmp_path):
    save_cache(tmp_path, small_dataset())
    array_file(tmp_path, "test_y").unlink()
    with pytest.raises(DataError, match="test_y-.*npy is missing"):
        load_cache(tmp_path)


def test_labels_out_of_range(tmp_path):
    ds = small_dataset()
    ds.train_y[0] = 3
    save_cache(tmp_path, ds)
    with pytest.raises(DataError, match="labels outside"):
        load_cache(tmp_path)


def test_manifest_shape_mismatch(tmp_path):
    save_cache(tmp_path, small_dataset())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["arrays"]["train_x"]["shape"] = [7, 4, 4, 3]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest says"):
        load_cache(tmp_path)


def test_failed_rewrite_keeps_the_previous_cache(tmp_path, monkeypatch):
    save_cache(tmp_path, small_dataset())
    before = sorted(p.name for p in tmp_path.iterdir())
    import mlcv_cli.data.base as base

    real_save = base.save_npy
    calls = []

    def crash_on_third(path, array):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        real_save(path, array)

    monkeypatch.setattr(base, "save_npy", crash_on_third)
    with pytest.raises(RuntimeError):
        save_cache(tmp_path, small_dataset())
    assert read_manifest(tmp_path, verify=True) is not None  # the old cache is still complete
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # and the half-written one is gone


def test_rewrite_replaces_the_old_generation(tmp_path):
    save_cache(tmp_path, small_dataset())
    save_cache(tmp_path, small_dataset())
    assert len(list(tmp_path.glob("*.npy"))) == 4  # one generation of train/test x/y
