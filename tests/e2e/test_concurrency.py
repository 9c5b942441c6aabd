"""Several real mlcv processes on one run directory at once (no mocks); tests/data/test_cache_concurrency.py
does the same for one dataset cache."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIDE = 8


def make_folder(root, seed, classes=("a", "b", "c"), n_train=14, n_test=4):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 200, (SIDE, SIDE, 3), dtype=np.uint8)
                pixels[..., c % 3] += 50
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def env():
    e = dict(os.environ)
    e.pop("MLCV_DEBUG", None)
    return e


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300)


def wait_for(predicate, proc, what, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def data_args(folder, runs):
    return ["--set", "data.dataset=folder", "--set", f"data.path={folder}", "--set", f"data.image_size={SIDE}",
            "--set", "data.num_val=6", "--set", f"output.dir={runs}"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("folders")
    return make_folder(base / "one", seed=1), make_folder(base / "two", seed=2, n_train=10)


# -- a run directory is used by one process at a time ---------------------------------------------


def test_train_resume_of_a_live_run_is_refused_naming_its_pid(folders, tmp_path):
    runs = tmp_path / "runs"
    first = start("train", "--model", "svm", *data_args(folders[0], runs), "--set", "train.epochs=100000",
                  "--set", "train.batch_size=8", "--set", "train.checkpoint_every=20", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/checkpoint.npz")), first, "the first checkpoint")
        [rd] = runs.iterdir()
        second = run("train", "--resume", rd, cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert f"is in use by mlcv process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert json.loads((rd / "meta.json").read_text())["status"] == "running"
    finally:
        kill(first)
    # The kernel dropped the lock with the process: the killed run resumes at once.
    resumed = start("train", "--resume", rd, cwd=tmp_path)
    try:
        wait_for(lambda: json.loads((rd / "meta.json").read_text()).get("resumed"), resumed, "the resume to start")
        assert resumed.poll() is None, resumed.communicate()
    finally:
        kill(resumed)


def test_cv_resume_of_a_live_run_is_refused_naming_its_pid(folders, tmp_path):
    runs = tmp_path / "runs"
    first = start("cv", "--model", "softmax", "--folds", "3", "--grid", "train.lr=0.001,0.002,0.003,0.004,0.005,0.006",
                  *data_args(folders[0], runs), "--set", "train.epochs=3000", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/jobs.jsonl")), first, "the first finished job")
        [rd] = runs.iterdir()
        before = (rd / "jobs.jsonl").read_bytes()
        second = run("cv", "--resume", rd, cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert f"is in use by mlcv process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert (rd / "jobs.jsonl").read_bytes().startswith(before)  # the refused process wrote nothing
    finally:
        kill(first)
    again = start("cv", "--resume", rd, cwd=tmp_path)
    try:
        wait_for(lambda: "resumed" in json.loads((rd / "meta.json").read_text()), again, "the resume to start")
    finally:
        kill(again)
