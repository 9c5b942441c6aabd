"""Names and paths: a folder beside an imported dataset of the same name, and which one a run uses."""

import json
from pathlib import Path

from helpers import SIDE, folder_args, make_folder, mlcv, sets


def _two_class_folder(root, classes, seed):
    return make_folder(root, classes, n_train=6, n_test=2, seed=seed, noise=256, tint=0)


def _knn(tmp_path, path, *extra):
    return mlcv("train", "--model", "knn", *folder_args(path, num_val=0), *sets("model.k=1", f"output.dir={tmp_path / 'runs'}"),
                "--json", *extra)


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
