"""Several real mlcv processes on one run directory at once (no mocks); tests/data/test_cache_concurrency.py
does the same for one dataset cache."""

import json
import signal

import pytest

from helpers import clean_env, folder_args, make_folder, run_mlcv, start_mlcv, wait_for


def start(*args, cwd):
    return start_mlcv(*args, cwd=cwd, env=clean_env())


def run(*args, cwd):
    return run_mlcv(*args, cwd=cwd, env=clean_env(), timeout=300)


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("folders") / "one", seed=1)


# -- a run directory is used by one process at a time ---------------------------------------------


def test_train_resume_of_a_live_run_is_refused_naming_its_pid(folder, tmp_path):
    runs = tmp_path / "runs"
    first = start("train", "--model", "svm", *folder_args(folder, runs), "--set", "train.epochs=100000",
                  "--set", "train.batch_size=8", "--set", "train.checkpoint_every=20", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/checkpoint.npz")), "the first checkpoint", proc=first)
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
        wait_for(lambda: json.loads((rd / "meta.json").read_text()).get("resumed"), "the resume to start", proc=resumed)
        assert resumed.poll() is None, resumed.communicate()
    finally:
        kill(resumed)


def test_cv_resume_of_a_live_run_is_refused_naming_its_pid(folder, tmp_path):
    runs = tmp_path / "runs"
    first = start("cv", "--model", "softmax", "--folds", "3", "--grid", "train.lr=0.001,0.002,0.003,0.004,0.005,0.006",
                  *folder_args(folder, runs), "--set", "train.epochs=3000", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/jobs.jsonl")), "the first finished job", proc=first)
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
        wait_for(lambda: "resumed" in json.loads((rd / "meta.json").read_text()), "the resume to start", proc=again)
    finally:
        kill(again)
