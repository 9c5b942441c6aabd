"""A user's own small image folder works with every shipped default: nothing to set by hand."""

import json

import pytest

from helpers import ROOT
from helpers import mlcv_uncaught as run


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


def test_cv_does_not_demand_a_validation_split(in_tmp, train_only_folder):
    # A validation split larger than the folder is no obstacle: cv's folds are its validation sets.
    result = run("cv", "--config", ROOT / "configs/knn.yaml", *folder_set(train_only_folder), "--set", "data.num_val=500",
                 "--folds", "3", "--grid", "model.k=1,3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] == 270  # all but the 30 held out as the test split
