"""Names and paths: duplicate zip members, links out of an image folder, leftovers of killed processes."""

import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlcv_cli.cli.app import cli
from mlcv_cli.data import import_folder, load_folder
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


def _two_class_folder(root, classes, seed):
    rng = np.random.default_rng(seed)
    for split, n in (("train", 6), ("test", 2)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def _knn(tmp_path, path, *extra):
    return mlcv("train", "--model", "knn", "--set", "data.dataset=folder", "--set", f"data.path={path}",
                "--set", f"data.image_size={SIDE}", "--set", "data.num_val=0", "--set", "model.k=1",
                "--set", f"output.dir={tmp_path / 'runs'}", "--json", *extra)


def _classes(result):
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["run_dir"]
    return json.loads((Path(run) / "metrics.json").read_text())["classes"], run


def test_a_folder_here_never_silently_wins_over_an_imported_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    imported = _two_class_folder(tmp_path / "elsewhere", ("cat", "dog"), 1)
    assert mlcv("download", "folder", imported, "--name", "pets", "--size", SIDE).exit_code == 0
    # Only the import exists: the bare name is the import. The run pins that choice.
    classes, run = _classes(_knn(tmp_path, "pets"))
    assert classes == ["cat", "dog"]
    _two_class_folder(tmp_path / "pets", ("fish", "bird"), 2)  # now a folder of the same name appears here
    for result in (_knn(tmp_path, "pets"), mlcv("evaluate", run, "--data", "pets")):
        assert result.exit_code == 2, result.output
        [line] = [l for l in result.stderr.splitlines() if l.startswith("Error: ")]
        assert str(tmp_path / "pets") in line and "imported" in line and "data.path=./pets" in line and "imported:pets" in line
    assert _classes(_knn(tmp_path, "./pets"))[0] == ["bird", "fish"]
    assert _classes(_knn(tmp_path, "imported:pets"))[0] == ["cat", "dog"]
    # The earlier run still scores on the data it was trained on.
    evaluated = mlcv("evaluate", run, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["dataset"] == "pets"
    assert mlcv("evaluate", run, "--data", "imported:pets").exit_code == 0


def test_a_bare_name_with_only_a_folder_is_that_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    _two_class_folder(tmp_path / "pets", ("fish", "bird"), 2)
    classes, run = _classes(_knn(tmp_path, "pets"))
    assert classes == ["bird", "fish"]
    saved = (Path(run) / "config.yaml").read_text()
    assert str(tmp_path / "pets") in saved  # pinned: importing a "pets" later does not change this run
    missing = _knn(tmp_path, "imported:pets")
    assert missing.exit_code == 1 and "no imported dataset 'pets'" in missing.stderr
    bad = _knn(tmp_path, "imported:../x")
    assert bad.exit_code == 2 and "not allowed" in bad.stderr
