
import dataclasses

import numpy as np
import pytest
from PIL import Image

from mlcv_cli import data as datasets

_SHIPPED_SAMPLE = datasets.SAMPLE_ZIP
_decoded_samples = {}  # image size -> the shipped sample's Dataset, arrays read-only


@pytest.fixture(scope="session", autouse=True)
def _shipped_sample_decoded_once():
    """In this test process the shipped sample (6,000 JPEGs, 1.5 s or more to decode) is decoded
    once per image size, for module fixtures too. Each load gets its own Dataset over read-only
    arrays, so no test can change what another one sees; a test that points SAMPLE_ZIP elsewhere
    gets a real load, and tests/datasets/test_sample.py checks the decoding itself."""
    decode = datasets.load_sample

    def load_sample(size=32):
        if datasets.SAMPLE_ZIP != _SHIPPED_SAMPLE:
            return decode(size)
        if size not in _decoded_samples:
            ds = decode(size)
            for array in (ds.train_x, ds.train_y, ds.test_x, ds.test_y):
                array.flags.writeable = False
            _decoded_samples[size] = ds
        ds = _decoded_samples[size]
        return dataclasses.replace(ds, classes=list(ds.classes), notes=list(ds.notes))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "load_sample", load_sample)
        yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty directory with its own data dir, as a new user would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLCV_DEBUG", raising=False)
    return tmp_path


@pytest.fixture
def image_files(tmp_path):
    """A few real-looking image files of different sizes and modes, plus one corrupt file."""
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L").save(d / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), mode="RGBA").save(d / "c.png")
    (d / "broken.png").write_bytes(b"this is not an image")
    return d


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """--set items for a 3-class folder of 8x8 images (30 training and 5 test images per class):
    loads in a fraction of the time of the shipped sample."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 5)):
        for c, name in enumerate("abc"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 80, (8, 8, 3), dtype=np.uint8)
                pixels[..., c] += 170
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return ["data.dataset=folder", f"data.path={root}", "data.image_size=8"]
