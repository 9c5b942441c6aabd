"""workflow/inputs.py: the dataset a config names, read as colour or gray."""

import numpy as np
import pytest
from PIL import Image

from mlcv_cli import config as config_mod
from mlcv_cli.workflow.inputs import load_dataset


def _folder(root, mode):
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("a", "b"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                shape = (16, 16) if mode == "L" else (16, 16, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(d / f"{i}.png")
    return root


@pytest.mark.parametrize("mode, channels, expected", [("L", None, 1), ("L", 3, 3), ("RGB", None, 3), ("RGB", 1, 1)])
def test_image_folders_gray_detected_or_set(tmp_path, mode, channels, expected):
    folder = _folder(tmp_path / "f", mode)
    sets = [f"data.path={folder}", "data.image_size=16"] + ([f"data.channels={channels}"] if channels else [])
    cfg = config_mod.resolve(None, sets + ["data.dataset=folder"], model_type="knn")
    ds = load_dataset(cfg)
    assert ds.train_x.shape == (12, 16, 16, expected) and ds.test_x.shape[3] == expected
