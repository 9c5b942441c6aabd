"""Files mlcv reads back from a run directory are input too: journals, plans, meta, checkpoints."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import SIDE, InterruptAfter, assert_one_line_error, cv_table, folder_args, make_folder, mlcv

pytestmark = pytest.mark.usefixtures("in_tmp")


def make_noisy_folder(root):
    # Faint tints under heavy noise: accuracies well inside (0, 1), so a forged 1.0 would win.
    return make_folder(root, noise=246, tint=8)


@pytest.fixture(scope="module")
def finished_cv(tmp_path_factory):
    """A finished 3-fold kNN cv run (one job per fold, three k each) and its JSON result."""
    base = tmp_path_factory.mktemp("cv")
    folder = make_noisy_folder(base / "imgs")
    result = mlcv("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3,5", *folder_args(folder, base / "runs", num_val=0), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert all(0 < a < 0.9 for s in out["summary"] for a in s["folds"])  # a forged 1.0 would change the best
    return Path(out["run_dir"]), out


def _copy(run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    for name in ("cv_summary.json", "cv_results.csv", "best.yaml"):
        (dst / name).unlink()
    return dst


def _records(run):
    return [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]


def _fake(job_id, fold, accuracy=1.0, points=(0, 1, 2)):
    return {"id": job_id, "rows": [{"point": p, "fold": fold, "accuracy": accuracy, "time_s": 0.0, "note": ""} for p in points]}


def _lines(*items):
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


JOURNALS = {
    # name: jobs.jsonl built from the three genuine records (r0, r1, r2), one of them dropped or spoiled
    "invented job": lambda r: _lines(r[0], r[1], _fake("g0-f7", 7), _fake("g9-f0", 0)),
    "extra fold in a record": lambda r: _lines(r[0], r[1], _fake("g0-f2", 4)),
    "nan accuracy": lambda r: _lines(r[0], r[1], json.dumps(_fake("g0-f2", 2)).replace("1.0", "NaN")),
    "accuracy above 1": lambda r: _lines(r[0], r[1], _fake("g0-f2", 2, accuracy=3.5)),
    "accuracy as text": lambda r: _lines(r[0], r[1], _fake("g0-f2", 2, accuracy="0.9")),
    "missing grid point": lambda r: _lines(r[0], r[1], _fake("g0-f2", 2, points=(0, 1))),
    "rows not a list": lambda r: _lines(r[0], r[1], {"id": "g0-f2", "rows": 5}),
    "record not an object": lambda r: _lines(r[0], r[1], [1, 2], "null", '"text"'),
    "not json": lambda r: _lines(r[0], "{\"id\": \"g0-f2\", \"rows\": [", r[1]),
    "two different results for a job": lambda r: _lines(r[0], r[1], r[2], _fake("g0-f2", 2)),
    "binary garbage": lambda r: _lines(r[0], r[1]) + "\udcff\x00\x01\n",
}


@pytest.mark.parametrize("name", list(JOURNALS))
def test_journal_records_that_do_not_fit_the_plan_are_run_again(finished_cv, tmp_path, name):
    run, original = finished_cv
    copy = _copy(run, tmp_path)
    genuine = _records(run)
    assert [r["id"] for r in genuine] == ["g0-f0", "g0-f1", "g0-f2"] or sorted(r["id"] for r in genuine) == ["g0-f0", "g0-f1", "g0-f2"]
    genuine.sort(key=lambda r: r["id"])
    (copy / "jobs.jsonl").write_bytes(JOURNALS[name](genuine).encode("utf-8", "surrogateescape"))
    result = mlcv("cv", "--resume", copy, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert cv_table(out) == cv_table(original)
    assert out["best_params"] == original["best_params"]
    assert "jobs.jsonl" in out["warning"] and "run again" in out["warning"]
    # The journal is clean again: every line a record of the plan, one per job.
    assert sorted(r["id"] for r in _records(copy)) == ["g0-f0", "g0-f1", "g0-f2"]
    assert (copy / "jobs.rejected.jsonl").stat().st_size > 0
    again = mlcv("cv", "--resume", copy, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["warning"] is None


def test_torn_last_line_is_cut_before_appending(finished_cv, tmp_path):
    run, original = finished_cv
    copy = _copy(run, tmp_path)
    genuine = sorted(_records(run), key=lambda r: r["id"])
    torn = json.dumps(genuine[2])[:25]  # a crash in the middle of the last append
    (copy / "jobs.jsonl").write_text(_lines(genuine[0], genuine[1]) + torn)
    result = mlcv("cv", "--resume", copy, "--json")
    assert result.exit_code == 0, result.output
    assert cv_table(json.loads(result.stdout)) == cv_table(original)
    text = (copy / "jobs.jsonl").read_text()
    assert text.endswith("\n") and all(line.endswith("}]}") for line in text.splitlines())
    assert sorted(r["id"] for r in _records(copy)) == ["g0-f0", "g0-f1", "g0-f2"]


PLANS = {
    "not an object": lambda p: [1, 2, 3],
    "points missing": lambda p: {"config": p["config"]},
    "points edited": lambda p: {**p, "points": p["points"] + [{"model.k": 7}]},
    "point value edited": lambda p: {**p, "points": [{"model.k": 2}] + p["points"][1:]},
    "config not valid": lambda p: {**p, "config": {**p["config"], "model": {"type": "tree"}}},
    "config wrong type": lambda p: {**p, "config": "knn"},
    "random not a count": lambda p: {**p, "random": "many"},
    "not json": None,
}


@pytest.mark.parametrize("name", list(PLANS))
def test_damaged_plan_is_one_line_error(finished_cv, tmp_path, name):
    run, _ = finished_cv
    copy = _copy(run, tmp_path)
    plan = json.loads((copy / "cv_plan.json").read_text())
    if PLANS[name] is None:
        (copy / "cv_plan.json").write_text("{\"config\": ")
    else:
        (copy / "cv_plan.json").write_text(json.dumps(PLANS[name](plan)))
    assert_one_line_error(mlcv("cv", "--resume", copy), 1, "cv_plan.json")


@pytest.mark.parametrize("summary", [[], {"best_params": {"model.k": 2}, "n_images": 42}, {"best_params": {"model.k": 1}, "n_images": "42"}])
def test_damaged_summary_is_refused_by_refit(finished_cv, tmp_path, summary):
    run, _ = finished_cv
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "cv_summary.json").write_text(json.dumps(summary))
    from mlcv_cli.workflow import cv as crossval
    from mlcv_cli.errors import MlcvError

    with pytest.raises(MlcvError, match="cv_summary.json"):
        crossval.refit_best(copy)
    assert not (copy / "refit" / "model.npz").exists()


# -- checkpoint.npz and meta.json --------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """An interrupted softmax run (adam, so the checkpoint holds optimizer state too)."""
    from mlcv_cli import config
    from mlcv_cli.workflow.train import train
    from mlcv_cli.errors import TrainingInterrupted

    base = tmp_path_factory.mktemp("train")
    folder = make_noisy_folder(base / "imgs")
    values = {"data.dataset": "folder", "data.path": str(folder), "data.image_size": SIDE, "data.num_val": 6,
              "output.dir": str(base / "runs"), "train.batch_size": 8, "train.epochs": 6, "train.optimizer": "adam"}
    with pytest.raises(TrainingInterrupted):
        train(config.replace(config.resolve(model_type="softmax"), values), progress=InterruptAfter(3))
    [run] = (base / "runs").iterdir()
    return run


def _spoil(arrays, **changes):
    out = dict(arrays)
    for key, value in changes.items():
        if value is None:
            out.pop(key)
        else:
            out[key] = value
    return out


CHECKPOINTS = {
    "W wrong shape": lambda a: _spoil(a, W=np.zeros((5, 3), np.float32)),
    "W as text": lambda a: _spoil(a, W=np.array("weights")),
    "W with nan": lambda a: _spoil(a, W=np.full(a["W"].shape, np.nan, np.float32)),
    "b missing": lambda a: _spoil(a, b=None),
    "iteration as text": lambda a: _spoil(a, iteration=np.array("3")),
    "iteration an array": lambda a: _spoil(a, iteration=np.arange(3)),
    "negative batch position": lambda a: _spoil(a, batch_pos=np.int64(-4)),
    "epoch past the end": lambda a: _spoil(a, epoch=np.int64(99)),
    "lr infinite": lambda a: _spoil(a, lr=np.float64(np.inf)),
    "history too short": lambda a: _spoil(a, loss_history=np.zeros(1)),
    "rng state not json": lambda a: _spoil(a, rng_state=np.array("{")),
    "rng state not a state": lambda a: _spoil(a, rng_state=np.array('{"bit_generator": "MT19937"}')),
    "epoch history not a list": lambda a: _spoil(a, epoch_history=np.array('{"a": 1}')),
    "optimizer state wrong shape": lambda a: _spoil(a, **{k: np.zeros(3) for k in a if k.startswith("opt_W_") and not k.endswith("_t")}),
    "other optimizer": lambda a: _spoil(a, optimizer=np.array("sgd")),
}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_damaged_checkpoint_is_refused_and_the_run_stays_resumable(interrupted, tmp_path, name):
    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    with np.load(copy / "checkpoint.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert any(k.startswith("opt_W_") for k in arrays)
    np.savez(copy / "checkpoint.npz", **CHECKPOINTS[name](arrays))
    assert_one_line_error(mlcv("train", "--resume", copy), 1, "checkpoint.npz")
    assert json.loads((copy / "meta.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize("meta", ["[1, 2]", '"done"', '{"status": 5}', "{", ""])
def test_damaged_meta_is_one_line_error(interrupted, tmp_path, meta):
    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    (copy / "meta.json").write_text(meta)
    assert_one_line_error(mlcv("train", "--resume", copy), 1, "meta.json")


def test_genuine_checkpoint_resumes(interrupted, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    result = mlcv("train", "--resume", copy, "--json")
    assert result.exit_code == 0, result.output


# -- files `mlcv plot` reads back ------------------------------------------------------------------


@pytest.fixture(scope="module")
def done_train(interrupted, tmp_path_factory):
    run = tmp_path_factory.mktemp("done") / "run"
    shutil.copytree(interrupted, run)
    assert mlcv("train", "--resume", run).exit_code == 0
    return run


PLOT_FILES = {
    "metrics not an object": ("metrics.json", "[]"),
    "metrics without classes": ("metrics.json", '{"model": "softmax", "splits": {}}'),
    "confusion matrix wrong shape": ("metrics.json", '{"model": "softmax", "classes": ["a", "b"], "splits": {"test": {"confusion_matrix": [[1]]}}}'),
    "confusion matrix with text": ("metrics.json", '{"model": "softmax", "classes": ["a"], "splits": {"test": {"confusion_matrix": [["x"]]}}}'),
    "metrics not json": ("metrics.json", "{"),
    "history with text loss": ("history.csv", "iteration,epoch,loss,lr,train_acc,val_acc\n1,1,low,,,\n"),
    "history with text iteration": ("history.csv", "iteration,epoch,loss,lr,train_acc,val_acc\none,1,0.5,,,\n"),
    "history binary": ("history.csv", "\udcff\udcfe"),
}


@pytest.mark.parametrize("name", list(PLOT_FILES))
def test_plot_of_damaged_run_files_is_one_line_error(done_train, tmp_path, name):
    pytest.importorskip("matplotlib")
    copy = tmp_path / "copy"
    shutil.copytree(done_train, copy)
    file, text = PLOT_FILES[name]
    (copy / file).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert_one_line_error(mlcv("plot", copy), 1, file)


@pytest.mark.parametrize("summary", ["[]", '{"grid": {}, "summary": [{"point": "x"}]}', '{"grid": 1}'])
def test_plot_of_damaged_cv_summary_is_one_line_error(finished_cv, tmp_path, summary):
    pytest.importorskip("matplotlib")
    run, _ = finished_cv
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "cv_summary.json").write_text(summary)
    assert_one_line_error(mlcv("plot", copy), 1, "cv_summary.json")


def test_a_run_left_running_by_a_killed_process_is_called_killed(done_train, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(done_train, copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**meta, "status": "running", "pid": 999999}))
    result = mlcv("evaluate", copy)
    assert result.exit_code == 0 and "it was killed" in result.stderr
    from mlcv_cli.runs.rundir import RunDir

    with RunDir(copy).locked():  # while a process holds it, it is running, not killed
        assert RunDir(copy).is_live()
        assert "it was killed" not in mlcv("evaluate", copy).stderr


def test_resume_removes_temporary_files_a_killed_process_left(interrupted, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(interrupted, copy)
    (copy / ".checkpoint.npz.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    assert mlcv("train", "--resume", copy).exit_code == 0
    assert not list(copy.glob(".*.tmp"))


def test_overflowing_weights_are_refused_not_predicted_as_nan(done_train, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(done_train, copy)
    with np.load(copy / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["W"] = np.where(np.arange(arrays["W"].size).reshape(arrays["W"].shape) % 2, 3e38, -3e38).astype(np.float32)
    np.savez(copy / "model.npz", **arrays)
    folder = tmp_path / "img"
    folder.mkdir()
    Image.fromarray(np.full((SIDE, SIDE, 3), 200, np.uint8)).save(folder / "x.png")
    for result in (mlcv("predict", copy, folder / "x.png"), mlcv("evaluate", copy)):
        assert result.exit_code == 1, result.output
        assert "not finite" in result.stderr and "nan" not in result.stdout.lower()


@pytest.mark.parametrize("name", [n for n in CHECKPOINTS if n != "epoch past the end"])
def test_damaged_final_state_is_refused_when_training_on(done_train, tmp_path, name):
    copy = tmp_path / "copy"
    shutil.copytree(done_train, copy)
    with np.load(copy / "state.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(copy / "state.npz", **CHECKPOINTS[name](arrays))
    assert_one_line_error(mlcv("train", "--resume", copy, "--set", "train.epochs=9"), 1, "state.npz")
    assert json.loads((copy / "meta.json").read_text())["status"] == "done"


@pytest.mark.parametrize("summary", ["[]", '{"n_train": "many", "n_val": 0, "test_accuracy": 0.5, "run_dir": "x"}',
                                     '{"n_train": 3, "n_val": 0, "test_accuracy": NaN, "run_dir": "x"}', "{"])
def test_damaged_refit_summary_is_one_line_error(finished_cv, tmp_path, summary):
    run, _ = finished_cv
    copy = _copy(run, tmp_path)
    assert mlcv("cv", "--resume", copy, "--refit").exit_code == 0
    (copy / "refit_summary.json").write_text(summary)
    assert_one_line_error(mlcv("cv", "--resume", copy, "--refit"), 1, "refit_summary.json")
