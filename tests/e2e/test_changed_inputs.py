"""Inputs that change under a run: a re-imported dataset, an edited config.yaml or cv_plan.json."""

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from mlcv_cli import config
from mlcv_cli.workflow.train import train
from mlcv_cli.cli.app import cli
from mlcv_cli.errors import TrainingInterrupted

SIDE = 8


def mlcv(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv")


def assert_refused(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def make_folder(root, seed, n_train=14):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", 4)):
        for c, name in enumerate(("a", "b", "c")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 200, (SIDE, SIDE, 3), dtype=np.uint8)
                pixels[..., c] += 50
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An imported dataset "pets" and a second folder to re-import it from."""
    monkeypatch.delenv("MLCV_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    monkeypatch.setenv("MLCV_DATA_DIR", str(data))
    one, two = make_folder(tmp_path / "one", 1), make_folder(tmp_path / "two", 2)
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    return tmp_path, one, two


def _cfg(tmp_path, model="softmax", **extra):
    values = {"data.dataset": "folder", "data.path": "pets", "data.image_size": SIDE, "data.num_val": 6,
              "output.dir": str(tmp_path / "runs"), "train.batch_size": 8, "train.epochs": 6, "train.checkpoint_every": 1, **extra}
    return config.replace(config.resolve(model_type=model), values)


class _InterruptAfter:
    """A progress factory that sends this process SIGINT after ``n`` steps: training stops with a checkpoint."""

    def __init__(self, n):
        self.n = n

    def __call__(self, total, desc):
        return self

    def update(self, n=1, **postfix):
        self.n -= n
        if n and self.n == 0:
            os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        pass


def interrupted_run(tmp_path):
    with pytest.raises(TrainingInterrupted):
        train(_cfg(tmp_path), progress=_InterruptAfter(3))
    [run] = (tmp_path / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    return run


def _status(run):
    return json.loads((run / "meta.json").read_text())["status"]


def test_train_resume_refuses_a_reimported_dataset_until_asked(env):
    tmp_path, one, two = env
    run = interrupted_run(tmp_path)
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    before = (run / "checkpoint.npz").read_bytes()
    assert_refused(mlcv("train", "--resume", run), "pets data is not the data the run started with", "--accept-changes")
    assert _status(run) == "interrupted" and (run / "checkpoint.npz").read_bytes() == before  # still resumable
    # Importing the same images again is no change at all.
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    result = mlcv("train", "--resume", run, "--json")
    assert result.exit_code == 0, result.output
    assert _status(run) == "done"


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
    assert _status(run) == "interrupted"


def test_train_resume_of_an_invalid_config_edit_is_a_one_line_error(env):
    tmp_path, _, _ = env
    run = interrupted_run(tmp_path)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["train"]["lr"] = "fast"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    result = mlcv("train", "--resume", run)
    assert result.exit_code == 2 and "config.yaml" in result.stderr and "Traceback" not in result.output
    assert _status(run) == "interrupted"


def _cv_run(tmp_path):
    args = ["cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3", "--set", "data.dataset=folder",
            "--set", "data.path=pets", "--set", f"data.image_size={SIDE}", "--set", "data.num_val=0",
            "--set", f"output.dir={tmp_path / 'runs'}", "--json"]
    result = mlcv(*args)
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    # As if it had been killed after its first job.
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
    assert _status(run) == "interrupted" and (run / "jobs.jsonl").read_bytes() == journal
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
    assert _status(run) == "interrupted"


def test_evaluate_refuses_a_model_whose_data_was_reimported(env):
    tmp_path, _, two = env
    result = mlcv("train", "--model", "knn", "--set", "data.dataset=folder", "--set", "data.path=pets",
                  "--set", f"data.image_size={SIDE}", "--set", "data.num_val=6", "--set", f"output.dir={tmp_path / 'runs'}", "--json")
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
    assert _status(run) == "interrupted"



def _kmeans_cfg(tmp_path):
    return config.replace(_cfg(tmp_path), {"features.0.type": "kmeans", "features.0.num_centroids": 5, "features.0.patch_size": 2})


def test_train_resume_refuses_a_replaced_fitted_extractor(env, monkeypatch):
    import features_standin

    features_standin.install(monkeypatch)
    tmp_path, _, _ = env
    with pytest.raises(TrainingInterrupted):
        train(_kmeans_cfg(tmp_path), progress=_InterruptAfter(3))
    [run] = (tmp_path / "runs").iterdir()
    # Another fit put in the cache under the same name: same images and parameters recorded, other centroids.
    [entry] = (tmp_path / "data" / "features").glob("chain-*.npz")
    with np.load(entry, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state.0.centroids"] = arrays["state.0.centroids"] + 1
    np.savez(entry, **arrays)
    assert_refused(mlcv("train", "--resume", run), "fitted feature extractor", "--accept-changes")
    assert _status(run) == "interrupted"
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
    args = ["cv", "--model", "softmax", "--folds", "2", "--grid", "model.reg=0.001,0.01", "--set", "data.dataset=folder",
            "--set", "data.path=pets", "--set", f"data.image_size={SIDE}", "--set", "data.num_val=0", "--set", "train.epochs=2",
            "--set", "features.0.type=kmeans", "--set", "features.0.num_centroids=5", "--set", "features.0.patch_size=2",
            "--set", f"output.dir={tmp_path / 'runs'}", "--json"]
    result = mlcv(*args)
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    lines = (run / "jobs.jsonl").read_text().splitlines()
    (run / "jobs.jsonl").write_text(lines[0] + "\n")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    _doctor_chain(tmp_path)
    assert_refused(mlcv("cv", "--resume", run), "fitted feature extractor", "--accept-changes")
    assert _status(run) == "interrupted" and len((run / "jobs.jsonl").read_text().splitlines()) == 1
    assert mlcv("cv", "--resume", run, "--accept-changes", "--json").exit_code == 0


def test_refit_of_a_finished_cv_refuses_a_reimported_dataset(env):
    tmp_path, one, two = env
    run = _cv_run(tmp_path)
    assert mlcv("cv", "--resume", run, "--json").exit_code == 0  # finished now
    assert mlcv("download", "folder", two, "--name", "pets", "--size", SIDE).exit_code == 0
    assert_refused(mlcv("cv", "--resume", run, "--refit"), "pets data is not the data", "--accept-changes")
    assert not (run / "refit").exists() and _status(run) == "done"
    assert mlcv("download", "folder", one, "--name", "pets", "--size", SIDE).exit_code == 0
    result = mlcv("cv", "--resume", run, "--refit", "--json")
    assert result.exit_code == 0, result.output
    assert (run / "refit" / "model.npz").exists()


def _as_before_mirror(config_dict):
    """A resolved config as a run recorded it before features.N.mirror existed."""
    old = json.loads(json.dumps(config_dict))
    for step in old["features"]:
        step.pop("mirror", None)
    return old


def test_a_parameter_added_later_at_its_default_is_not_an_edit():
    from mlcv_cli.runs import fingerprints

    cfg = config.resolve("configs/kmeans-svm.yaml")  # a cv grid with dotted keys, a kmeans step
    new = cfg.to_dict()
    assert new["features"][0]["mirror"] is True and new["cv"]["grid"]
    new["features"][0]["mirror"] = False
    old = _as_before_mirror(new)
    record = lambda d: {"data": "same", "dataset": "d", "config": fingerprints._sha(fingerprints._canonical(d)),  # noqa: E731
                        "config_values": fingerprints._flat(d)}
    assert record(old)["config"] != record(new)["config"]
    assert fingerprints.changes(record(old), record(new)) == []
    # The same parameter set to a value the old run could not have had is an edit, and so is any other.
    new["features"][0]["mirror"] = True
    assert "features" in fingerprints.changes(record(old), record(new))[0]
    new["features"][0]["mirror"] = False
    new["features"][0]["num_centroids"] = 7
    assert "features" in fingerprints.changes(record(old), record(new))[0]


def test_a_kmeans_run_from_before_mirror_resumes_from_its_cached_features(env):
    tmp_path, _, _ = env
    cfg = config.replace(_kmeans_cfg(tmp_path), {"features.0.num_patches": 200})

    class TrainingSteps(_InterruptAfter):  # the real extractor reports progress too: count training only
        def __call__(self, total, desc):
            return self if desc.startswith("train") else _InterruptAfter(-1)

    with pytest.raises(TrainingInterrupted):
        train(cfg, progress=TrainingSteps(3))
    [run] = (tmp_path / "runs").iterdir()
    # Rewrite what the run recorded as an mlcv without the mirror parameter would have.
    from mlcv_cli.runs import fingerprints

    old = _as_before_mirror(yaml.safe_load((run / "config.yaml").read_text()))
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
