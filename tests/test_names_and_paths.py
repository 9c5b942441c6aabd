"""Names and paths: duplicate YAML keys and zip members, links out of an image folder, leftovers of killed processes."""

import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlcv_cli.cli import cli
from mlcv_cli.datasets import import_folder, load_folder
from mlcv_cli.errors import DataError

SIDE = 8


def mlcv(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv")


def make_folder(root, n=4):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        d = root / "train" / c
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


@pytest.mark.parametrize("text", ["train:\n  lr: 0.1\n  lr: 0.001\n", "model:\n  type: svm\nmodel:\n  type: knn\n"])
def test_duplicate_yaml_keys_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = mlcv("train", "--config", path, "--print-config")
    assert result.exit_code == 2 and "appears twice" in result.stderr and "Traceback" not in result.output


def test_duplicate_zip_members_are_refused(tmp_path):
    folder = make_folder(tmp_path / "f")
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
        zf.write(folder / "train" / "a" / "0.png", "train/a/1.png")
    with pytest.raises(DataError, match="appears twice"):
        load_folder(path, size=SIDE)


def test_links_out_of_the_folder_are_refused_links_inside_are_fine(tmp_path):
    folder = make_folder(tmp_path / "f")
    secret = make_folder(tmp_path / "elsewhere")
    os.symlink(secret / "train" / "a" / "0.png", folder / "train" / "a" / "linked.png")
    with pytest.raises(DataError, match="outside the folder"):
        load_folder(folder, size=SIDE)
    (folder / "train" / "a" / "linked.png").unlink()
    os.symlink(secret / "train" / "b", folder / "train" / "c")
    with pytest.raises(DataError, match="outside the folder"):
        load_folder(folder, size=SIDE)
    (folder / "train" / "c").unlink()
    os.symlink(folder / "train" / "a" / "0.png", folder / "train" / "a" / "again.png")
    ds, _ = load_folder(folder, size=SIDE)
    assert len(ds.train_y) == 9


def test_an_import_removes_what_killed_imports_left_behind(tmp_path):
    folder = make_folder(tmp_path / "f")
    cache = tmp_path / "data" / "folders" / "x"
    import_folder(folder, tmp_path / "data", "x", size=SIDE, progress=False)
    (cache / ".train_x-0badcafe.npy.k1ll3d.tmp").write_bytes(b"half" * 1000)
    (cache / "train_x-0badcafe.npy").write_bytes(b"orphan")
    import_folder(folder, tmp_path / "data", "x", size=SIDE, progress=False)
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 3 and names[0] == "manifest.json", names
