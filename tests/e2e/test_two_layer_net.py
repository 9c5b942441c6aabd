"""The two-layer network wherever a model goes: train, evaluate, predict, cv, resume, runs, model
files, memory estimates, plots, gradcheck and the scikit-learn adapter (issue #19)."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, InterruptAfter, sets
from helpers import mlcv as run
from mlcv_cli import config
from mlcv_cli.errors import ConfigError, ModelFileError, TrainingInterrupted
from mlcv_cli.models import modelfile
from mlcv_cli.workflow.resume import resume
from mlcv_cli.workflow.train import train

FAST = ("model.hidden_size=16", "train.batch_size=20", "train.epochs=4", "data.num_val=15")


def _cfg(tiny, tmp_path, *extra):
    return config.resolve(None, [*tiny, *FAST, f"output.dir={tmp_path / 'runs'}", *extra], model_type="mlp")


def _train_json(*args):
    result = run("train", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_evaluate_predict_and_history(in_tmp, tiny, image_files):
    out = _train_json("--config", ROOT / "configs/mlp.yaml", *sets(*tiny, *FAST))
    rd = Path(out["run_dir"])
    assert out["model"] == "mlp" and out["status"] == "done" and 0 <= out["test_accuracy"] <= 1
    assert out["best_epoch"] in range(1, 5) and out["epochs"] == 4  # configs/mlp.yaml keeps the best epoch
    history = (rd / "history.csv").read_text().splitlines()
    assert history[0] == "iteration,epoch,loss,lr,train_acc,val_acc,epoch_loss,train_val_gap,best_epoch"
    ends = [line.split(",") for line in history[1:] if line.split(",")[4]]
    assert len(ends) == 4 and all(abs(float(e[7]) - (float(e[4]) - float(e[5]))) < 1e-12 for e in ends)
    assert int(ends[-1][8]) == out["best_epoch"]
    ev = json.loads(run("evaluate", rd, "--json").stdout)
    assert ev["accuracy"] == out["test_accuracy"] and ev["status"] == "done"
    printed = run("predict", rd, image_files, "--json", "--top", "3")
    assert printed.exit_code == 1  # one of the files is corrupt: reported, the others predicted
    pred = json.loads(printed.stdout)
    assert pred["value"] == "probability" and pred["status"] == "partial" and len(pred["predictions"]) == 3
    for p in pred["predictions"]:
        probs = [t["probability"] for t in p["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    table = run("train", "--config", ROOT / "configs/mlp.yaml", *sets(*tiny, *FAST))
    assert "kept the weights of epoch" in table.stdout


def test_interrupted_run_resumes_bit_exactly_and_trains_on_to_more_epochs(in_tmp, tiny, tmp_path):
    cfg = _cfg(tiny, tmp_path, "train.keep_best=true", "model.dropout=0.2")
    reference = train(cfg)
    with pytest.raises(TrainingInterrupted) as err:
        train(cfg, progress=InterruptAfter(7))  # mid-epoch: 5 steps per epoch
    resumed = resume(err.value.run_dir)
    with np.load(Path(reference["run_dir"]) / "model.npz") as a, np.load(Path(resumed["run_dir"]) / "model.npz") as b:
        for name in ("W1", "b1", "W2", "b2"):
            assert np.array_equal(a[name], b[name]), name
    assert (Path(reference["run_dir"]) / "history.csv").read_text() == (Path(resumed["run_dir"]) / "history.csv").read_text()
    assert resumed["test_accuracy"] == reference["test_accuracy"] and resumed["best_epoch"] == reference["best_epoch"]
    longer = resume(reference["run_dir"], epochs=6)
    direct = train(config.replace(cfg, {"train.epochs": 6}))
    with np.load(Path(longer["run_dir"]) / "model.npz") as a, np.load(Path(direct["run_dir"]) / "model.npz") as b:
        assert all(np.array_equal(a[n], b[n]) for n in ("W1", "b1", "W2", "b2"))


def test_cv_runs_and_diff(in_tmp, tiny):
    result = run("cv", "--model", "mlp", "--folds", "2", "--grid", "model.hidden_size=8,16", *sets(*tiny, *FAST[1:3]), "--json")
    assert result.exit_code == 0, result.output
    cv = json.loads(result.stdout)
    assert cv["status"] == "done" and len(cv["summary"]) == 2 and cv["best_params"]["model.hidden_size"] in (8, 16)
    a = _train_json("--model", "mlp", *sets(*tiny, *FAST))["run_dir"]
    b = _train_json("--model", "mlp", *sets(*tiny, *FAST, "model.hidden_size=24"))["run_dir"]
    listing = run("runs", "runs")
    assert listing.exit_code == 0 and "hidden_size" in listing.stdout
    diff = json.loads(run("runs", "diff", a, b, "--json").stdout)
    assert {d["key"] for d in diff["config"]} == {"model.hidden_size"}


def test_config_refuses_what_the_network_cannot_do(tiny):
    with pytest.raises(ConfigError, match="model.dropout: lbfgs"):
        config.resolve(None, [*tiny, "train.optimizer=lbfgs", "model.dropout=0.5"], model_type="mlp")
    with pytest.raises(ConfigError, match="train.optimizer: the mlp model trains with"):
        config.resolve(None, ["train.optimizer=random_search"], model_type="mlp")
    bad = run("train", "--model", "softmax", "--set", "model.hidden_size=10")
    assert bad.exit_code == 2 and "does not apply to model.type softmax" in bad.stderr


def test_model_file_is_checked_on_load(in_tmp, tiny, tmp_path):
    rd = Path(train(_cfg(tiny, tmp_path))["run_dir"])
    with np.load(rd / "model.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    for name, damage in (("W2", lambda a: a[:-1]), ("b1", lambda a: a[:5]), ("activation", lambda a: np.array("tanh")),
                         ("W1", lambda a: np.full_like(a, np.nan))):
        broken = dict(data, **{name: damage(data[name])})
        np.savez(tmp_path / "bad.npz", **broken)
        with pytest.raises(ModelFileError) as err:
            modelfile.load(tmp_path / "bad.npz")
        assert name in str(err.value) or "NaN" in str(err.value), (name, str(err.value))
        result = run("predict", tmp_path / "bad.npz", tmp_path / "x.png")
        assert result.exit_code == 1 and "Traceback" not in result.output


def test_memory_is_estimated_before_allocating(in_tmp, tiny):
    result = run("train", "--model", "mlp", *sets(*tiny, "model.hidden_size=60000"), env={"MLCV_MAX_MEMORY": "50M"})
    assert result.exit_code == 1 and "model.hidden_size" in result.stderr and "MLCV_MAX_MEMORY" in result.stderr


def test_first_layer_weights_are_drawn_and_gradients_check(in_tmp, tiny):
    pytest.importorskip("matplotlib")
    rd = _train_json("--model", "mlp", *sets(*tiny, *FAST), "--plot")["run_dir"]
    assert {"loss.png", "templates.png"} <= {p.name for p in Path(rd).glob("*.png")}
    check = run("gradcheck", "--model", "mlp", "--checks", "8")
    assert check.exit_code == 0 and "PASS" in check.stdout and "W1" in check.stdout and "b2" in check.stdout
    wrong = run("gradcheck", "--model", "mlp", "--penalty", "l1")
    assert wrong.exit_code == 2 and "checked with l2" in wrong.stderr


def test_scikit_learn_estimator_from_the_registry(in_tmp, tiny, tmp_path):
    from sklearn.utils.estimator_checks import check_estimator

    from mlcv_cli import sklearn as adapter

    check_estimator(adapter.MLPClassifier(hidden_size=8, epochs=5, batch_size=20, lr=1e-2))
    defaults = adapter.MLPClassifier().get_params()
    resolved = config.resolve(model_type="mlp")
    assert defaults["hidden_size"] == resolved.model.hidden_size and defaults["optimizer"] == resolved.train.optimizer
    rd = Path(train(_cfg(tiny, tmp_path))["run_dir"])
    assert adapter.load(rd).named_steps["mlp"].get_params()["hidden_size"] == 16


def test_any_features_in_front_through_the_same_cache(in_tmp, tiny, tmp_path):
    hog = ["features=[{type: hog, cell_size: 4}, {type: color_hist, bins: 6}]", f"data.dir={tmp_path / 'data'}"]
    first = train(_cfg(tiny, tmp_path, *hog))
    assert first["features"]["steps"] == ["hog", "color_hist"] and first["features"]["standardized"]
    again = train(_cfg(tiny, tmp_path, *hog))
    assert {e["cache"] for e in again["features"]["cache"]} == {"hit"} and again["test_accuracy"] == first["test_accuracy"]
    assert _json_of(run("evaluate", first["run_dir"], "--json"))["accuracy"] == first["test_accuracy"]


def _json_of(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
