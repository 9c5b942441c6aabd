"""data/feature_chunks.py through the feature cache: an interrupted fit or transform keeps its fitted
extractors and finished chunks, and the next one goes on from them to exactly the same features."""

import json

import numpy as np
import pytest

from mlcv_cli import data as datasets
from mlcv_cli.core.features.chain import FeatureChain
from mlcv_cli.data import feature_chunks
from mlcv_cli.data.feature_cache import FeatureStore
from mlcv_cli.system import locks


@pytest.fixture(scope="module")
def images():
    return datasets.load_sample(32).train_x[:150]


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    """Chunks of 64 rows, so 150 images make three."""
    monkeypatch.setattr(feature_chunks, "CHUNK_ROWS", 64)


def kmeans_chain():
    return FeatureChain([("kmeans", {"num_centroids": 20, "num_patches": 2000, "iterations": 2, "mirror": True})])


def interrupted_after(rows):
    """A progress factory that raises KeyboardInterrupt once ``rows`` images are encoded (a Ctrl-C)."""
    count = [0]

    class Bar:
        def __init__(self, total, desc):
            self.desc = desc

        def update(self, n=1, **postfix):
            if self.desc == "k-means encoding" and not postfix:
                count[0] += n
                if count[0] >= rows:
                    raise KeyboardInterrupt

        def close(self):
            pass

    return Bar


def test_rows_do_not_depend_on_the_chunks_they_are_encoded_in(images):
    chain = kmeans_chain().fit_steps(images)
    whole = chain.encode(images)
    for rows in (64, 50, 7):
        assert np.array_equal(np.concatenate([chain.encode(images[s:s + rows]) for s in range(0, len(images), rows)]), whole)


def test_an_interrupted_fit_keeps_its_extractor_and_chunks_and_goes_on_from_them(tmp_path, images):
    reference_chain, reference = FeatureStore(None).fit(kmeans_chain(), images)
    store = FeatureStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.fit(kmeans_chain(), images, interrupted_after(100))
    assert [p.name for p in tmp_path.glob("*.part/0*.npy")] == ["0000000000.npy"]  # 64 rows, the second chunk cut short
    assert len(list(tmp_path.glob("steps-*.npz"))) == 1 and not list(tmp_path.glob("*.json"))
    (tmp_path / next(tmp_path.glob("*.part")).name / ".0000000064.npy.x1y2z3.tmp").write_bytes(b"torn")  # a killed writer's

    again = FeatureStore(tmp_path)
    chain, X = again.fit(kmeans_chain(), images)
    outcomes = [e["cache"] for e in again.events]
    assert outcomes[0].startswith("resumed: the fitted extractors") and outcomes[1] == "resumed: 64 of 150 rows were kept by an interrupted run"
    assert np.array_equal(X, reference) and chain.fingerprint() == reference_chain.fingerprint()
    assert sorted(p.name.split("-")[0] if p.name.startswith("chain-") else p.suffix for p in tmp_path.iterdir()
                  if not p.name.startswith(".")) == [".json", ".npy", "chain"]  # the work in progress is gone


def test_a_transform_interrupted_goes_on_from_its_chunks(tmp_path, images):
    store = FeatureStore(tmp_path)
    chain, _ = store.fit(kmeans_chain(), images[:50])
    expected = chain.transform(images)
    with pytest.raises(KeyboardInterrupt):
        store.transform(chain, images, interrupted_after(130), "test")
    again = FeatureStore(tmp_path)
    X = again.transform(chain, images, None, "test")
    assert np.array_equal(X, expected) and again.events[0]["cache"].startswith("resumed: 128 of 150")
    assert not list(tmp_path.glob("*.part"))


def test_a_part_directory_for_other_rows_is_rebuilt_not_used(tmp_path, images):
    store = FeatureStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.fit(kmeans_chain(), images, interrupted_after(100))
    manifest = next(tmp_path.glob("*.part")) / feature_chunks.MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "chunk_rows": 7}))
    again = FeatureStore(tmp_path)
    _, X = again.fit(kmeans_chain(), images)
    assert any("was written for other rows" in e["cache"] for e in again.events)
    assert np.array_equal(X, FeatureStore(None).fit(kmeans_chain(), images)[1])


def test_a_mapped_entry_is_in_use_until_it_is_released(tmp_path, images):
    store = FeatureStore(tmp_path)
    chain, _ = store.fit(kmeans_chain(), images[:40])
    X = FeatureStore(tmp_path).transform(chain, images[:40])
    (npy,) = tmp_path.glob("*.npy")
    assert isinstance(X, np.memmap) and locks.in_use(npy)
    del X
    assert not locks.in_use(npy)
