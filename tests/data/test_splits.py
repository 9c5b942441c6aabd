"""data/splits.py: train, validation and test splits carved from what a dataset has."""

import numpy as np

from mlcv_cli import config
from mlcv_cli import data as datasets
from mlcv_cli.data.splits import held_out_test, holdout_size, split_dataset


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
