"""A user's own small image folder works with every shipped default: nothing to set by hand."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlcv_cli import config
from mlcv_cli import data as datasets
from mlcv_cli.data.splits import holdout_size, split_dataset, held_out_test
from mlcv_cli.cli.app import cli

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=False)


@pytest.fixture(scope="module")
def train_only_folder(tmp_path_factory):
    """300 images in 3 classes, train/ only, as a person makes one from their photos."""
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(5)
    for c, name in enumerate(("cat", "dog", "fox")):
        (root / "train" / name).mkdir(parents=True)
        for i in range(100):
            pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(root / "train" / name / f"{i}.png")
    return root


def folder_set(folder):
    return ["--set", "data.dataset=folder", "--set", f"data.path={folder}"]


@pytest.mark.parametrize("config_name", ["knn", "svm", "softmax"])
def test_shipped_configs_train_and_evaluate_a_300_image_folder(in_tmp, train_only_folder, config_name):
    trained = run("train", "--config", ROOT / f"configs/{config_name}.yaml", *folder_set(train_only_folder),
                  "--set", "train.epochs=2", "--json")
    assert trained.exit_code == 0, trained.output
    r = json.loads(trained.stdout)
    # 10% held out as the test split (the folder has none), 10% of the rest for validation.
    assert (r["n_train"], r["n_val"], r["n_test"]) == (243, 27, 30)
    evaluated = run("evaluate", r["run_dir"], "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["n"] == 30
    assert json.loads(evaluated.stdout)["accuracy"] == r["test_accuracy"]


def test_num_test_carves_a_test_split_from_a_train_only_folder(train_only_folder):
    cfg = config.resolve(model_type="knn", overrides=["data.dataset=folder", f"data.path={train_only_folder}",
                                                      "data.num_test=50", "data.num_val=20"])
    ds, _ = datasets.load_folder(train_only_folder)
    splits = split_dataset(cfg, ds)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (230, 20, 50)
    # Disjoint: the images are random, so equal bytes would mean the same image in two splits.
    seen = [{im.tobytes() for im in x} for x in (splits.train_x, splits.val_x, splits.test_x)]
    assert sum(map(len, seen)) == 300 and len(set.union(*seen)) == 300
    # The test split alone (what evaluate rebuilds) is the same images.
    test_x, test_y = held_out_test(cfg, ds)
    assert np.array_equal(test_x, splits.test_x) and np.array_equal(test_y, splits.test_y)
    none = split_dataset(config.replace(cfg, {"data.num_test": 0}), ds)
    assert none.test_y is None and len(none.train_y) + len(none.val_y) == 300


def test_default_validation_split_suits_any_size():
    assert [holdout_size(n) for n in (5, 300, 5000, 50000)] == [0, 30, 500, 1000]
    assert config.resolve(model_type="softmax").data.num_val is None


def test_cv_does_not_demand_a_validation_split(in_tmp, train_only_folder):
    # A validation split larger than the folder is no obstacle: cv's folds are its validation sets.
    result = run("cv", "--config", ROOT / "configs/knn.yaml", *folder_set(train_only_folder), "--set", "data.num_val=500",
                 "--folds", "3", "--grid", "model.k=1,3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] == 270  # all but the 30 held out as the test split
