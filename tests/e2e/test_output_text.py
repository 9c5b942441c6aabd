"""User text is data: class names, file names and run names are shown literally, never as markup
or terminal control, while JSON and CSV keep them exact."""

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mlcv_cli.system import output
from mlcv_cli.cli.app import cli
from mlcv_cli.system.progress import LineProgress

# What a terminal would act on: C0/C1 controls (ESC starts colour and cursor sequences) and
# the bidirectional overrides that reorder a line.
TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
CLASSES = ["[bold]x", "a[b]c", "\x1b[31mred", "bell\x07", "line\nbreak", ":cat:", "left\u202eright", "plain"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=False)


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


def test_printable_escapes_what_a_terminal_would_act_on():
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x202E, 0x2067, 0x2028]:
        assert not TERMINAL_CONTROL.search(output.printable(f"a{chr(code)}b"))
    assert output.printable("\x1b[31mred\r\n\t") == "\\x1b[31mred\\r\\n\\t"
    assert output.printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"  # a Latin-1 file name's byte
    for fine in ("[bold]x", "café", "猫 ship", "a\\b", "🐱"):
        assert output.printable(fine) == fine


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


def test_progress_lines_show_descriptions_literally():
    stream = io.StringIO()
    bar = LineProgress(3, "decoding \x1b[2Jx\r", stream=stream)
    bar.update(1, epoch="1/3\x07")
    assert not TERMINAL_CONTROL.search(stream.getvalue()) and "decoding \\x1b[2Jx\\r: 1/3 epoch 1/3\\x07" in stream.getvalue()


def test_plots_draw_class_names_with_dollar_signs(tmp_path):
    from mlcv_cli import plots

    plt = plots.pyplot()
    fig, ax = plt.subplots()
    ax.set_title("cost$\\notacommand$")  # mathtext would refuse this at draw time
    fig.savefig(tmp_path / "t.png")
    plt.close(fig)
    assert (tmp_path / "t.png").stat().st_size > 0


def test_csv_is_exact_for_a_pipe_and_printable_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pipe = io.StringIO()
    output.csv_writer(pipe).writerow(["a\x1b[2Jb", 0.5])
    assert pipe.getvalue() == "a\x1b[2Jb,0.5\n"
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    output.csv_writer().writerow(["a\x1b[2Jb", 0.5])
    assert terminal.getvalue() == "a\\x1b[2Jb,0.5\n"
