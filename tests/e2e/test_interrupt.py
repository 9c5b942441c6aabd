"""Ctrl-C and SIGTERM during `mlcv train` and `mlcv cv`: checkpoint, exit code, and a bit-for-bit resume."""

import json
import shutil
import signal

import numpy as np
import pytest

from helpers import ROOT, cv_table, mlcv as invoke, run_mlcv, sets, start_mlcv, wait_for
from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval

ARGS = ["train", "--config", str(ROOT / "configs/svm.yaml"), *sets("data.num_train=1000", "train.epochs=30", "train.checkpoint_every=1")]


def mlcv(*args, cwd):
    return run_mlcv(*args, cwd=cwd)


def start_and_signal(cwd, signum):
    proc = start_mlcv(*ARGS, cwd=cwd)
    try:
        wait_for(lambda: list((cwd / "runs").glob("*/checkpoint.npz")) or proc.poll() is not None, "the first checkpoint", every=0.02)
    finally:
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


# -- cv ----------------------------------------------------------------------------------------

CV = ["cv", "--model", "softmax", "--folds", "3", "--grid", "train.lr=0.001,0.003,0.01,0.03", *sets("data.num_train=1500")]


def test_cv_resume_after_kill_skips_finished_jobs(tmp_path):
    runs = tmp_path / "runs"
    proc = start_mlcv(*CV, *sets("train.epochs=4", f"output.dir={runs}"), "--json", cwd=tmp_path)

    def three_jobs_done():
        found = list(runs.glob("*/jobs.jsonl"))
        return found[0] if found and len(found[0].read_text().splitlines()) >= 3 else None

    try:
        jobs_file = wait_for(three_jobs_done, "the cv run to finish three jobs")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = len(jobs_file.read_text().splitlines())
    assert done_before < 12
    rd = jobs_file.parent
    resumed = crossval.cross_validate(resume_dir=rd)
    assert resumed["jobs_resumed"] == done_before
    ids = [json.loads(line)["id"] for line in jobs_file.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 12  # nothing was run twice
    fresh_cfg = config.resolve(rd / "config.yaml")
    fresh = crossval.cross_validate(config.replace(fresh_cfg, {"output.dir": str(tmp_path / "fresh")}))
    assert cv_table(resumed) == cv_table(fresh)


def test_sigterm_marks_cv_interrupted_and_exits_143(tmp_path):
    runs = tmp_path / "runs"
    proc = start_mlcv(*CV, *sets("train.epochs=6", f"output.dir={runs}"), cwd=tmp_path)
    try:
        wait_for(lambda: [p for p in runs.glob("*/jobs.jsonl") if p.read_text().strip()], "the first finished job")
    finally:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert "mlcv cv --resume" in err and "Traceback" not in err
    [rd] = list(runs.iterdir())
    assert json.loads((rd / "meta.json").read_text())["status"] == "interrupted"


def test_interrupted_refit_is_finished_by_cv_resume(in_tmp, tmp_path):
    runs = tmp_path / "runs"
    proc = start_mlcv("cv", "--model", "softmax", "--folds", "2", "--grid", "train.lr=0.01", "--refit",
                      *sets("data.num_train=1000", "train.epochs=60", f"output.dir={runs}"), cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/refit/checkpoint.npz")), "the refit's first checkpoint", every=0.02)
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, err
    assert "accuracy (mean ± std)" in out  # the cv table was shown before the refit started
    [rd] = list(runs.iterdir())
    meta = json.loads((rd / "meta.json").read_text())
    assert meta["status"] == "done" and meta["refit"] == "interrupted"
    # No signal from here on: the commands run in this process (no start-up, no second decoding of the data).
    ev = invoke("evaluate", rd)
    assert ev.exit_code == 1 and f"mlcv cv --resume {rd}" in ev.stderr
    resumed = invoke("cv", "--resume", rd, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["refit"]["test_accuracy"] > 0.1
    assert json.loads((rd / "meta.json").read_text())["refit"] == "done"
    ev = invoke("evaluate", rd, "--json")
    assert ev.exit_code == 0 and json.loads(ev.stdout)["model_path"] == str(rd / "refit" / "model.npz")
