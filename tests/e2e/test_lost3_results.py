"""Nothing lost, round 3: answers that look valid but are not. cv workers use the bytes their parent
decided on; evaluate scores only the split the model held out (or says what it scores); a cv in
which every point diverged names no best setting; a dataset cache is checked for what its
readers need, whatever its manifest says. Real processes and real files."""

import json
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
from helpers import MLCV, clean_env, error_line, mlcv, permissions_apply, sets

from mlcv_cli.data.feature_cache import EncodedFeatures, FeatureStore
from mlcv_cli.errors import MlcvError
from mlcv_cli.workflow.cv.run import summarise

# A learned extractor small enough for 8x8 images and a second of work.
KMEANS = ["features.0.type=kmeans", "features.0.num_centroids=8", "features.0.patch_size=3", "features.0.num_patches=400",
          "features.0.mirror=false", "features.0.iterations=3"]


# -- cv workers use the parent's bytes ------------------------------------------------------


def _cv(tmp_path, tiny, *extra, prefix=()):
    env = clean_env(MLCV_DATA_DIR=tmp_path / "data")
    args = ["cv", "--model", "softmax", "--folds", "2", "--grid", "model.reg=0.0001,0.01", *sets(*tiny), *sets(*KMEANS),
            *sets("train.epochs=5", "data.num_val=0", f"output.dir={tmp_path / 'runs'}"), "--json", *extra]
    proc = subprocess.run([*prefix, *MLCV, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _folds(result):
    return {json.dumps(s["params"], sort_keys=True): s["folds"] for s in result["summary"]}


def _damage_features(data_dir):
    """Shuffle the rows of the cached feature matrix: still a valid .npy, no longer its checksum."""
    (path,) = (data_dir / "features").glob("*.npy")
    X = np.load(path, mmap_mode="r+")
    X[:] = X[np.random.default_rng(0).permutation(len(X))]
    X.flush()
    del X
    return path


@pytest.mark.parametrize("executor", [["--jobs", "2"], ["--jobs", "2", "--dask-scheduler", "local"]])
def test_cv_workers_never_score_a_damaged_cache_file_their_parent_set_aside(tmp_path, tiny, executor):
    if "--dask-scheduler" in executor:
        pytest.importorskip("dask.distributed")
    prefix = permissions_apply()
    reference = _folds(_cv(tmp_path, tiny))  # serial; writes the features to the cache
    damaged = _damage_features(tmp_path / "data")
    (tmp_path / "data" / "features").chmod(0o555)  # the damaged entry cannot be rewritten
    try:
        result = _cv(tmp_path, tiny, *executor, prefix=prefix)
    finally:
        (tmp_path / "data" / "features").chmod(0o755)
    assert _folds(result) == reference
    events = [e["cache"] for e in result["feature_cache"]]
    assert any(e.startswith("rebuilt") and "checksum" in e for e in events), events
    assert any(e.startswith("failed") for e in events), events
    assert damaged.exists()  # still damaged: only the parent's bytes were used


def test_a_cache_file_changed_after_the_parent_checked_it_is_refused_by_a_worker(tmp_path):
    store = FeatureStore(tmp_path / "features")
    from mlcv_cli.core.features.chain import FeatureChain

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    chain, X = store.fit(FeatureChain([("hog", {"cell_size": 4})]), images)
    again = FeatureStore(tmp_path / "features")
    X = again.transform(chain, images)  # a hit: the memory map of the checked file
    (path,) = (tmp_path / "features").glob("*.npy")
    encoded = EncodedFeatures()
    encoded.add("s", X, path, "fp", verified=again.verified.get(str(path)))
    shipped = pickle.dumps(encoded)
    assert len(shipped) < X.nbytes  # the path travels, not the matrix
    np.testing.assert_array_equal(pickle.loads(shipped).get("s"), X)
    os.utime(path)  # the same bytes, touched: still accepted (their digest holds)
    np.testing.assert_array_equal(pickle.loads(shipped).get("s"), X)
    data = bytearray(path.read_bytes())
    data[-4:] = b"\x7f\x7f\x7f\x7f"
    path.write_bytes(bytes(data))
    with pytest.raises(MlcvError, match="changed after this cross-validation checked them"):
        pickle.loads(shipped).get("s")


def test_features_another_process_wrote_travel_as_the_parents_array(tmp_path):
    store = FeatureStore(tmp_path / "features")
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    encoded = EncodedFeatures()
    encoded.add("s", X, tmp_path / "features" / "x.npy", "fp", verified=None)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(encoded)).get("s"), X)
    assert store.verified == {}


# -- evaluate scores the split the model held out ------------------------------------------


@pytest.fixture
def folder_run(tmp_path, tiny):
    """A kNN run on the tiny folder imported as `t` (90 training images, 20 held out for val)."""
    data = tmp_path / "data"
    path = [s for s in tiny if s.startswith("data.path=")][0].split("=", 1)[1]
    r = mlcv("download", "folder", path, "--name", "t", "--data-dir", data, "--size", "8")
    assert r.exit_code == 0, r.output
    r = mlcv("train", "--model", "knn", *sets("data.dataset=folder", "data.path=t", "data.image_size=8", f"data.dir={data}",
                                               "data.num_val=20", f"output.dir={tmp_path / 'runs'}"))
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs").iterdir()
    return run, data, path


def _evaluate(run, *args):
    r = mlcv("evaluate", run, "--json", *args)
    return r, (json.loads(r.stdout) if r.exit_code == 0 else None)


def test_evaluate_refuses_a_val_split_that_holds_training_images(folder_run):
    run, _, _ = folder_run
    r, _ = _evaluate(run, "--split", "val", "--set", "data.num_val=60")
    assert r.exit_code == 1
    error_line(r.stderr, "data.num_val=60", "held out at training (20 images)", "used for training", "--accept-changes")
    r, doc = _evaluate(run, "--split", "val", "--set", "data.num_val=60", "--accept-changes")
    assert r.exit_code == 0 and "used for training" in doc["warning"]


def test_evaluate_names_a_smaller_honest_split_for_what_it_is(folder_run):
    run, _, _ = folder_run
    r, doc = _evaluate(run, "--split", "val", "--set", "data.num_val=10")
    assert r.exit_code == 0, r.output
    assert doc["n"] == 10 and "none of its images were trained on" in doc["note"]
    r, doc = _evaluate(run, "--split", "val")
    assert r.exit_code == 0 and doc["n"] == 20 and "note" not in doc


def test_evaluate_refuses_a_train_split_with_images_not_trained_on(folder_run):
    run, _, _ = folder_run
    r, _ = _evaluate(run, "--split", "train", "--set", "data.num_val=5")
    assert r.exit_code == 1
    error_line(r.stderr, "was trained on", "were not trained on")


@pytest.mark.parametrize("with_data_dir", [True, False])
def test_evaluate_after_the_dataset_was_imported_again_is_refused_with_or_without_data_dir(folder_run, tmp_path, with_data_dir):
    run, data, path = folder_run
    smaller = tmp_path / "smaller"
    shutil.copytree(path, smaller)
    for image in sorted((smaller / "train" / "a").iterdir())[:7]:
        image.unlink()
    r = mlcv("download", "folder", smaller, "--name", "t", "--data-dir", data, "--size", "8")
    assert r.exit_code == 0, r.output
    args = ["--split", "val", *(["--data-dir", data] if with_data_dir else [])]
    r, _ = _evaluate(run, *args)
    assert r.exit_code == 1
    error_line(r.stderr, "not the data this model was trained on")
    r, doc = _evaluate(run, *args, "--accept-changes")
    assert r.exit_code == 0 and "changed since training" in doc["warning"]


def test_evaluate_of_a_run_from_before_split_records_still_works(folder_run):
    run, _, _ = folder_run
    r, before = _evaluate(run, "--split", "val")
    meta = json.loads((run / "meta.json").read_text())
    del meta["inputs"]["splits"]
    (run / "meta.json").write_text(json.dumps(meta))
    r, doc = _evaluate(run, "--split", "val")
    assert r.exit_code == 0 and doc["accuracy"] == before["accuracy"]
    r, _ = _evaluate(run, "--split", "val", "--set", "data.num_val=60")
    assert r.exit_code == 1  # the split as trained is rebuilt from the saved config, so the check still holds
    del meta["inputs"]
    (run / "meta.json").write_text(json.dumps(meta))
    r, doc = _evaluate(run, "--split", "val")
    assert r.exit_code == 0 and doc["accuracy"] == before["accuracy"]
    assert "recorded no fingerprint" in doc["note"]


def test_evaluate_refuses_a_split_recorded_differently_at_training(folder_run):
    run, _, _ = folder_run
    meta = json.loads((run / "meta.json").read_text())
    meta["inputs"]["splits"]["val"]["sha256"] = "0" * 64
    (run / "meta.json").write_text(json.dumps(meta))
    r, _ = _evaluate(run, "--split", "val")
    assert r.exit_code == 1
    error_line(r.stderr, "not the ones it recorded at training")


# -- a cv in which every point diverged has no best setting --------------------------------


def test_a_cv_whose_every_point_diverged_names_no_best_setting(in_tmp, tiny):
    r = mlcv("cv", "--model", "softmax", "--folds", "2", "--grid", "train.lr=1e30,1e31", *sets(*tiny), "--set", "data.num_val=0")
    assert r.exit_code == 1
    error_line(r.stderr, "diverged for every grid point", "no best.yaml")
    (run,) = (in_tmp / "runs").iterdir()
    assert not (run / "best.yaml").exists() and not (run / "cv_summary.json").exists()
    assert (run / "cv_results.csv").exists()
    assert json.loads((run / "meta.json").read_text())["status"] == "failed"
    listed = mlcv("runs", in_tmp / "runs", "--json")
    (row,) = json.loads(listed.stdout)["runs"]
    assert row["status"] == "failed" and row["val"] is None


def test_a_point_that_diverged_in_a_fold_is_never_ranked_above_one_that_did_not():
    points = [{"train.lr": 1.0}, {"train.lr": 0.01}]
    rows = [{"point": 0, "fold": 0, "accuracy": 0.9, "time_s": 0.1, "note": ""},
            {"point": 0, "fold": 1, "accuracy": 0.0, "time_s": 0.1, "note": "diverged: loss inf"},
            {"point": 1, "fold": 0, "accuracy": 0.3, "time_s": 0.1, "note": ""},
            {"point": 1, "fold": 1, "accuracy": 0.3, "time_s": 0.1, "note": ""}]
    summary = summarise(points, rows)
    assert [s["point"] for s in summary] == [1, 0] and summary[1]["diverged"] == 1


# -- a dataset cache is checked for what its readers need ----------------------------------


def _imported(tmp_path, tiny):
    data = tmp_path / "data"
    path = [s for s in tiny if s.startswith("data.path=")][0].split("=", 1)[1]
    assert mlcv("download", "folder", path, "--name", "t", "--data-dir", data, "--size", "8").exit_code == 0
    return data / "folders" / "t"


def _rewrite_consistently(cache, key, array):
    """Replace one cached array and make the manifest agree with it (shape, dtype, size, checksum)."""
    import hashlib

    manifest = json.loads((cache / "manifest.json").read_text())
    info = manifest["arrays"][key]
    path = cache / info["file"]
    np.save(path, array, allow_pickle=False)
    info.update(shape=list(array.shape), dtype=str(array.dtype), bytes=path.stat().st_size,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (cache / "manifest.json").write_text(json.dumps(manifest))


CONSISTENT_DAMAGE = {
    "labels-short": ("train_y", lambda a: a[:-10], "labels"),
    "float-labels": ("train_y", lambda a: a.astype(np.float64), "float64"),
    "float64-images": ("train_x", lambda a: a.astype(np.float64), "float64"),
    "int8-viewed-images": ("train_x", lambda a: a.view(np.int8), "int8"),
    "two-dim-labels": ("train_y", lambda a: a.reshape(-1, 1), "labels"),
    "four-channel-images": ("train_x", lambda a: np.concatenate([a, a[..., :1]], axis=3), "shape"),
    "test-images-of-another-size": ("test_x", lambda a: np.zeros((len(a), 4, 4, 3), np.uint8), "test images"),
    "negative-labels": ("train_y", lambda a: a - 1, "outside"),
}


@pytest.mark.parametrize("case", sorted(CONSISTENT_DAMAGE))
def test_cached_arrays_whose_manifest_was_made_consistent_are_refused(tmp_path, tiny, case):
    cache = _imported(tmp_path, tiny)
    key, change, fragment = CONSISTENT_DAMAGE[case]
    manifest = json.loads((cache / "manifest.json").read_text())
    _rewrite_consistently(cache, key, change(np.load(cache / manifest["arrays"][key]["file"])))
    proc = subprocess.run([*MLCV, "train", "--model", "knn", "--set", "data.dataset=folder", "--set", "data.path=t",
                           "--set", "data.image_size=8", "--set", f"data.dir={tmp_path / 'data'}",
                           "--set", f"output.dir={tmp_path / 'runs'}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    error_line(proc.stderr, fragment, "import it again")
    assert not (tmp_path / "runs").exists()


def test_a_zero_filled_cache_file_is_called_damaged_not_pickled(tmp_path, tiny):
    cache = _imported(tmp_path, tiny)
    (path,) = cache.glob("train_x-*.npy")
    path.write_bytes(b"\0" * path.stat().st_size)
    proc = subprocess.run([*MLCV, "train", "--model", "knn", "--set", "data.dataset=folder", "--set", "data.path=t",
                           "--set", "data.image_size=8", "--set", f"data.dir={tmp_path / 'data'}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    line = error_line(proc.stderr, "not a .npy array file", "import it again")
    assert "pickle" not in line
