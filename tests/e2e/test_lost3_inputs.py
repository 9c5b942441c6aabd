"""Nothing lost, round 3: run files that never end or block (links to devices, FIFOs), folders
nested too deep, numbers YAML 1.1 reads differently from a person, and the `mlcv runs` row
cache that must not remember a failure. Real processes and real files."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import MLCV, error_line, mlcv, permissions_apply, run_mlcv, sets

from mlcv_cli.config import loading
from mlcv_cli.runs import listing
from mlcv_cli.runs import rows as runrows


def mlcv_process(*args, timeout=60):
    """The real command in its own process, killed (a test failure) if it does not end in ``timeout`` seconds."""
    return run_mlcv(*args, timeout=timeout)


@pytest.fixture(scope="module")
def one_run(tiny, tmp_path_factory):
    """One real softmax run on the tiny folder dataset."""
    root = tmp_path_factory.mktemp("lost3") / "runs"
    r = mlcv("train", "--model", "softmax", *sets(*tiny), "--set", "train.epochs=1",
             "--set", f"output.dir={root}", "--set", "output.name=base")
    assert r.exit_code == 0, r.output
    (run,) = root.iterdir()
    return run


@pytest.fixture
def runs_dir(one_run, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(one_run, root / "good")
    return root


def _copy(runs_dir, name):
    shutil.copytree(runs_dir / "good", runs_dir / name)
    return runs_dir / name


# -- class 2: run files that never end, block, or are far bigger than a run file -------------


@pytest.mark.parametrize("name", ["config.yaml", "meta.json", "metrics.json"])
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "dev-urandom"])
def test_runs_never_reads_a_device_or_waits_on_a_fifo(runs_dir, name, kind):
    bad = _copy(runs_dir, "bad")
    (bad / name).unlink()
    if kind == "fifo":
        os.mkfifo(bad / name)
    else:
        (bad / name).symlink_to("/dev/zero" if kind == "dev-zero" else "/dev/urandom")
    proc = mlcv_process("runs", runs_dir, "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["runs"]}
    assert rows["good"]["status"] == "done"
    assert rows["bad"]["status"] == "damaged"
    assert name in rows["bad"]["reason"] and "not a regular file" in rows["bad"]["reason"]
    diff = mlcv_process("runs", "diff", runs_dir / "good", bad, timeout=60)
    assert diff.returncode == 0, diff.stderr
    assert "not a regular file" in diff.stdout + diff.stderr


def test_a_run_file_far_larger_than_any_run_file_is_damaged_not_read(runs_dir):
    bad = _copy(runs_dir, "bad")
    with open(bad / "metrics.json", "r+b") as fh:  # sparse: 100 GB on paper, nothing on disk
        fh.truncate(100 << 30)
    proc = mlcv_process("runs", runs_dir, "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["runs"]}
    assert rows["bad"]["status"] == "damaged" and "larger than" in rows["bad"]["reason"]


def test_a_fifo_lock_file_does_not_block_the_listing(runs_dir):
    bad = _copy(runs_dir, "bad")
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "status": "running", "pid": 1}))
    os.mkfifo(bad / ".lock")
    proc = mlcv_process("runs", runs_dir, "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_resume_evaluate_and_plot_never_block_on_run_files(runs_dir, kind):
    bad = _copy(runs_dir, "bad")
    for name in ("meta.json", "history.csv"):
        (bad / name).unlink()
        if kind == "fifo":
            os.mkfifo(bad / name)
        else:
            (bad / name).symlink_to("/dev/zero")
    for args in (["train", "--resume", bad], ["evaluate", bad], ["plot", bad]):
        proc = mlcv_process(*args, timeout=60)
        assert proc.returncode != 0, (args, proc.stdout)
        error_line(proc.stderr)


def test_a_config_that_is_a_fifo_or_a_device_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    for name in ("fifo.yaml", "zero.yaml"):
        proc = mlcv_process("train", "--config", tmp_path / name, timeout=60)
        assert proc.returncode == 2, proc.stderr
        error_line(proc.stderr, name, "not a regular file")


def _nested(root, depth):
    """``depth`` folders, one inside the other, made without recursion."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)


def _remove_nested(root):
    """What _nested made, removed without recursion (shutil.rmtree recurses, and so fails here)."""
    subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.parametrize("depth", [1100, 70])
def test_predict_on_folders_nested_too_deep_is_one_line(one_run, tmp_path, depth):
    deep = tmp_path / "deep"
    deep.mkdir()
    try:
        _nested(deep, depth)
        proc = mlcv_process("predict", one_run, deep, timeout=120)
    finally:
        _remove_nested(deep)
    assert proc.returncode == 1
    error_line(proc.stderr, "nested more than")


def test_predict_walks_a_link_loop_without_following_it(one_run, tmp_path, image_files):
    folder = tmp_path / "pics"
    shutil.copytree(image_files, folder / "a" / "b")
    (folder / "a" / "b" / "loop").symlink_to(folder)
    proc = mlcv_process("predict", one_run, folder, "--json", timeout=60)
    doc = json.loads(proc.stdout)
    # The three images are predicted once each, the broken one reported once: the loop is not walked.
    assert sorted(Path(p["path"]).name for p in doc["predictions"]) == ["a.png", "b.jpg", "c.png"]
    assert [Path(f["path"]).name for f in doc["failed"]] == ["broken.png"]


# -- class 3: numbers YAML 1.1 reads differently from a person -----------------------------


UNCLEAR = {"1:30": "base 60", "017": "octal", "0b11": "binary", "0x10": "hexadecimal", "0o17": "octal", "09": "octal",
           "-0x1": "hexadecimal", "1:30.5": "base 60", "+017": "octal"}


@pytest.mark.parametrize("written", sorted(UNCLEAR))
def test_unclear_numbers_in_a_config_file_are_refused_naming_key_and_value(tmp_path, written):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  type: softmax\ntrain:\n  epochs: {written}\n")
    proc = mlcv_process("train", "--config", cfg, "--set", f"output.dir={tmp_path / 'runs'}", timeout=60)
    assert proc.returncode == 2
    error_line(proc.stderr, "train.epochs", repr(written), UNCLEAR[written])
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["train.epochs", "train.lr", "data.num_val", "model.reg"])
@pytest.mark.parametrize("written", ["1:30", "017", "0b11", "0x10"])
def test_unclear_numbers_in_set_and_grid_are_refused(in_tmp, key, written):
    r = mlcv("train", "--model", "softmax", "--set", f"{key}={written}")
    assert r.exit_code == 2
    error_line(r.stderr, key, repr(written))
    if key != "data.num_val":
        r = mlcv("cv", "--model", "softmax", "--grid", f"{key}=1,{written}")
        assert r.exit_code == 2
        error_line(r.stderr, key, repr(written))
    assert not (in_tmp / "runs").exists()


def test_numbers_a_person_means_are_read_as_meant():
    text = ("train:\n  epochs: 1_000\n  lr: 1e-3\n  lr_decay: .5\n  batch_size: +20\n  random_search_tries: 1e3\n"
            "model:\n  type: softmax\n  reg: 1.5E+2\n")
    cfg = loading.from_dict(loading.safe_load_text(text, "t"))
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.lr_decay, cfg.train.batch_size, cfg.model.reg) == (1000, 0.001, 0.5, 20, 150.0)
    assert cfg.train.random_search_tries == 1000 and type(cfg.train.random_search_tries) is int
    assert type(cfg.train.lr) is float


def test_text_keys_keep_what_was_written(in_tmp, tiny):
    r = mlcv("train", "--model", "softmax", *sets(*tiny), "--set", "train.epochs=1",
             "--set", "output.name=017", "--set", "name=1e5")
    assert r.exit_code == 0, r.output
    (run,) = (in_tmp / "runs").iterdir()
    assert run.name.startswith("017-")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["output"]["name"] == "017" and saved["name"] == "1e5"
    # Written so that mlcv reads the same text back (quoted), for resume and evaluate.
    again = loading.from_dict(loading.read_yaml_file(run / "config.yaml"))
    assert (again.output.name, again.name) == ("017", "1e5")
    r = mlcv("train", "--resume", run, "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output


def test_runs_shows_unclear_numbers_as_written(runs_dir):
    edited = _copy(runs_dir, "edited")
    text = (edited / "config.yaml").read_text().replace("epochs: 1\n", "epochs: 1:30\n")
    (edited / "config.yaml").write_text(text)
    assert runrows.fast_config(text.encode()) is None  # left to the YAML loader
    rows = {r["name"]: r for r in listing.scan(runs_dir)}
    assert rows["edited"]["config"]["train.epochs"] == "1:30"
    assert rows["good"]["config"]["train.epochs"] == 1


# -- class 4: a cache that remembers a failure ---------------------------------------------


def test_a_run_unreadable_at_one_listing_is_read_again_once_it_is_readable(runs_dir):
    """chmod changes neither size nor modification time: the row cache must not keep the damage."""
    shutil.copytree(runs_dir / "good", runs_dir / "flaky")
    prefix = permissions_apply()

    def listed():
        proc = subprocess.run([*prefix, *MLCV, "runs", str(runs_dir), "--json"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {r["name"]: r for r in json.loads(proc.stdout)["runs"]}

    metrics = runs_dir / "flaky" / "metrics.json"
    before = metrics.stat()
    metrics.chmod(0o000)
    rows = listed()
    assert rows["flaky"]["status"] == "damaged" and "metrics.json" in rows["flaky"]["reason"]
    metrics.chmod(0o644)
    after = metrics.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    for _ in range(2):
        rows = listed()
        assert rows["flaky"]["status"] == "done", rows["flaky"]
        assert rows["flaky"]["test"] == rows["good"]["test"]


def test_a_run_file_swapped_for_one_of_equal_size_and_time_is_read_again(runs_dir):
    """The row cache keys on identity too: a file replaced keeping size and mtime (cp -p, rsync) is new."""
    assert listing.scan(runs_dir)[0]["test"] is not None
    metrics = runs_dir / "good" / "metrics.json"
    st = metrics.stat()
    doc = json.loads(metrics.read_text())
    text = json.dumps({**doc, "test_accuracy": 0.5})  # shorter than mlcv's indented file: padded with blanks
    assert len(text) < st.st_size
    replacement = runs_dir / "good" / "metrics.new"
    replacement.write_text(text + " " * (st.st_size - len(text)))
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, metrics)
    assert (metrics.stat().st_size, metrics.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    (row,) = listing.scan(runs_dir)
    assert row["test"] == 0.5
