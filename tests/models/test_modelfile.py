"""models/modelfile.py and each model type's arrays: a model file round-trips to an estimator that
scores the same, a damaged entry is refused by name, and files of earlier versions still load."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mlcv_cli import config
from mlcv_cli.config.features import build_chain
from mlcv_cli.errors import ModelFileError
from mlcv_cli.models import modelfile, registry
from mlcv_cli.models.build import estimator_from_file

LEGACY = Path(__file__).resolve().parent / "legacy"


@pytest.mark.parametrize("model", ["softmax", "knn"])
def test_model_files_written_before_features_predict_identically(model):
    """tests/models/legacy/legacy-*.npz were written by mlcv at commit 632e17f (model format 1)."""
    mf = modelfile.load(LEGACY / f"legacy-{model}.npz")
    expected = np.load(LEGACY / "legacy-expected.npz")
    est = estimator_from_file(mf)
    X = mf.chain.transform(expected["queries"])
    if model == "knn":  # integer votes: exact on any machine
        np.testing.assert_array_equal(est.vote_counts(X), expected["knn_scores"])
        return
    # The stored probabilities came from one BLAS kernel; another sums the 192 float32
    # products of each score in another order, which moves a probability by a few float32
    # ulps (seen: 6e-8 absolute). Bit-exactness is for two runs on one machine (resume tests).
    proba, stored = est.predict_proba(X), expected["softmax_scores"]
    np.testing.assert_allclose(proba, stored, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), stored.argmax(axis=1))


# -- every model type's arrays: ModelType.arrays -> model file -> check_arrays -> from_arrays ------------

TYPES = registry.types()
SIDE, N, C = 4, 36, 3


@pytest.fixture(scope="module")
def fitted():
    """{type name: (type, cfg, chain, est, images, labels)}: each type fitted, as train would, on tiny
    uint8 images through its config's feature chain."""
    rng = np.random.default_rng(0)
    labels = np.arange(N) % C
    images = rng.integers(0, 120, (N, SIDE, SIDE, 3), dtype=np.uint8)
    images[np.arange(N), :, :, labels] += 120  # a tint per class: every model learns something
    out = {}
    for t in TYPES:
        cfg = config.replace(config.resolve(model_type=t.name), {"data.image_size": SIDE, "train.epochs": 2, "train.batch_size": 12})
        chain = build_chain(cfg)
        features = chain.fit_transform(images)
        X = images.reshape(N, -1) if t.searches_pixels(chain) else features
        est = t.build(cfg).fit(X, labels, num_classes=C)
        out[t.name] = (t, cfg, chain, est, images, labels)
    return out


def _rows(t, chain):
    """What a model rebuilt from its file sees for flat uint8 images (build.model_rows without a cache)."""
    def rows(flat_images):
        images = flat_images.reshape(-1, SIDE, SIDE, 3)
        return images.reshape(len(images), -1) if t.searches_pixels(chain) else chain.transform(images)

    return rows


def _stored(t, cfg, est, images, labels, path):
    """The type's arrays written to an .npz and read back as a model file's entries are."""
    np.savez(path, **t.arrays(cfg, est, SimpleNamespace(train_x=images, train_y=labels)))
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _queries(t, chain, images):
    return images.reshape(len(images), -1) if t.searches_pixels(chain) else chain.transform(images)


@pytest.mark.parametrize("name", registry.names())
def test_arrays_round_trip_to_an_estimator_that_scores_the_same(fitted, tmp_path, name):
    t, cfg, chain, est, images, labels = fitted[name]
    data = _stored(t, cfg, est, images, labels, tmp_path / "arrays.npz")
    D = chain.output_dim(chain.image_shape_)
    checked = t.check_arrays(tmp_path / "model.npz", data, D, C, SIDE * SIDE * 3)
    again = t.from_arrays(checked, C, _rows(t, chain), config.to_yaml(cfg))
    X = _queries(t, chain, images)
    np.testing.assert_array_equal(t.predict(again, X), t.predict(est, X))
    np.testing.assert_array_equal(t.values(again, X), t.values(est, X))


def _damaged(a):
    """The array with one element too few along its last axis, or a scalar of the other kind (text <-> number)."""
    if a.ndim:
        return a[..., :-1]
    return np.array(7) if a.dtype.kind == "U" else np.array("seven")


@pytest.mark.parametrize("name", registry.names())
def test_a_damaged_array_is_refused_naming_the_entry(fitted, tmp_path, name):
    t, cfg, chain, est, images, labels = fitted[name]
    data = _stored(t, cfg, est, images, labels, tmp_path / "arrays.npz")
    D = chain.output_dim(chain.image_shape_)
    for entry in data:
        with pytest.raises(ModelFileError) as err:
            t.check_arrays(tmp_path / "model.npz", {**data, entry: _damaged(data[entry])}, D, C, SIDE * SIDE * 3)
        assert re.search(rf"\b{entry}\b", str(err.value)) and str(tmp_path / "model.npz") in str(err.value), (entry, str(err.value))


@pytest.mark.parametrize("name", registry.names())
def test_non_finite_weights_are_refused(fitted, tmp_path, name):
    t, cfg, chain, est, images, labels = fitted[name]
    data = _stored(t, cfg, est, images, labels, tmp_path / "arrays.npz")
    D = chain.output_dim(chain.image_shape_)
    floats = [k for k, a in data.items() if a.dtype.kind == "f"]
    for entry in floats:
        bad = data[entry].copy()
        bad.flat[0] = np.nan
        with pytest.raises(ModelFileError):
            t.check_arrays(tmp_path / "model.npz", {**data, entry: bad}, D, C, SIDE * SIDE * 3)


@pytest.mark.parametrize("name", registry.names())
def test_model_file_round_trip_through_save_and_load(fitted, tmp_path, name):
    t, cfg, chain, est, images, labels = fitted[name]
    arrays = t.arrays(cfg, est, SimpleNamespace(train_x=images, train_y=labels))
    mf = modelfile.ModelFile(model_type=name, classes=["a", "b", "c"], image_size=SIDE, chain=chain, config_yaml=config.to_yaml(cfg),
                             arrays=arrays)
    modelfile.save(tmp_path / "model.npz", mf)
    loaded = modelfile.load(tmp_path / "model.npz")
    assert (loaded.model_type, loaded.classes, loaded.image_size, loaded.channels) == (name, ["a", "b", "c"], SIDE, 3)
    assert loaded.chain.fingerprint() == chain.fingerprint() and loaded.config_yaml == mf.config_yaml
    again = estimator_from_file(loaded)
    X = _queries(t, chain, images)
    np.testing.assert_array_equal(t.predict(again, X), t.predict(est, X))
