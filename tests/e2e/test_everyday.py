"""The smaller things a new user trips over: exit codes, messages, resume for more epochs, cv aids."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.runs import checkpoints
from mlcv_cli.system.signals import StopRequest
from mlcv_cli.workflow import fitting
from mlcv_cli.workflow import train as training
from mlcv_cli.cli.app import cli
from mlcv_cli.errors import ConfigError, TrainingInterrupted

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_train=400", "--set", "data.num_test=100"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=False)


def test_resume_with_more_epochs_continues_a_finished_run_bit_exactly(in_tmp, tiny, monkeypatch):
    # 81 training images in batches of 20: five steps per epoch, the last one short
    data = [a for item in [*tiny, "train.batch_size=20"] for a in ("--set", item)]
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


def test_cv_warns_when_the_best_value_is_at_the_grid_edge():
    grid = {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1], "model.k": [1, 3, 5]}
    notes = crossval.grid_edge_warnings(grid, {"train.lr": 0.1, "model.reg": 0.001, "model.k": 1})
    assert notes == ["the best train.lr=0.1 is the largest value tried: extend the grid above it",
                     "the best model.reg=0.001 is the smallest value tried: extend the grid below it"]  # k=1 is the floor
    assert crossval.grid_edge_warnings(grid, {"train.lr": 0.01, "model.reg": 0.01, "model.k": 3}) == []


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
    trained = run("train", "--model", "softmax", *[a for item in tiny for a in ("--set", item)], "--set", "train.epochs=1",
                  "--plot", "--json")
    assert trained.exit_code == 0, trained.output
    r = json.loads(trained.stdout)
    evaluated = run("evaluate", r["run_dir"], "--plot", "--json")
    assert [Path(p).name for p in r["plots"] if "confusion" in p] == ["confusion-test.png"]
    assert [Path(p).name for p in json.loads(evaluated.stdout)["plots"]] == ["confusion-test.png"]


def _info_zip_style(path, members):
    """A zip as Info-ZIP on Linux writes it: UTF-8 names without the UTF-8 flag."""
    with zipfile.ZipFile(path, "w") as z:
        for i, (name, data) in enumerate(members.items()):
            z.writestr(f"placeholder{i:02d}".ljust(len(name.encode("utf-8")), "_"), data)
    raw = path.read_bytes()
    for i, name in enumerate(members):
        raw = raw.replace(f"placeholder{i:02d}".ljust(len(name.encode("utf-8")), "_").encode(), name.encode("utf-8"))
    path.write_bytes(raw)


def test_zip_names_are_utf8_when_valid(tmp_path):
    import io

    from PIL import Image

    from mlcv_cli.data import load_folder

    def png(value):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    archive = tmp_path / "pets.zip"
    _info_zip_style(archive, {"train/grün/a.png": png(10), "train/grün/b.png": png(20), "train/öl/c.png": png(30)})
    with zipfile.ZipFile(archive) as z:
        assert not any(i.flag_bits & 0x800 for i in z.infolist()) and "gr├╝n" in z.namelist()[0]
    ds, _ = load_folder(archive, size=8)
    assert ds.classes == ["grün", "öl"] and ds.train_y.tolist() == [0, 0, 1]


def test_lbfgs_checkpoints_at_most_every_gap_seconds_and_still_on_a_stop(in_tmp, tiny, monkeypatch):
    data = [a for item in [*tiny, "train.optimizer=lbfgs", "train.epochs=6", "model.reg=0.01"] for a in ("--set", item)]
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
