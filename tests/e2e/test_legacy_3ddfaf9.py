"""Files written by mlcv at 3ddfaf9, before the layout of #18 (runs, model files, checkpoints, a
final training state, a feature cache, an imported dataset, a cv journal), still list, score,
predict and resume with today's code (tests/data/legacy_3ddfaf9/make.py wrote them)."""

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import mlcv

HERE = Path(__file__).resolve().parents[1] / "data" / "legacy_3ddfaf9"
ROOT = Path("/tmp/mlcv-legacy-3ddfaf9")  # where make.py wrote them: runs record their data dir absolutely


@pytest.fixture
def legacy(monkeypatch):
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    with tarfile.open(HERE / "files.tar.gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.9.17+, 3.10.12+, 3.11.4+
            tar.extractall(ROOT, filter="data")
        else:  # our own archive, from make.py
            tar.extractall(ROOT)
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("MLCV_DATA_DIR", raising=False)
    yield {p.name.rsplit("-", 2)[0]: p for p in (ROOT / "runs").iterdir()}
    shutil.rmtree(ROOT, ignore_errors=True)


def _json(*args):
    result = mlcv(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_old_runs_list_score_and_predict(legacy, tmp_path):
    listing = _json("runs", "runs")
    statuses = {r["name"].rsplit("-", 2)[0]: r["status"] for r in listing["runs"]}
    assert statuses == {"softmax-done": "done", "svm-lbfgs": "done", "knn": "done", "kmeans": "done", "knn-cv": "done",
                        "softmax-stopped": "interrupted"}
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "q.png")
    for name in ("softmax-done", "svm-lbfgs", "knn", "kmeans"):
        recorded = json.loads((legacy[name] / "metrics.json").read_text())["test_accuracy"]
        assert _json("evaluate", legacy[name])["accuracy"] == recorded, name
        assert len(_json("predict", legacy[name], tmp_path / "q.png")["predictions"]) == 1, name


def test_an_interrupted_old_run_resumes_to_the_weights_of_an_uninterrupted_one(legacy):
    resumed = _json("train", "--resume", legacy["softmax-stopped"])
    assert resumed["status"] == "done"
    # The old code trained both runs' first epochs, perhaps with another BLAS kernel than this
    # machine's (one that sums the same products in another order): the resumed run ends where
    # the uninterrupted one did to float32 rounding. Bit for bit on one machine is held by
    # tests/e2e/test_interrupt.py, where both runs are trained here.
    with np.load(legacy["softmax-stopped"] / "model.npz") as a, np.load(legacy["softmax-done"] / "model.npz") as b:
        np.testing.assert_allclose(a["W"], b["W"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a["b"], b["b"], rtol=1e-4, atol=1e-6)
    done = json.loads((legacy["softmax-done"] / "metrics.json").read_text())
    assert abs(resumed["test_accuracy"] - done["test_accuracy"]) <= 1 / resumed["n_test"] + 1e-12


def test_finished_old_runs_train_on_and_old_caches_are_read(legacy):
    longer = _json("train", "--resume", legacy["svm-lbfgs"], "--set", "train.epochs=8")
    assert longer["status"] == "done"
    kmeans = _json("train", "--resume", legacy["kmeans"], "--set", "train.epochs=5")
    assert {e["cache"] for e in kmeans["features"]["cache"]} == {"hit"}  # the old chain and features, not refitted
    cv = _json("cv", "--resume", legacy["knn-cv"])
    assert cv["jobs_resumed"] == cv["jobs"] == 2 and cv["best_params"] == {"model.k": 1}
