"""models/knn.py: which rows the kNN model searches, and what its model file keeps."""

import json

import numpy as np

from helpers import mlcv, sets
from mlcv_cli.core.features.chain import FeatureChain
from mlcv_cli.models import modelfile
from mlcv_cli.models.build import estimator_from_file
from mlcv_cli.models.build import searches_pixels as knn_searches_pixels

SMALL = sets("data.num_train=300", "data.num_val=50", "data.num_test=100")


def test_knn_searches_raw_pixels_only_when_neighbours_cannot_change():
    pixels = [("pixels", {"scale": 1 / 255, "subtract_mean": True})]
    assert knn_searches_pixels("knn", FeatureChain(pixels))
    assert knn_searches_pixels("knn", FeatureChain(pixels + [("pixels", {"scale": 2.0, "subtract_mean": False})]))
    assert not knn_searches_pixels("knn", FeatureChain(pixels, standardize=True))  # per-pixel scales reorder
    assert not knn_searches_pixels("knn", FeatureChain([("hog", {})]))
    assert not knn_searches_pixels("softmax", FeatureChain(pixels))


def test_saved_knn_model_keeps_its_memory_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    result = mlcv("train", "--model", "knn", *SMALL, "--set", "model.max_memory_mb=40", "--json")
    assert result.exit_code == 0, result.output
    mf = modelfile.load(tmp_path / json.loads(result.stdout)["run_dir"] / "model.npz")
    est = estimator_from_file(mf)
    assert est.max_memory == 40 * 2**20
    assert est.X_train_.dtype == np.uint8 and est.X_train_.shape == (300, 3072)
