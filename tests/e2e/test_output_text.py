"""User text is data: class names, file names and run names are shown literally, never as markup
or terminal control, while JSON and CSV keep them exact."""

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TERMINAL_CONTROL
from helpers import mlcv_uncaught as run

CLASSES = ["[bold]x", "a[b]c", "\x1b[31mred", "bell\x07", "line\nbreak", ":cat:", "left\u202eright", "plain"]


def shown(text):
    """The text without rich's own table borders and newlines: what came from the data."""
    return text.replace("\n", " ")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A kNN run on an imported folder whose class names are markup and terminal control."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("hostile")
    for split, n in (("train", 6), ("test", 2)):
        for cls in CLASSES:
            (root / "folder" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "folder" / split / cls / f"{i}.png")
    (root / "folder" / "train" / "plain" / "bad\x1b[2J[bold].png").write_bytes(b"not an image")
    images = root / "images"
    (images / "a[").mkdir(parents=True)
    for name in ("[bold]x.png", "a[/]b.png", "esc\x1b[2Jx.png"):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / name)
    old = Path.cwd()
    os.chdir(root)
    try:
        imported = run("download", "folder", root / "folder", "--name", "hostile", "--data-dir", root / "data", "--skip-bad")
        assert imported.exit_code == 0, imported.output
        trained = run("train", "--model", "knn", "--data-dir", root / "data", "--set", "data.dataset=folder",
                      "--set", "data.path=hostile", "--set", "output.dir=" + str(root / "runs"), "--json")
        assert trained.exit_code == 0, trained.output
    finally:
        os.chdir(old)
    return {"root": root, "images": images, "run_dir": json.loads(trained.stdout)["run_dir"], "import": imported}


def test_import_messages_show_names_literally(hostile_run):
    result = hostile_run["import"]
    assert not TERMINAL_CONTROL.search(result.output)
    assert "in 8 classes" in result.stdout and "bad\\x1b[2J[bold].png" in result.stderr


def test_evaluate_table_shows_class_names_as_written_and_json_exact(hostile_run):
    result = run("evaluate", hostile_run["run_dir"], "--data-dir", hostile_run["root"] / "data")
    assert result.exit_code == 0, result.output
    text = shown(result.stdout)
    assert not TERMINAL_CONTROL.search(result.stdout)
    for escaped in ("[bold]x", "a[b]c", "\\x1b[31mred", "bell\\x07", "line\\nbreak", ":cat:", "left\\u202eright"):
        assert escaped in text, escaped
    as_json = run("evaluate", hostile_run["run_dir"], "--data-dir", hostile_run["root"] / "data", "--json")
    assert sorted(json.loads(as_json.stdout)["classes"]) == sorted(CLASSES)


def test_predict_file_names_with_brackets_and_escapes(hostile_run):
    images = hostile_run["images"]
    paths = [images / "[bold]x.png", images / "a[" / "]b.png", images / "esc\x1b[2Jx.png"]
    (images / "a[" / "]b.png").write_bytes((images / "[bold]x.png").read_bytes())
    table = run("predict", hostile_run["run_dir"], *paths)
    assert table.exit_code == 0, table.output
    assert not TERMINAL_CONTROL.search(table.stdout)
    text = shown(table.stdout)
    assert "[bold]x.png" in text and "a[/]b.png" in text and "esc\\x1b[2Jx.png" in text
    rows = list(csv.reader(io.StringIO(run("predict", hostile_run["run_dir"], *paths, "--csv").stdout)))
    assert [r[0] for r in rows[1:]] == [str(p) for p in paths]  # CSV to a file or pipe is data: exact
    assert {r[2] for r in rows[1:]} <= set(CLASSES)


def test_runs_listing_and_errors_show_user_text_literally(hostile_run, tmp_path):
    runs = hostile_run["root"] / "runs"
    src = Path(hostile_run["run_dir"])
    (runs / "evil\x1b]0;pwned\x07[red]").mkdir()
    for f in src.iterdir():
        if f.is_file():
            (runs / "evil\x1b]0;pwned\x07[red]" / f.name).write_bytes(f.read_bytes())
    listing = run("runs", runs)
    assert listing.exit_code == 0 and not TERMINAL_CONTROL.search(listing.stdout)
    assert "evil\\x1b]0;pwned\\x07[red]" in listing.stdout
    names = [r["name"] for r in json.loads(run("runs", runs, "--json").stdout)["runs"]]
    assert "evil\x1b]0;pwned\x07[red]" in names
    diff = run("runs", "diff", src, runs / "evil\x1b]0;pwned\x07[red]", "--all-classes")
    assert diff.exit_code == 0, diff.output
    assert not TERMINAL_CONTROL.search(diff.stdout) and "[bold]x" in shown(diff.stdout) and "\\x1b[31mred" in shown(diff.stdout)
    missing = run("train", "--config", tmp_path / "no\x1b[2Jsuch[/].yaml")
    assert missing.exit_code == 2 and not TERMINAL_CONTROL.search(missing.stderr) and "no\\x1b[2Jsuch[/].yaml" in missing.stderr
    click_error = run("evaluate", tmp_path / "gone\x07[/]")
    assert click_error.exit_code == 2 and not TERMINAL_CONTROL.search(click_error.stderr) and "gone\\x07[/]" in click_error.stderr
