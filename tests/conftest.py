"""Fixtures for every test. Plain helper functions live in helpers.py.

The test folders mirror mlcv_cli/ (tests/core/, tests/data/, ...) and tests/e2e/ holds the tests
that drive the mlcv command across layers. No folder is a package (no __init__.py): pytest
imports each test file by its basename, so every basename must be unique under tests/.
"""

import dataclasses
import inspect

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from helpers import make_folder
from mlcv_cli import data as datasets

if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
    # click before 8.2 mixes stderr into stdout in CliRunner unless told not to, and then its
    # result.output is stdout alone; 8.2 and later keep result.stderr apart and result.output
    # holds both. The suite is run on both (pyproject's lower bound is a tested one).
    _runner_init = CliRunner.__init__

    def _separate_streams(self, *args, mix_stderr=False, **kwargs):
        _runner_init(self, *args, mix_stderr=mix_stderr, **kwargs)

    CliRunner.__init__ = _separate_streams
    Result.output = property(lambda self: self.stdout + (self.stderr if self.stderr_bytes is not None else ""))

_SHIPPED_SAMPLE = datasets.SAMPLE_ZIP
_decoded_samples = {}  # image size -> the shipped sample's Dataset, arrays read-only


@pytest.fixture(scope="session", autouse=True)
def _shipped_sample_decoded_once():
    """In this test process the shipped sample (6,000 JPEGs, 1.5 s or more to decode) is decoded
    once per image size, for module fixtures too. Each load gets its own Dataset over read-only
    arrays, so no test can change what another one sees; a test that points SAMPLE_ZIP elsewhere
    gets a real load, and tests/data/test_sample.py checks the decoding itself."""
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
    root = make_folder(tmp_path_factory.mktemp("tiny"), n_train=30, n_test=5, noise=80, tint=170)
    return ["data.dataset=folder", f"data.path={root}", "data.image_size=8"]


@pytest.fixture(scope="session")
def train_only_folder(tmp_path_factory):
    """300 images 32x32 in 3 classes, train/ only, as a person makes one from their photos."""
    return make_folder(tmp_path_factory.mktemp("pets"), ("cat", "dog", "fox"), n_train=100, n_test=0, side=32, seed=5,
                       noise=90, tint=150)
