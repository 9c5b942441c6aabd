"""Ctrl-C and SIGTERM during `mlcv train`: checkpoint, exit code, and a bit-for-bit resume."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["train", "--config", str(ROOT / "configs/svm.yaml"), "--set", "data.num_train=1000", "--set", "train.epochs=30",
        "--set", "train.checkpoint_every=1"]


def mlcv(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *args], cwd=cwd, capture_output=True, text=True)


def start_and_signal(cwd, signum):
    proc = subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *ARGS], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((cwd / "runs").glob("*/checkpoint.npz")):
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err, next((cwd / "runs").glob("svm-*"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The run of ARGS that nothing interrupted: what every resumed run must equal."""
    cwd = tmp_path_factory.mktemp("full")
    full = mlcv(*ARGS, "--json", cwd=cwd)
    assert full.returncode == 0, full.stderr
    return cwd / json.loads(full.stdout)["run_dir"]


@pytest.fixture(scope="module")
def interrupted_by_sigint(tmp_path_factory):
    """(exit status, stderr, run directory) of ARGS stopped by SIGINT after its first checkpoint;
    tests that change the run work on a copy."""
    rc, _, err, run = start_and_signal(tmp_path_factory.mktemp("sigint"), signal.SIGINT)
    return rc, err, run


def _copy_of(run, tmp_path):
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_bit_for_bit(tmp_path, signum, full_run, request):
    a = tmp_path / "a"
    a.mkdir()
    if signum == signal.SIGINT:
        rc, err, run = request.getfixturevalue("interrupted_by_sigint")
        run = _copy_of(run, a)
    else:
        rc, _, err, run = start_and_signal(a, signum)
    assert rc == -signum, err  # ended by the signal itself, so a shell loop stops (status 130/143)
    assert "mlcv train --resume" in err and "Traceback" not in err
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    assert (run / "checkpoint.npz").is_file() and not (run / "model.npz").exists()
    with np.load(run / "checkpoint.npz", allow_pickle=False) as ck:
        assert 0 < int(ck["iteration"]) < 150  # stopped part-way: 1000/200 x 30 = 150 steps
    history_rows = len((run / "history.csv").read_text().splitlines()) - 1
    assert history_rows == int(np.load(run / "checkpoint.npz")["iteration"])

    resumed = mlcv("train", "--resume", str(run), cwd=a)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "meta.json").read_text())["status"] == "done"
    assert not (run / "checkpoint.npz").exists()

    other = full_run
    with np.load(run / "model.npz", allow_pickle=False) as m1, np.load(other / "model.npz", allow_pickle=False) as m2:
        assert np.array_equal(m1["W"], m2["W"]) and np.array_equal(m1["b"], m2["b"])
    assert (run / "history.csv").read_text() == (other / "history.csv").read_text()
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] == json.loads((other / "metrics.json").read_text())["test_accuracy"]


def test_resume_refuses_finished_or_foreign_dirs(tmp_path, full_run):
    run = _copy_of(full_run, tmp_path)
    again = mlcv("train", "--resume", str(run), cwd=tmp_path)
    assert again.returncode == 1 and "already finished" in again.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = mlcv("train", "--resume", str(empty), cwd=tmp_path)
    assert foreign.returncode == 1 and "Error:" in foreign.stderr and "Traceback" not in foreign.stderr


def test_damaged_checkpoint_is_refused(tmp_path, interrupted_by_sigint):
    rc, err, run = interrupted_by_sigint
    assert rc == -signal.SIGINT, err
    run = _copy_of(run, tmp_path)
    ck = run / "checkpoint.npz"
    ck.write_bytes(ck.read_bytes()[:200])
    resumed = mlcv("train", "--resume", str(run), cwd=tmp_path)
    assert resumed.returncode == 1 and "checkpoint.npz is unreadable" in resumed.stderr
    assert "Traceback" not in resumed.stderr
