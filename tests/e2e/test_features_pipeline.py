"""The features section end to end: config checks, model files, the feature cache, cv.

A stand-in "kmeans" extractor (tests/features_standin.py) keeps this fast; the real
extractors have their own tests against loop references.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import features_standin
from helpers import SIDE, folder_args, make_folder, mlcv, sets
from mlcv_cli.models import modelfile

KMEANS = sets("features.0.type=kmeans", "features.0.num_centroids=5", "features.0.patch_size=2")


def make_tinted_folder(root, seed=0):
    return make_folder(root, n_train=12, seed=seed, noise=80, tint=170)


def data_args(folder, runs):
    return [*folder_args(folder, runs), *sets("train.epochs=3", "train.batch_size=10")]


@pytest.fixture
def standin(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    return features_standin.install(monkeypatch)


@pytest.fixture
def folder(tmp_path):
    return make_tinted_folder(tmp_path / "imgs")


def train(*args):
    result = mlcv("train", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cache_outcomes(summary):
    return {e["what"]: e["cache"] for e in summary["features"]["cache"]}


# -- model files ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["softmax", "svm", "knn"])
def test_features_model_round_trips_and_evaluates_identically(standin, folder, tmp_path, model):
    k = ["--set", "model.k=3"] if model == "knn" else []  # model.k is refused for a linear model
    summary = train("--model", model, *data_args(folder, tmp_path / "runs"), *KMEANS, *k)
    assert summary["features"]["steps"] == ["kmeans"] and summary["features"]["standardized"]
    run = Path(summary["run_dir"])
    mf = modelfile.load(run / "model.npz")
    assert mf.chain.output_dim((SIDE, SIDE, 3)) == 20 and "features.0.centroids" in np.load(run / "model.npz").files
    again = modelfile.load(run / "model.npz")
    assert again.chain.fingerprint() == mf.chain.fingerprint()
    ev = json.loads(mlcv("evaluate", run, "--json").stdout)
    assert ev["accuracy"] == summary["test_accuracy"]
    pred = mlcv("predict", run, folder / "test" / "a" / "0.png", folder / "test" / "b", "--json")
    assert pred.exit_code == 0, pred.output
    rows = json.loads(pred.stdout)["predictions"]
    assert len(rows) == 5 and rows[0]["top"][0]["class"] in ("a", "b", "c")


def test_damaged_feature_array_in_model_file_is_named(standin, folder, tmp_path):
    run = Path(train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)["run_dir"])
    with np.load(run / "model.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    data["features.0.centroids"] = data["features.0.centroids"][:, :2]
    np.savez(tmp_path / "bad.npz", **data)
    result = mlcv("predict", tmp_path / "bad.npz", folder / "test" / "a" / "0.png")
    assert result.exit_code == 1 and "features.0.centroids" in result.output and "Traceback" not in result.output


def test_test_images_never_influence_the_fitted_extractor(standin, tmp_path):
    arrays = []
    for seed in (0, 1):
        root = tmp_path / f"imgs{seed}"
        make_tinted_folder(root)
        for img in (root / "test").rglob("*.png"):  # other test images, same training images
            Image.fromarray(np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(img)
        run = Path(train("--model", "softmax", *data_args(root, tmp_path / f"runs{seed}"), *KMEANS)["run_dir"])
        with np.load(run / "model.npz") as npz:
            arrays.append({k: npz[k] for k in npz.files if k.startswith("features.")})
    assert arrays[0].keys() == arrays[1].keys() and "features.mean" in arrays[0]
    for k in arrays[0]:
        np.testing.assert_array_equal(arrays[0][k], arrays[1][k])


# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, fragment", [
    (["features.0.patch_size=9"], "features.0.patch_size: expected at most 8"),
    (["features.0.num_centroids=0"], "features.0.num_centroids: expected a value >= 1, found 0"),
    (["features.0.stride=0"], "features.0.stride: expected a value >= 1, found 0"),
    (["features.0.encoder=relu"], "features.0.encoder: expected one of triangle, soft_threshold"),
    (["features.0.num_centroid=4"], "did you mean 'num_centroids'"),
    (["features.1.bins=4"], "features.1.bins: the config has 1 extractor"),
])
def test_bad_feature_parameters_exit_2_naming_the_key_before_any_work(standin, folder, tmp_path, overrides, fragment):
    args = [x for o in overrides for x in ("--set", o)]
    result = mlcv("train", "--model", "svm", *data_args(folder, tmp_path / "runs"), "--set", "features.0.type=kmeans", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data" / "features").exists()


# -- the feature cache ----------------------------------------------------------------------------


def test_second_train_reads_fitted_chain_and_features_from_the_cache(standin, folder, tmp_path):
    first = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)
    assert cache_outcomes(first)["fit"] == "miss"
    fits, transforms = standin.fits, standin.transforms
    second = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS, "--set", "train.lr=0.05")
    assert cache_outcomes(second) == {"fit": "hit", "train": "hit", "val": "hit", "test": "hit"}
    assert (standin.fits, standin.transforms) == (fits, transforms)  # nothing was encoded again
    mlcv("evaluate", second["run_dir"])
    assert standin.transforms == transforms
    other = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS, "--set", "features.0.seed=5")
    assert cache_outcomes(other)["fit"] == "miss"


def _feature_files(tmp_path):
    return sorted((tmp_path / "data" / "features").glob("*.npy"))


def test_damaged_cache_is_detected_and_rebuilt(standin, folder, tmp_path):
    first = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)
    for f in _feature_files(tmp_path):
        raw = bytearray(f.read_bytes())
        raw[-5] ^= 0xFF  # one flipped byte in the data
        f.write_bytes(bytes(raw))
    again = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)
    outcomes = cache_outcomes(again)
    assert all(outcomes[s].startswith("rebuilt") and "checksum" in outcomes[s] for s in ("train", "val", "test")), outcomes
    assert again["test_accuracy"] == first["test_accuracy"]
    third = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)
    assert cache_outcomes(third)["test"] == "hit"


def test_cache_from_another_extractor_is_not_used(standin, folder, tmp_path):
    train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS)
    (tmp_path / "data" / "features").rename(tmp_path / "a")
    second = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS, "--set", "features.0.seed=9")
    names_b = {f.name for f in _feature_files(tmp_path)}
    # Put the first extractor's files under the second's names: fingerprints give them away.
    for f in sorted((tmp_path / "a").glob("*.npy")):
        twin = sorted(n for n in names_b if (tmp_path / "data" / "features" / n).stat().st_size == f.stat().st_size)[0]
        names_b.discard(twin)
        (tmp_path / "data" / "features" / twin).write_bytes(f.read_bytes())
        (tmp_path / "data" / "features" / twin).with_suffix(".json").write_bytes(f.with_suffix(".json").read_bytes())
    third = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS, "--set", "features.0.seed=9")
    outcomes = cache_outcomes(third)
    assert outcomes["fit"] == "hit"
    assert all(outcomes[s].startswith("rebuilt") and "another extractor" in outcomes[s] for s in ("train", "val", "test")), outcomes
    assert third["test_accuracy"] == second["test_accuracy"]


# -- cross-validation ---------------------------------------------------------------------------


def test_cv_over_model_reg_encodes_once_and_reuses_the_cache(standin, folder, tmp_path):
    args = ["--model", "softmax", *data_args(folder, tmp_path / "runs"), *KMEANS, "--folds", "3", "--grid", "model.reg=0.001,0.1", "--json"]
    result = mlcv("cv", *args)
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    assert standin.fits == 1 and [e["cache"] for e in first["feature_cache"]] == ["miss", "written"]
    transforms = standin.transforms
    second = json.loads(mlcv("cv", *args).stdout)
    assert [e["cache"] for e in second["feature_cache"]] == ["hit", "hit"] and standin.transforms == transforms
    assert [s["folds"] for s in second["summary"]] == [s["folds"] for s in first["summary"]]


def test_cv_grid_over_a_feature_parameter_refits_per_point(standin, folder, tmp_path):
    result = mlcv("cv", "--model", "knn", *data_args(folder, tmp_path / "runs"), *KMEANS, "--folds", "3",
                  "--grid", "features.0.num_centroids=2,6", "--grid", "model.k=1,3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert standin.fits == 2 and len(summary["summary"]) == 4
    assert {s["params"]["features.0.num_centroids"] for s in summary["summary"]} == {2, 6}
    bad = mlcv("cv", "--model", "knn", *data_args(folder, tmp_path / "runs"), "--grid", "features.0.num_centroids=2,6")
    assert bad.exit_code == 2 and "pixels has no parameter 'num_centroids'" in bad.output


def test_real_extractors_train_evaluate_predict(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    cfg = tmp_path / "real.yaml"
    cfg.write_text(
        "model: {type: softmax}\nfeatures:\n"
        "  - {type: hog, orientations: 6, cell_size: 4, block_size: 1}\n"
        "  - {type: color_hist, bins: 6}\n"
        "  - {type: kmeans, num_centroids: 4, patch_size: 3, num_patches: 200, iterations: 3, seed: 1}\n"
    )
    summary = train("--config", cfg, *data_args(folder, tmp_path / "runs"), "--plot")
    assert summary["features"]["steps"] == ["hog", "color_hist", "kmeans"]
    assert sorted(Path(p).name for p in summary["plots"]) == ["confusion-test.png", "filters.png", "hog.png", "loss.png"]
    assert summary["features"]["dim"] == 4 * 6 + 6 + 4 * 4
    ev = json.loads(mlcv("evaluate", summary["run_dir"], "--json").stdout)
    assert ev["accuracy"] == summary["test_accuracy"]
    pred = mlcv("predict", summary["run_dir"], folder / "test" / "c", "--json")
    assert pred.exit_code == 0 and len(json.loads(pred.stdout)["predictions"]) == 4


def test_grid_pooling_model_file_loads_and_predicts_identically(folder, tmp_path, monkeypatch):
    """pooling: 4x4 end to end: 16 cells x K features, stored in model.npz, and the loaded chain
    encodes the test images again (cache removed) to the same evaluation and predictions."""
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    summary = train("--model", "softmax", *data_args(folder, tmp_path / "runs"), *sets(
        "features.0.type=kmeans", "features.0.num_centroids=4", "features.0.patch_size=3",
        "features.0.num_patches=200", "features.0.iterations=3", "features.0.pooling=4x4"))
    assert summary["features"]["dim"] == 16 * 4
    mf = modelfile.load(Path(summary["run_dir"]) / "model.npz")
    assert mf.chain.steps[0][1]["pooling"] == "4x4" and mf.chain.output_dim((SIDE, SIDE, 3)) == 64
    files = [folder / "test" / "a", folder / "test" / "c" / "1.png"]
    pred = mlcv("predict", summary["run_dir"], *files, "--json")
    assert pred.exit_code == 0, pred.output
    for f in (tmp_path / "data" / "features").iterdir():
        f.unlink()
    ev = json.loads(mlcv("evaluate", summary["run_dir"], "--json").stdout)
    assert ev["accuracy"] == summary["test_accuracy"]
    assert json.loads(mlcv("predict", summary["run_dir"], *files, "--json").stdout) == json.loads(pred.stdout)


def test_color_hist_on_grayscale_images_is_a_config_error(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    result = mlcv("train", "--model", "svm", *data_args(folder, tmp_path / "runs"), "--set", "data.channels=1",
                  "--set", "features.0.type=color_hist")
    assert result.exit_code == 2 and "features.0.image_shape: color_hist expected colour images" in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_cv_refit_reuses_the_fitted_chain_and_the_encoded_features(in_tmp, standin, tmp_path):
    """The refit trains on the images the folds used, in the same order: the chain fitted for the cv
    and the features encoded for it are read from the cache, not made again (issue #20)."""
    root = make_folder(tmp_path / "pets", ("a", "b", "c"), n_train=20, n_test=0, side=SIDE)
    args = ["cv", "--model", "softmax", "--folds", "2", "--grid", "model.reg=0.001,0.01", "--refit", "--json",
            *folder_args(root, tmp_path / "runs", num_val=0), "--set", "data.num_test=6", "--set", f"data.dir={tmp_path / 'data'}",
            *KMEANS]
    result = mlcv(*args)
    assert result.exit_code == 0, result.output
    refit = json.loads(result.stdout)["refit"]["features"]["cache"]
    assert {e["what"]: e["cache"] for e in refit if e["what"] in ("fit", "train")} == {"fit": "hit", "train": "hit"}
