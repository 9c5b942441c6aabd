"""Closed, full and broken stdout/stderr cost no work: real `mlcv` processes, real descriptors."""

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import MLCV, clean_env, make_folder, start_mlcv, status_of, wait_for
from mlcv_cli.system import output
from mlcv_cli.data import import_folder

# A small imported folder loads in milliseconds (the shipped sample is decoded from JPEGs each run).
TINY = ["--set", "data.dataset=folder", "--set", "data.path=tiny"]
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full is Linux's always-full device")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("tiny"), ("cat", "dog", "ship"), 30, 10, side=32, noise=256, tint=0)
    data = tmp_path_factory.mktemp("data")
    import_folder(root, data, "tiny")
    return data


@pytest.fixture
def cwd(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MLCV_DATA_DIR", str(data_dir))
    return tmp_path


def mlcv(cwd, *args, stdout="pipe", stderr="pipe"):
    """Run `mlcv ARGS` in cwd; stdout/stderr: "pipe" (captured), "closed" (>&-), "full" (> /dev/full)
    or "gone" (a pipe whose reader has already gone, like `| true`)."""
    to_close, extra = [], []
    handles = {}
    for name, how in (("stdout", stdout), ("stderr", stderr)):
        if how == "pipe":
            handles[name] = subprocess.PIPE
        elif how == "full":
            handles[name] = open("/dev/full", "w")
            to_close.append(handles[name])
        elif how == "gone":
            r, w = os.pipe()
            os.close(r)
            handles[name] = w
            extra.append(w)
        else:
            handles[name] = subprocess.DEVNULL
    closed = [fd for fd, how in ((1, stdout), (2, stderr)) if how == "closed"]

    def close_fds():
        for fd in closed:
            os.close(fd)

    try:
        proc = subprocess.Popen([*MLCV, *map(str, args)], cwd=cwd, env=clean_env(),
                                stdout=handles["stdout"], stderr=handles["stderr"], preexec_fn=close_fds, text=True)
        for fd in extra:
            os.close(fd)
        out, err = proc.communicate(timeout=300)
    finally:
        for fh in to_close:
            fh.close()
    return proc.returncode, out or "", err or ""


def only_run(cwd):
    (run_dir,) = [p for p in (Path(cwd) / "runs").iterdir() if p.is_dir()]
    return run_dir


def test_train_with_stdout_closed_finishes_saves_and_says_where(cwd):
    code, _, err = mlcv(cwd, "train", "--model", "softmax", *TINY, "--set", "train.epochs=1", stdout="closed")
    run_dir = only_run(cwd)
    assert code == output.EXIT_OUTPUT_FAILED and "Traceback" not in err
    assert f"Error: could not write to stdout (it is closed); the run finished and is saved in {run_dir.relative_to(cwd)}" in err
    assert status_of(run_dir) == "done"
    with np.load(run_dir / "model.npz", allow_pickle=False) as model:  # nothing meant for stdout landed in a file
        assert np.isfinite(model["W"]).all()
    lost = (run_dir / output.LOST_LOG).read_text()
    assert "stdout could not be written" in lost and "test" in lost and f"run directory: {run_dir.relative_to(cwd)}" in lost


def test_train_with_stderr_closed_trains_and_keeps_the_progress_log(cwd):
    code, out, _ = mlcv(cwd, "train", "--model", "softmax", *TINY, "--set", "train.epochs=2", stderr="closed")
    run_dir = only_run(cwd)
    assert code == 0 and f"run directory: {run_dir.relative_to(cwd)}" in out
    assert status_of(run_dir) == "done"
    log = (run_dir / output.LOST_LOG).read_text()
    assert "stderr could not be written (it is closed)" in log and "epoch 2/2" in log


def test_cv_refit_into_a_pipe_nobody_reads_still_refits(cwd):
    # `mlcv cv --refit | head -1`: the reader is gone before the refit; the refit must still happen.
    code, _, err = mlcv(cwd, "cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", *TINY, "--refit", stdout="gone")
    run_dir = only_run(cwd)
    assert code == output.EXIT_BROKEN_PIPE and "Traceback" not in err
    assert "Note: could not write to stdout (broken pipe" in err and str(run_dir.relative_to(cwd)) in err
    assert (run_dir / "refit" / "model.npz").is_file() and status_of(run_dir) == "done"
    lost = (run_dir / output.LOST_LOG).read_text()
    assert "2-fold cross-validation of knn" in lost and "refit on 90 images: test accuracy" in lost


@needs_dev_full
def test_json_to_a_full_device_is_an_error_and_the_json_is_kept(cwd):
    code, _, err = mlcv(cwd, "train", "--model", "knn", *TINY, "--json", stdout="full")
    run_dir = only_run(cwd)
    assert code == output.EXIT_OUTPUT_FAILED and "Error: could not write to stdout (No space left on device)" in err
    assert status_of(run_dir) == "done"
    lost = (run_dir / output.LOST_LOG).read_text()
    kept = json.loads(lost[lost.index("{"):])
    assert kept["status"] == "done" and kept["run_dir"] == str(run_dir.relative_to(cwd))
    # Commands that make no run: the loss is reported, nothing is written into the run they read.
    code, _, err = mlcv(cwd, "evaluate", run_dir, stdout="full")
    assert code == 1 and err.strip().endswith("Error: could not write to stdout (No space left on device)")
    assert "refit" not in err and (run_dir / output.LOST_LOG).read_text() == lost


def test_import_with_stderr_closed_imports(tmp_path, image_files):
    folder = tmp_path / "folder"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (folder / split / cls).mkdir(parents=True)
            for f in ("a.png", "c.png"):
                (folder / split / cls / f).write_bytes((image_files / f).read_bytes())
    code, out, _ = mlcv(tmp_path, "download", "folder", folder, "--name", "tiny", "--data-dir", tmp_path / "data", stderr="closed")
    assert code == 0 and "Imported 4 training and 4 test images in 2 classes" in out


def test_both_streams_closed_still_finishes_and_logs_both(cwd):
    code, _, _ = mlcv(cwd, "train", "--model", "softmax", *TINY, "--set", "train.epochs=1", stdout="closed", stderr="closed")
    run_dir = only_run(cwd)
    assert code == output.EXIT_OUTPUT_FAILED and status_of(run_dir) == "done"
    log = (run_dir / output.LOST_LOG).read_text()
    assert "stdout could not be written" in log and "stderr could not be written" in log and "epoch 1/1" in log


@needs_dev_full
def test_a_listing_into_a_gone_pipe_ends_quietly_and_a_full_device_is_reported(cwd):
    (cwd / "runs").mkdir()
    code, _, err = mlcv(cwd, "runs", stdout="gone")
    assert code == output.EXIT_BROKEN_PIPE and err == ""  # like any Unix tool whose reader went away
    code, _, err = mlcv(cwd, "configs", stdout="full")
    assert code == 1 and "Error: could not write to stdout (No space left on device)" in err


def test_a_failing_command_keeps_its_exit_status_when_stdout_is_broken(cwd):
    code, _, err = mlcv(cwd, "train", "--model", "svm", "--set", "model.k=0", "--json", stdout="gone")
    assert code == 2 and "Error:" in err and "Traceback" not in err


def test_a_hang_up_checkpoints_the_run_instead_of_killing_it(cwd):
    # Closing the terminal (or losing the ssh session) sends SIGHUP: the run stops after its step,
    # keeps a checkpoint and says it was interrupted, as on SIGTERM, instead of dying mid-step.
    proc = start_mlcv("train", "--model", "softmax", *TINY, "--set", "train.epochs=5000", "--set", "train.checkpoint_every=1", cwd=cwd)
    try:
        wait_for(lambda: proc.poll() is not None or list((cwd / "runs").glob("*/checkpoint.npz")), "the first checkpoint", every=0.02)
    finally:
        proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    run_dir = only_run(cwd)
    assert proc.returncode == -signal.SIGTERM, err
    assert status_of(run_dir) == "interrupted" and "mlcv train --resume" in err and "Traceback" not in err
    with np.load(run_dir / "checkpoint.npz", allow_pickle=False) as ck:
        assert 0 < int(ck["iteration"]) < 5000 * 2
