"""The mlcv command as a user drives it: train, evaluate, predict, gradcheck, errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, run_mlcv, sets
from helpers import mlcv_uncaught as run

SMALL = sets("data.num_train=400", "data.num_val=100", "data.num_test=200")


def run_dir_of(result):
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.mark.parametrize("cmd", [[], ["train"], ["cv"], ["evaluate"], ["predict"], ["gradcheck"], ["plot"], ["download"], ["download", "cifar10"], ["download", "folder"]])
def test_every_command_has_help(cmd):
    result = run(*cmd, "--help")
    assert result.exit_code == 0
    assert "Usage: mlcv" in result.output and len(result.output) > 200


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_print_config_shows_resolved_values():
    result = run("train", "--config", ROOT / "configs/knn.yaml", "--set", "model.k=7", "--print-config")
    assert result.exit_code == 0
    assert "k: 7" in result.output and "num_val: null" in result.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--model", "knn", "--set", "model.k=0"], "model.k: expected a value >= 1, found 0"),
        (["train", "--model", "svm", "--set", "train.optimizer=adamw"], "train.optimizer: expected one of"),
        (["train"], "give --config FILE"),
        (["train", "--config", "missing.yaml"], "does not exist"),
        (["cv", "--model", "knn", "--folds", "5", "--grid", "model.k=0,1"], "model.k: expected a value >= 1"),
    ],
)
def test_user_mistakes_are_one_line_with_exit_2(in_tmp, args, fragment):
    result = run(*args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_knn_train_evaluate_predict(in_tmp, image_files):
    result = run("train", "--config", ROOT / "configs/knn.yaml", *SMALL, "--set", "model.k=3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rd = Path(summary["run_dir"])
    for name in ("config.yaml", "meta.json", "metrics.json", "model.npz"):
        assert (rd / name).is_file()
    assert json.loads((rd / "meta.json").read_text())["status"] == "done"
    metrics = json.loads((rd / "metrics.json").read_text())
    assert metrics["test_accuracy"] == summary["test_accuracy"]
    assert 0.1 < metrics["test_accuracy"] < 0.6  # 10 classes: clearly above chance on real images
    cm = np.array(metrics["splits"]["test"]["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 200
    with np.load(rd / "model.npz", allow_pickle=False) as npz:
        assert npz["X_train"].shape == (400, 3072) and npz["X_train"].dtype == np.uint8

    ev = run("evaluate", rd, "--json")
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["accuracy"] == pytest.approx(summary["test_accuracy"])
    table = run("evaluate", rd, "--split", "val")
    assert "per-class accuracy" in table.stdout and "confusion matrix" in table.stdout

    pr = run("predict", rd, image_files / "a.png", image_files / "b.jpg", image_files / "broken.png", "--top", "2", "--json")
    assert pr.exit_code == 1  # one file failed
    out = json.loads(pr.stdout)
    assert [Path(p["path"]).name for p in out["predictions"]] == ["a.png", "b.jpg"]
    assert all(len(p["top"]) == 2 and sum(t["votes"] for t in p["top"]) <= 3 for p in out["predictions"])
    assert "broken.png" in pr.stderr


def test_softmax_train_writes_history_and_predicts_probabilities(in_tmp, image_files):
    result = run("train", "--config", ROOT / "configs/softmax.yaml", *SMALL, "--set", "train.epochs=3", "--json")
    assert result.exit_code == 0, result.output
    rd = run_dir_of(result)
    lines = (rd / "history.csv").read_text().splitlines()
    assert lines[0] == "iteration,epoch,loss,lr,train_acc,val_acc,epoch_loss,train_val_gap,best_epoch"
    assert len(lines) - 1 == 3 * 2  # 400 images / batch 200 = 2 iterations per epoch
    with np.load(rd / "model.npz", allow_pickle=False) as npz:
        assert npz["W"].shape == (3072, 10) and npz["b"].shape == (10,)
        assert str(npz["model_type"]) == "softmax"
    pr = run("predict", rd, image_files / "a.png", image_files / "c.png", "--top", "10", "--csv")
    assert pr.exit_code == 0
    rows = pr.stdout.strip().splitlines()
    assert rows[0] == "path,rank,class,probability" and len(rows) == 1 + 2 * 10
    probs = [float(r.split(",")[3]) for r in rows[1:11]]
    assert sum(probs) == pytest.approx(1.0, abs=1e-4) and probs == sorted(probs, reverse=True)


def test_predict_directory_and_svm_scores(in_tmp, image_files):
    result = run("train", "--model", "svm", *SMALL, "--set", "train.epochs=1", "--json")
    rd = run_dir_of(result)
    pr = run("predict", rd / "model.npz", image_files, "--json")
    assert pr.exit_code == 1  # broken.png inside the directory
    out = json.loads(pr.stdout)
    assert out["value"] == "score" and len(out["predictions"]) == 3 and len(out["failed"]) == 1


@pytest.mark.parametrize("model", ["svm", "softmax"])
def test_gradcheck_passes(model):
    result = run("gradcheck", "--model", model, "--checks", "8")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "relative error" in result.stdout


def test_console_script_exit_codes(in_tmp):
    bad = run_mlcv("train", "--model", "knn", "--set", "model.k=-3")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: model.k") and "Traceback" not in bad.stderr
    debug = run_mlcv("--debug", "train", "--model", "knn", "--set", "model.k=-3")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def _folder(root, side, n_train=8, n_test=3):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(("cat", "dog")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.full((side, side, 3), 60 + 120 * c, np.uint8) + rng.integers(0, 40, (side, side, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / name / f"{i}.png")
    return root


def test_imported_size_must_match_image_size(in_tmp):
    folder = _folder(in_tmp / "src", 20)
    assert run("download", "folder", folder, "--name", "pets", "--size", "16").exit_code == 0
    result = run("train", "--model", "knn", "--set", "data.dataset=folder", "--set", "data.path=pets", "--set", "data.num_val=2")
    assert result.exit_code == 2 and "data.image_size=16" in result.stderr


def test_evaluate_on_another_smaller_dataset(in_tmp):
    result = run("train", "--model", "softmax", *SMALL, "--set", "train.epochs=1", "--json")
    rd = run_dir_of(result)
    other = _folder(in_tmp / "other", 32, n_train=3, n_test=4)
    ev = run("evaluate", rd, "--data", other, "--json")
    # The classes differ (cat, dog vs CIFAR-10), which is the clear error; no num_val complaint.
    assert ev.exit_code == 1 and "classes" in ev.stderr and "num_val" not in ev.stderr
