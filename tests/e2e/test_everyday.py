"""The smaller things a new user trips over: exit codes, messages, resume for more epochs, cv aids."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, sets
from helpers import mlcv_uncaught as run
from mlcv_cli import config
from mlcv_cli.runs import checkpoints
from mlcv_cli.system.signals import StopRequest
from mlcv_cli.workflow import fitting
from mlcv_cli.workflow import train as training
from mlcv_cli.errors import ConfigError, TrainingInterrupted

SMALL = sets("data.num_train=400", "data.num_test=100")


def test_resume_with_more_epochs_continues_a_finished_run_bit_exactly(in_tmp, tiny, monkeypatch):
    # 81 training images in batches of 20: five steps per epoch, the last one short
    data = sets(*tiny, "train.batch_size=20")
    short = run("train", "--config", ROOT / "configs/softmax.yaml", *data, "--set", "train.epochs=2", "--json")
    assert short.exit_code == 0, short.output
    rd = Path(json.loads(short.stdout)["run_dir"])
    reads, read_state = [], checkpoints.read
    monkeypatch.setattr(checkpoints, "read", lambda run, name: reads.append(name) or read_state(run, name))
    longer = run("train", "--resume", rd, "--set", "train.epochs=4", "--json")
    assert longer.exit_code == 0, longer.output
    assert reads == [checkpoints.FINAL_STATE]  # read once, for the epochs check and for the training
    full = run("train", "--config", ROOT / "configs/softmax.yaml", *data, "--set", "train.epochs=4", "--json")
    other = Path(json.loads(full.stdout)["run_dir"])
    with np.load(rd / "model.npz", allow_pickle=False) as a, np.load(other / "model.npz", allow_pickle=False) as b:
        assert np.array_equal(a["W"], b["W"]) and np.array_equal(a["b"], b["b"])
    assert (rd / "history.csv").read_text() == (other / "history.csv").read_text()
    assert config.read_yaml_file(rd / "config.yaml")["train"]["epochs"] == 4
    assert json.loads(longer.stdout)["test_accuracy"] == json.loads(full.stdout)["test_accuracy"]
    fewer = run("train", "--resume", rd, "--set", "train.epochs=3")
    assert fewer.exit_code == 2 and "has trained 4 epochs" in fewer.stderr
    other_key = run("train", "--resume", rd, "--set", "train.lr=0.1")
    assert other_key.exit_code == 2 and "only train.epochs" in other_key.stderr


def test_second_ctrl_c_still_says_how_to_resume(in_tmp, tiny):
    cfg = config.replace(config.resolve(None, tiny, model_type="softmax"), {"train.batch_size": 40, "train.epochs": 5})

    def progress_interrupted_at(step):
        class Bar:
            count = 0

            def update(self, n=1, **postfix):
                Bar.count += n
                if Bar.count >= step:
                    raise KeyboardInterrupt  # what a second Ctrl-C raises in the middle of a step

            def close(self):
                pass

        return lambda total, desc: Bar()

    with pytest.raises(TrainingInterrupted, match=r"last checkpoint is kept\. Resume with: mlcv train --resume"):
        training.train(cfg, progress=progress_interrupted_at(5))  # 81 images, 3 steps per epoch: checkpoints exist
    with pytest.raises(TrainingInterrupted, match="before any checkpoint was written: nothing to resume"):
        training.train(cfg, progress=progress_interrupted_at(1))


@pytest.mark.parametrize("args, needs", [
    (["download", "cifar10", "--archive", "missing.tar.gz"], "does not exist"),
    (["download", "folder", ".", "--name", "my pets"], "not allowed"),
    (["train", "--model", "softmax", "--set", "model.k=5"], "model.k: does not apply to model.type softmax"),
    (["train", "--model", "knn", "--set", "model.reg=0.1"], "does not apply to model.type knn"),
])
def test_usage_mistakes_exit_2(in_tmp, args, needs):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert needs in result.stderr and "Traceback" not in result.stderr


def test_missing_optional_extra_is_a_usage_mistake(in_tmp, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = run("train", "--model", "knn", "--plot")
    assert result.exit_code == 2 and "pip install 'mlcv[plot]'" in result.stderr


def test_messages_say_things_once(in_tmp):
    missing = run("train", "--config", "configs/nope.yaml")
    assert missing.exit_code == 2 and missing.stderr.count("configs/nope.yaml") == 1
    (in_tmp / "empty.yaml").write_text("# nothing yet\n")
    empty = run("train", "--config", "empty.yaml")
    assert empty.exit_code == 2 and "empty.yaml: the file is empty" in empty.stderr
    with pytest.raises(ConfigError, match="empty"):
        config.resolve(in_tmp / "empty.yaml")


def test_predict_top_on_1nn_says_why_one_row(in_tmp, image_files):
    trained = run("train", "--model", "knn", *SMALL, "--json")
    rd = json.loads(trained.stdout)["run_dir"]
    result = run("predict", rd, image_files / "a.png", "--top", "3")
    assert result.exit_code == 0
    assert "1-NN model's vote names at most 1 class" in result.stderr


def test_cv_print_config_shows_the_grid(in_tmp):
    result = run("cv", "--model", "knn", "--folds", "3", "--print-config")
    assert result.exit_code == 0
    cfg = config.from_dict(__import__("yaml").safe_load(result.stdout))
    assert cfg.cv.folds == 3 and cfg.cv.grid == config.DEFAULT_GRIDS["knn"]
    assert not (in_tmp / "runs").exists()


def test_import_reports_nested_and_empty_class_folders(in_tmp):
    from PIL import Image

    src = in_tmp / "src"
    for rel in ("train/cat/a.png", "train/cat/sub/b.png", "train/cat/sub/c.png", "train/dog/d.png", "test/dog/e.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(src / rel)
    (src / "train/bird").mkdir()
    result = run("download", "folder", src, "--name", "pets")
    assert result.exit_code == 0, result.output
    assert "2 images in subfolders of train/cat/ left out" in result.stderr
    assert "train/bird/ holds no images; class 'bird' is left out of train" in result.stderr


def test_train_and_evaluate_name_the_confusion_plot_alike(in_tmp, tiny):
    trained = run("train", "--model", "softmax", *sets(*tiny), "--set", "train.epochs=1",
                  "--plot", "--json")
    assert trained.exit_code == 0, trained.output
    r = json.loads(trained.stdout)
    evaluated = run("evaluate", r["run_dir"], "--plot", "--json")
    assert [Path(p).name for p in r["plots"] if "confusion" in p] == ["confusion-test.png"]
    assert [Path(p).name for p in json.loads(evaluated.stdout)["plots"]] == ["confusion-test.png"]


def test_lbfgs_checkpoints_at_most_every_gap_seconds_and_still_on_a_stop(in_tmp, tiny, monkeypatch):
    data = sets(*tiny, "train.optimizer=lbfgs", "train.epochs=6", "model.reg=0.01")
    writes, write = [], checkpoints.write
    monkeypatch.setattr(checkpoints, "write", lambda run, est: writes.append(est._iteration) or write(run, est))
    monkeypatch.setattr(fitting, "LBFGS_CHECKPOINT_GAP_S", 0.0)
    every = run("train", "--config", ROOT / "configs/softmax.yaml", *data)
    assert every.exit_code == 0, every.output
    assert writes == [1, 2, 3, 4, 5]  # checkpoint_every: 1, no checkpoint after the last epoch
    writes.clear()
    monkeypatch.setattr(fitting, "LBFGS_CHECKPOINT_GAP_S", 3600.0)
    rare = run("train", "--config", ROOT / "configs/softmax.yaml", *data, "--json")
    assert rare.exit_code == 0, rare.output
    assert writes == []
    # A stop by signal still writes its checkpoint at once, whatever the gap, and resumes exactly.
    stops = iter([False, False, True])
    with monkeypatch.context() as patch:
        patch.setattr(StopRequest, "__call__", lambda self: next(stops, True))
        stopped = run("train", "--config", ROOT / "configs/softmax.yaml", *data, "--json")
    assert stopped.exit_code == 143 and writes == [3]
    rd = Path(json.loads(rare.stdout)["run_dir"]).parent
    resumed = [p for p in rd.iterdir() if (p / "checkpoint.npz").exists()]
    assert len(resumed) == 1
    done = run("train", "--resume", resumed[0], "--json")
    assert done.exit_code == 0, done.output
    with np.load(resumed[0] / "model.npz") as a, np.load(Path(json.loads(rare.stdout)["run_dir"]) / "model.npz") as b:
        assert np.array_equal(a["W"], b["W"]) and np.array_equal(a["b"], b["b"])
