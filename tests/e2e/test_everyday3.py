"""Issue 21, round 3 of everyday use: the output wrapper's bytes side, and the small things that
each cost a newcomer a minute."""

import os

import click

from mlcv_cli.system import output


def test_guarded_stream_takes_bytes_through_its_buffer_as_click_writes_them():
    r, w = os.pipe()
    try:
        stream = output.GuardedStream(w, "stdout")
        click.echo(b"complete -F _mlcv_completion mlcv", file=stream)  # what click 8.2+ does for completion
        stream.buffer.write(b"caf\xe9\n")
        assert os.read(r, 100) == b"complete -F _mlcv_completion mlcv\ncaf\xe9\n"
        assert stream.buffer.fileno() == w and stream.buffer.writable()
    finally:
        os.close(r)
        os.close(w)


def test_guarded_buffer_never_raises_and_keeps_what_it_could_not_write():
    r, w = os.pipe()
    os.close(r)
    stream = output.GuardedStream(w, "stdout")
    try:
        assert stream.buffer.write(b"one\n") == 4 and stream.write("two\n") == 4
        assert stream.dead.startswith("broken pipe") and "".join(stream.lost) == "one\ntwo\n"
    finally:
        os.close(w)


# -- scripts can rely on what mlcv prints (item 4) ------------------------------------------

import csv  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from mlcv_cli.cli.app import cli  # noqa: E402
from mlcv_cli.config import shipped  # noqa: E402
from mlcv_cli.data import idx  # noqa: E402
from mlcv_cli.workflow import cv as crossval  # noqa: E402
from mlcv_cli.workflow import inputs  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=False)


def sets(items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """A finished softmax run and a finished kNN cv run on the tiny folder."""
    root = tmp_path_factory.mktemp("runs")
    out = [f"output.dir={root}"]
    train = run("train", "--model", "softmax", *sets([*tiny, *out, "train.epochs=4", "train.batch_size=16"]), "--json")
    assert train.exit_code == 0, train.output
    cv = run("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3", *sets([*tiny, *out]), "--json")
    assert cv.exit_code == 0, cv.output
    return root, json.loads(train.stdout), json.loads(cv.stdout)


def test_every_successful_json_has_status_done(trained, in_tmp):
    root, train, cv = trained
    assert train["status"] == "done" and cv["status"] == "done"
    evaluated = run("evaluate", train["run_dir"], "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["status"] == "done"
    listed = run("runs", root, "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["status"] == "done"
    diffed = run("runs", "diff", train["run_dir"], cv["run_dir"], "--json")
    assert diffed.exit_code == 0 and json.loads(diffed.stdout)["status"] == "done"


@pytest.mark.parametrize("args", [
    ["train", "--model", "nope"],
    ["train", "--model", "svm", "--set", "model.reg=-1"],
    ["cv", "--model", "knn", "--folds", "1"],
    ["evaluate", "runs/nope"],
    ["predict", "runs/nope", "a.png"],
    ["runs", "--sort", "tset"],
    ["runs", "nowhere"],
    ["runs", "diff", "runs/a"],
    ["train", "--model", "svm", "--no-such-option"],
])
def test_every_json_failure_prints_one_object_with_status(args, in_tmp):
    result = run(*args, "--json")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and doc["error"]
    assert result.stderr  # the person reading the terminal still sees the error


def test_runs_time_is_the_whole_runs_wall_time_with_its_parts(trained):
    root, train, _ = trained
    metrics = json.loads((Path(train["run_dir"]) / "metrics.json").read_text())
    times = metrics["times"]
    assert set(times) == {"load_s", "features_s", "fit_s", "score_s", "total_s"}
    assert times["total_s"] >= times["load_s"] + times["features_s"] + times["fit_s"] + times["score_s"] - 0.01
    rows = {Path(r["path"]).name: r for r in json.loads(run("runs", root, "--json").stdout)["runs"]}
    row = rows[Path(train["run_dir"]).name]
    assert row["time"] == times["total_s"] and row["times"] == times
    cv_row = rows[Path(trained[2]["run_dir"]).name]
    assert cv_row["time"] == trained[2]["time_s"] and cv_row["times"] == {"total_s": trained[2]["time_s"]}


def test_final_loss_is_the_mean_of_the_last_epoch(trained):
    _, train, _ = trained
    with open(Path(train["run_dir"]) / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    last_epoch = [float(r["loss"]) for r in rows if r["epoch"] == rows[-1]["epoch"]]
    assert train["final_loss"] == pytest.approx(np.mean(last_epoch), rel=1e-9)
    assert float(rows[-1]["epoch_loss"]) == pytest.approx(train["final_loss"], rel=1e-9)
    assert [r["epoch_loss"] for r in rows[:-1] if r["epoch"] == rows[-1]["epoch"]] == [""] * (len(last_epoch) - 1)
    metrics = json.loads((Path(train["run_dir"]) / "metrics.json").read_text())
    assert metrics["final_loss"] == train["final_loss"] and metrics["last_step_loss"] == float(rows[-1]["loss"])


def test_train_summary_says_which_loss_it_shows(tiny, in_tmp):
    result = run("train", "--model", "softmax", *sets([*tiny, "train.epochs=2"]))
    assert result.exit_code == 0, result.output
    assert "(mean over the last epoch)" in result.stdout


def _help_texts(command, path):
    import click

    ctx = click.Context(command, info_name=path[-1])
    yield " ".join(path), command.get_help(ctx)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _help_texts(sub, [*path, name])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_every_example_in_the_help_pastes_into_bash():
    import re

    examples, unquoted = [], []
    for where, text in _help_texts(cli, ["mlcv"]):
        for line in text.splitlines():
            command = re.search(r"(?:^|\s)(mlcv [a-z].*)", line)
            if command:
                examples.append((where, command.group(1)))
        # A KEY=fn(...) value anywhere in the help (an option's "e.g."), as it would be pasted.
        unquoted += [(where, m.group(1)) for m in re.finditer(r"(?:(?<=\s)|^)([\w.]+=\w+\([^)\s]*\))", " ".join(text.split()))]
    assert any("logspace(" in line for _, line in examples)
    assert unquoted == []
    for where, line in examples:
        proc = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
        assert proc.returncode == 0, f"{where}: {line}: {proc.stderr}"
        shlex.split(line)


def test_grid_edge_warning_not_on_a_tie_inside_the_grid():
    grid = {"model.reg": [3e-4, 3e-3, 3e-2]}
    tied = [{"model.reg": 3e-4}, {"model.reg": 3e-2}]
    assert crossval.grid_edge_warnings(grid, {"model.reg": 3e-4}, tied=tied) == []
    assert crossval.grid_edge_warnings(grid, {"model.reg": 3e-4}, tied=tied[:1]) == [
        "the best model.reg=0.0003 is the smallest value tried: extend the grid below it"]


# -- small things (item 5) -------------------------------------------------------------------


def test_knn_cv_progress_counts_jobs_and_says_how_points_make_them(tiny, in_tmp):
    result = run("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3,5", *sets(tiny))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("cv knn")]
    assert lines and all(line.startswith("cv knn: 3 jobs (3 points x 3 folds;") for line in lines), lines
    assert ": 1/3 job " in lines[0]


@pytest.mark.parametrize("args, hint", [
    (["cv", "--model", "knn", "--grid", "k=1,3"], "did you mean 'model.k'?"),
    (["train", "--model", "svm", "--set", "lr=0.1"], "did you mean 'train.lr'?"),
    (["runs", "--sort", "tset"], "did you mean test?"),
    (["runs", "--filter", "lrr=0.1"], "did you mean train.lr?"),
])
def test_typed_keys_get_a_suggestion(args, hint, in_tmp):
    (in_tmp / "runs").mkdir(exist_ok=True)
    result = run(*args)
    assert result.exit_code == 2 and hint in result.stderr, result.stderr


def test_config_summaries_are_whole_sentences_or_headlines():
    for name in shipped.names():
        text = shipped.summary(name)
        assert text and text.count("(") == text.count(")"), (name, text)
        assert len(text) <= shipped.SUMMARY_CHARS
    assert shipped.summary("hog-svm") == "Multiclass SVM on hand-made features (HOG and a hue histogram)"


def test_predict_warns_about_an_image_upscaled_from_almost_nothing(trained, tmp_path):
    _, train, _ = trained
    Image.new("RGB", (1, 1), (200, 30, 30)).save(tmp_path / "dot.png")
    Image.new("RGB", (8, 8), (20, 30, 200)).save(tmp_path / "fine.png")  # the tiny model's own size
    result = run("predict", train["run_dir"], tmp_path / "dot.png", tmp_path / "fine.png", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [p.get("upscaled_from") for p in doc["predictions"]] == [[1, 1], None]
    assert "dot.png (1x1) was upscaled" in result.stderr and "fine.png" not in result.stderr
    table = run("predict", train["run_dir"], tmp_path / "dot.png")
    assert "(upscaled from 1x1)" in table.stdout


def test_import_message_gives_the_real_share_held_out(in_tmp, monkeypatch):
    from mlcv_cli.cli import download

    for i in range(20):
        (in_tmp / "src" / "train" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i, 0, 0)).save(in_tmp / "src" / "train" / "ab"[i % 2] / f"{i}.png")
    result = run("download", "folder", in_tmp / "src", "--name", "pets", "--size", "8")
    assert "2 of its 20 images (10%) are held out" in result.stderr
    monkeypatch.setattr(download, "holdout_size", lambda n: 1)
    result = run("download", "folder", in_tmp / "src", "--name", "pets", "--size", "8")
    assert "1 of its 20 images (5%) are held out" in result.stderr


def test_a_folder_decoded_on_every_run_gets_the_import_hint(tiny, in_tmp, monkeypatch):
    monkeypatch.setattr(inputs, "IMPORT_HINT_S", 0.0)
    result = run("train", "--model", "knn", *sets(tiny))
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stderr.splitlines() if line.startswith("Note: decoding the 105 images of"))
    assert "import the folder once with `mlcv download folder " in note and "--name tiny" in note and "--size 8" in note
    assert "--set data.path=tiny" in note


@pytest.fixture
def http():
    """A local HTTP server of ``srv.files`` (path -> bytes); anything else is a 404."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = self.server.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.url = {}, f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _idx_file(array):
    import gzip
    import struct

    raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    return gzip.compress(raw, mtime=0)


def test_mnist_mirrors_are_tried_in_order_with_the_same_checksums(http, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train_x": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), "train_y": rng.integers(0, 10, 30, dtype=np.uint8),
              "test_x": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "test_y": rng.integers(0, 10, 10, dtype=np.uint8)}
    files = {idx.FILES[k]: _idx_file(a) for k, a in arrays.items()}
    for name, data in files.items():
        http.files["/good/" + name] = data
        http.files["/wrong/" + name] = _idx_file(np.zeros(3, np.uint8))  # another file: the checksum tells
    good, bad = http.url + "/good/", http.url + "/wrong/"
    source = dataclasses.replace(idx.MNIST, mirrors=(http.url + "/missing/", bad, good),
                                 md5={n: hashlib.md5(d).hexdigest() for n, d in files.items()})
    result = idx.prepare_idx(source, tmp_path, progress=False)
    assert result["status"] == "downloaded" and result["verified"]
    np.testing.assert_array_equal(idx.load_idx(source, tmp_path).train_x[..., 0], arrays["train_x"])
    failing = dataclasses.replace(source, mirrors=(http.url + "/missing/", bad))
    with pytest.raises(idx.DataError, match="from any of its 2 mirrors") as caught:
        idx.prepare_idx(failing, tmp_path / "other", progress=False)
    assert "/missing/" in str(caught.value) and "checksum mismatch" in str(caught.value)


def test_mnist_mirrors_list_the_copies_with_the_published_files():
    assert idx.MNIST.mirrors[-1] == "https://yann.lecun.com/exdb/mnist/"  # the original, last
    assert len(idx.MNIST.mirrors) >= 2 and all(m.startswith("https://") and m.endswith("/") for m in idx.MNIST.mirrors)
