"""Inputs that change under a run: a re-imported dataset, an edited config.yaml or cv_plan.json."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import (SIDE, InterruptAfter, as_recorded_before_mirror, assert_one_line_error, folder_args, make_folder, mlcv, sets,
                     status_of)
from mlcv_cli import config
from mlcv_cli.errors import TrainingInterrupted
from mlcv_cli.workflow.train import train


def assert_refused(result, *fragments):
    assert_one_line_error(result, 1, *fragments)


@pytest.fixture
def env(in_tmp):
    """An imported dataset "pets" and a second folder to re-import it from."""
    one, two = make_folder(in_tmp / "one", seed=1), make_folder(in_tmp / "two", seed=2)
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    return in_tmp, one, two


def _cfg(tmp_path, model="softmax", **extra):
    values = {"data.dataset": "folder", "data.path": "pets", "data.image_size": SIDE, "data.num_val": 6,
              "output.dir": str(tmp_path / "runs"), "train.batch_size": 8, "train.epochs": 6, "train.checkpoint_every": 1, **extra}
    return config.replace(config.resolve(model_type=model), values)


def interrupted_run(tmp_path):
    with pytest.raises(TrainingInterrupted):
        train(_cfg(tmp_path), progress=InterruptAfter(3))
    [run] = (tmp_path / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    return run


def test_train_resume_refuses_a_reimported_dataset_until_asked(env):
    tmp_path, one, two = env
    run = interrupted_run(tmp_path)
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    before = (run / "checkpoint.npz").read_bytes()
    assert_refused(mlcv("train", "--resume", run), "pets data is not the data the run started with", "--accept-changes")
    assert status_of(run) == "interrupted" and (run / "checkpoint.npz").read_bytes() == before  # still resumable
    # Importing the same images again is no change at all.
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    result = mlcv("train", "--resume", run, "--json")
    assert result.exit_code == 0, result.output
    assert status_of(run) == "done"


def test_train_resume_with_accept_changes_goes_on_and_says_so(env):
    tmp_path, one, two = env
    run = interrupted_run(tmp_path)
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    result = mlcv("train", "--resume", run, "--accept-changes", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and "pets data" in meta["inputs_changed"][0]


@pytest.mark.parametrize("key, value, fragment", [
    ("train.lr", 0.5, "train.lr: {old!r} -> 0.5"),
    ("model.reg", 0.25, "model.reg: {old!r} -> 0.25"),
    ("data.num_val", 3, "data.num_val: 6 -> 3"),
])
def test_train_resume_refuses_an_edited_config(env, key, value, fragment):
    tmp_path, _, _ = env
    run = interrupted_run(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    section, name = key.split(".")
    fragment = fragment.format(old=saved[section][name])
    saved[section][name] = value
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert_refused(mlcv("train", "--resume", run), "the saved config was edited", fragment)
    assert status_of(run) == "interrupted"


def test_train_resume_of_an_invalid_config_edit_is_a_one_line_error(env):
    tmp_path, _, _ = env
    run = interrupted_run(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["train"]["lr"] = "fast"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    result = mlcv("train", "--resume", run)
    assert result.exit_code == 2 and "config.yaml" in result.stderr and "Traceback" not in result.output
    assert status_of(run) == "interrupted"


def _cv_run(tmp_path):
    result = mlcv("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3", *folder_args("pets", tmp_path / "runs", num_val=0),
                  "--json")
    assert result.exit_code == 0, result.output
    return as_killed_after_its_first_job(Path(json.loads(result.stdout)["run_dir"]))


def as_killed_after_its_first_job(run):
    """A finished cv run made to look as if it had been killed after its first job."""
    lines = (run / "jobs.jsonl").read_text().splitlines()
    (run / "jobs.jsonl").write_text(lines[0] + "\n")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    return run


def test_cv_resume_refuses_a_reimported_dataset(env):
    tmp_path, _, two = env
    run = _cv_run(tmp_path)
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    journal = (run / "jobs.jsonl").read_bytes()
    assert_refused(mlcv("cv", "--resume", run), "pets data is not the data", "--accept-changes")
    assert status_of(run) == "interrupted" and (run / "jobs.jsonl").read_bytes() == journal
    result = mlcv("cv", "--resume", run, "--accept-changes", "--json")
    assert result.exit_code == 0, result.output


def test_cv_resume_refuses_an_edited_plan(env):
    tmp_path, _, _ = env
    run = _cv_run(tmp_path)
    plan = json.loads((run / "cv_plan.json").read_text())
    # A consistent edit: the grid and its points changed together.
    plan["config"]["cv"]["grid"] = {"model.k": [1, 5]}
    plan["points"] = [{"model.k": 1}, {"model.k": 5}]
    (run / "cv_plan.json").write_text(json.dumps(plan))
    assert_refused(mlcv("cv", "--resume", run), "cv_plan.json was edited", "cv.grid")
    assert status_of(run) == "interrupted"


def test_evaluate_refuses_a_model_whose_data_was_reimported(env):
    tmp_path, _, two = env
    result = mlcv("train", "--model", "knn", *folder_args("pets", tmp_path / "runs"), "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["run_dir"]
    assert mlcv("evaluate", run).exit_code == 0
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    assert_refused(mlcv("evaluate", run), "not the data this model was trained on", "--accept-changes")
    forced = mlcv("evaluate", run, "--accept-changes")
    assert forced.exit_code == 0 and "changed since training" in forced.stderr
    assert mlcv("evaluate", run, "--data", "pets").exit_code == 0  # explicitly other data: scored as asked


def test_resume_with_more_epochs_is_asked_for_not_an_edit(env):
    tmp_path, _, _ = env
    run = interrupted_run(tmp_path)
    result = mlcv("train", "--resume", run, "--set", "train.epochs=8", "--json")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 8
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and "inputs_changed" not in meta
    assert meta["inputs"]["config_values"]["train.epochs"] == 8
    # The recorded config follows, so a later continuation compares with 8, not 6.
    result = mlcv("train", "--resume", run, "--set", "train.epochs=9", "--json")
    assert result.exit_code == 0, result.output


def test_resume_with_more_epochs_still_refuses_other_edits_and_new_data(env):
    tmp_path, _, two = env
    run = interrupted_run(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    lr = saved["train"]["lr"]
    saved["train"]["lr"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert_refused(mlcv("train", "--resume", run, "--set", "train.epochs=8"), f"train.lr: {lr!r} -> 0.5")
    assert "train.epochs" not in [line for line in mlcv("train", "--resume", run).stderr.splitlines() if "Error" in line][0]
    saved["train"]["lr"] = lr
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    assert_refused(mlcv("train", "--resume", run, "--set", "train.epochs=8"), "pets data is not the data")
    # Refused before anything was written: the saved config still says 6 epochs.
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 6
    assert status_of(run) == "interrupted"



def _kmeans_cfg(tmp_path):
    return config.replace(_cfg(tmp_path), {"features.0.type": "kmeans", "features.0.num_centroids": 5, "features.0.patch_size": 2})


def test_train_resume_refuses_a_replaced_fitted_extractor(env, monkeypatch):
    import features_standin

    features_standin.install(monkeypatch)
    tmp_path, _, _ = env
    with pytest.raises(TrainingInterrupted):
        train(_kmeans_cfg(tmp_path), progress=InterruptAfter(3))
    [run] = (tmp_path / "runs").iterdir()
    # Another fit put in the cache under the same name: same images and parameters recorded, other centroids.
    [entry] = (tmp_path / "data" / "features").glob("chain-*.npz")
    with np.load(entry, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state.0.centroids"] = arrays["state.0.centroids"] + 1
    np.savez(entry, **arrays)
    assert_refused(mlcv("train", "--resume", run), "fitted feature extractor", "--accept-changes")
    assert status_of(run) == "interrupted"
    result = mlcv("train", "--resume", run, "--accept-changes", "--json")
    assert result.exit_code == 0, result.output
    assert "feature extractor" in json.loads((run / "meta.json").read_text())["inputs_changed"][0]


def test_evaluate_and_predict_ignore_a_feature_cache_from_elsewhere(env, monkeypatch):
    import features_standin

    features_standin.install(monkeypatch)
    tmp_path, _, _ = env
    result = train(_kmeans_cfg(tmp_path))
    image = next((tmp_path / "one" / "test" / "a").iterdir())
    before = (mlcv("evaluate", result["run_dir"], "--json"), mlcv("predict", result["run_dir"], image, "--json"))
    # The whole cache replaced by one made with another extractor, its files renamed onto this one's.
    features = tmp_path / "data" / "features"
    mine = sorted(p.name for p in features.glob("*.npy"))
    shutil.rmtree(features)
    train(config.replace(_kmeans_cfg(tmp_path), {"features.0.seed": 9}))
    theirs = sorted(features.glob("*.npy"))
    for new_name, old in zip(mine, theirs):
        old.rename(features / new_name)
        old.with_suffix(".json").rename((features / new_name).with_suffix(".json"))
    after = (mlcv("evaluate", result["run_dir"], "--json"), mlcv("predict", result["run_dir"], image, "--json"))
    for b, a in zip(before, after):
        assert b.exit_code == a.exit_code == 0, (b.output, a.output)
    assert json.loads(before[0].stdout)["accuracy"] == json.loads(after[0].stdout)["accuracy"]
    assert json.loads(before[1].stdout)["predictions"] == json.loads(after[1].stdout)["predictions"]


def _doctor_chain(tmp_path):
    [entry] = (tmp_path / "data" / "features").glob("chain-*.npz")
    with np.load(entry, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state.0.centroids"] = arrays["state.0.centroids"] + 1
    np.savez(entry, **arrays)


def test_cv_resume_refuses_a_replaced_fitted_extractor(env, monkeypatch):
    import features_standin

    features_standin.install(monkeypatch)
    tmp_path, _, _ = env
    result = mlcv("cv", "--model", "softmax", "--folds", "2", "--grid", "model.reg=0.001,0.01", *folder_args("pets", tmp_path / "runs", num_val=0),
                  *sets("train.epochs=2", "features.0.type=kmeans", "features.0.num_centroids=5", "features.0.patch_size=2"), "--json")
    assert result.exit_code == 0, result.output
    run = as_killed_after_its_first_job(Path(json.loads(result.stdout)["run_dir"]))
    _doctor_chain(tmp_path)
    assert_refused(mlcv("cv", "--resume", run), "fitted feature extractor", "--accept-changes")
    assert status_of(run) == "interrupted" and len((run / "jobs.jsonl").read_text().splitlines()) == 1
    assert mlcv("cv", "--resume", run, "--accept-changes", "--json").exit_code == 0


def test_refit_of_a_finished_cv_refuses_a_reimported_dataset(env):
    tmp_path, one, two = env
    run = _cv_run(tmp_path)
    assert mlcv("cv", "--resume", run, "--json").exit_code == 0  # finished now
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    assert_refused(mlcv("cv", "--resume", run, "--refit"), "pets data is not the data", "--accept-changes")
    assert not (run / "refit").exists() and status_of(run) == "done"
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    result = mlcv("cv", "--resume", run, "--refit", "--json")
    assert result.exit_code == 0, result.output
    assert (run / "refit" / "model.npz").exists()


def test_a_kmeans_run_from_before_mirror_resumes_from_its_cached_features(env):
    tmp_path, _, _ = env
    cfg = config.replace(_kmeans_cfg(tmp_path), {"features.0.num_patches": 200})

    class TrainingSteps(InterruptAfter):  # the real extractor reports progress too: count training only
        def __call__(self, total, desc):
            return self if desc.startswith("train") else InterruptAfter(-1)

    with pytest.raises(TrainingInterrupted):
        train(cfg, progress=TrainingSteps(3))
    [run] = (tmp_path / "runs").iterdir()
    # Rewrite what the run recorded as an mlcv without the mirror parameter would have.
    from mlcv_cli.runs import fingerprints

    old = as_recorded_before_mirror(yaml.safe_load((run / "config.yaml").read_text()))
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    meta = json.loads((run / "meta.json").read_text())
    meta["inputs"].update(config=fingerprints._sha(fingerprints._canonical(old)), config_values=fingerprints._flat(old))
    (run / "meta.json").write_text(json.dumps(meta))
    [entry] = (tmp_path / "data" / "features").glob("chain-*.npz")
    result = mlcv("train", "--resume", run, "--json")
    assert result.exit_code == 0, result.output
    # The cache keys did not move: the fitted chain and the features were read back, nothing refitted.
    assert list((tmp_path / "data" / "features").glob("chain-*.npz")) == [entry]
    events = {e["what"]: e["cache"] for e in json.loads(result.stdout)["features"]["cache"]}
    assert events["fit"] == events["train"] == "hit", events
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and "inputs_changed" not in meta
