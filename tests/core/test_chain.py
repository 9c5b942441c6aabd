"""Pixels and FeatureChain: loop references, standardisation, state round trips, fingerprints."""
import numpy as np
import pytest

import features_standin
from mlcv_cli.core.features.chain import FeatureChain, StepError
from mlcv_cli.core.features.pixels import Pixels


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def standin(monkeypatch):
    return features_standin.install(monkeypatch)


def test_pixels_against_a_loop(images):
    scale = 1 / 255
    mean = np.zeros(192)
    for img in images:
        mean += img.reshape(-1).astype(np.float64)
    mean = (mean / len(images)) * scale
    X = Pixels(scale, True).fit(images).transform(images[:3])
    for i in range(3):
        row = images[i].reshape(-1).astype(np.float32) * np.float32(scale) - mean.astype(np.float32)
        np.testing.assert_array_equal(X[i], row)
    assert Pixels(2.0, False).fit(images).transform(images[:1]).tolist() == [list(images[0].reshape(-1) * 2.0)]


def test_pixels_chain_is_exactly_pixels_and_never_standardised(images):
    chain = FeatureChain([("pixels", {"scale": 0.5, "subtract_mean": True})])
    X = chain.fit_transform(images[:20])
    assert chain.mean_ is None and not chain.standardizes
    np.testing.assert_array_equal(X, Pixels(0.5, True).fit(images[:20]).transform(images[:20]))
    np.testing.assert_array_equal(chain.transform(images[20:]), Pixels(0.5, True).fit(images[:20]).transform(images[20:]))


def test_chain_concatenates_in_order_and_standardises_with_training_statistics(images, standin):
    steps = [("kmeans", {"num_centroids": 3, "seed": 1}), ("pixels", {"scale": 1.0, "subtract_mean": False})]
    chain = FeatureChain(steps)
    train, other = images[:20], images[20:]
    X = chain.fit_transform(train)
    km = standin(num_centroids=3, seed=1).fit(train)
    raw = np.concatenate([km.transform(train), train.reshape(20, -1).astype(np.float32)], 1).astype(np.float64)
    assert X.shape == (20, 12 + 192) == (20, chain.output_dim((8, 8, 3)))
    mean = raw.mean(0)
    var = raw.var(0)
    scale = np.sqrt(var + 0.01 * var.mean())
    np.testing.assert_allclose(X, (raw - mean) / scale, rtol=1e-5, atol=1e-5)
    raw_other = np.concatenate([km.transform(other), other.reshape(len(other), -1).astype(np.float32)], 1)
    np.testing.assert_allclose(chain.transform(other), (raw_other - mean) / scale, rtol=1e-5, atol=1e-5)


def test_state_round_trip_gives_same_features_and_fingerprint(images, standin):
    chain = FeatureChain([("kmeans", {"num_centroids": 4, "seed": 3})])
    chain.fit(images[:20])
    again = FeatureChain.from_state(chain.spec(), chain.state())
    assert again.fingerprint() == chain.fingerprint()
    np.testing.assert_array_equal(again.transform(images[20:]), chain.transform(images[20:]))
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in chain.state().values())


def test_fingerprint_follows_parameters_and_learned_arrays(images, standin):
    a = FeatureChain([("kmeans", {"num_centroids": 4, "seed": 3})]).fit(images[:20])
    b = FeatureChain([("kmeans", {"num_centroids": 4, "seed": 3})]).fit(images[:20])
    c = FeatureChain([("kmeans", {"num_centroids": 4, "seed": 4})]).fit(images[:20])
    d = FeatureChain([("kmeans", {"num_centroids": 4, "seed": 3})]).fit(images[5:25])
    assert a.fingerprint() == b.fingerprint()
    assert len({a.fingerprint(), c.fingerprint(), d.fingerprint()}) == 3


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.pop("0.centroids"), "0.centroids"),
    (lambda s: s.update({"0.centroids": s["0.centroids"][:2]}), "0.centroids"),
    (lambda s: s.update({"mean": s["mean"][:-1]}), "mean"),
    (lambda s: s.update({"scale": -s["scale"]}), "scale"),
    (lambda s: s.update({"image_shape": np.array([8, 8])}), "image_shape"),
    (lambda s: s.update({"3.extra": np.zeros(2)}), "3.extra"),
])
def test_from_state_names_the_bad_array(images, standin, change, fragment):
    chain = FeatureChain([("kmeans", {"num_centroids": 4})]).fit(images)
    state = chain.state()
    change(state)
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        FeatureChain.from_state(chain.spec(), state)


def test_check_names_step_and_parameter(standin):
    with pytest.raises(StepError) as info:
        FeatureChain([("pixels", {}), ("kmeans", {"patch_size": 9})]).check((8, 8, 3))
    assert info.value.index == 1 and info.value.error.startswith("patch_size:")
    with pytest.raises(StepError, match="unknown feature type"):
        FeatureChain([("sift", {})]).check((8, 8, 3))
