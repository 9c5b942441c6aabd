"""What scripts and logs get from mlcv: JSON on failure too, plain progress lines in a log."""

import json
from pathlib import Path

from helpers import run_mlcv, sets
from helpers import mlcv_uncaught as run
from mlcv_cli.workflow import train as training
from mlcv_cli.errors import TrainingInterrupted

SMALL = sets("data.num_train=400", "data.num_test=100")


def test_json_on_divergence(in_tmp):
    result = run("train", "--model", "softmax", *SMALL, "--set", "train.lr=1e12", "--set", "train.epochs=3", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "failed" and "diverged" in out["error"] and out["exit_code"] == 1
    assert json.loads((Path(out["run_dir"]) / "meta.json").read_text())["status"] == "failed"


def test_json_on_interrupt_and_on_usage_errors(in_tmp, monkeypatch):
    def interrupted(cfg, **kwargs):
        err = TrainingInterrupted("stopped after iteration 3 of 20; checkpoint saved. Resume with: mlcv train --resume runs/x")
        err.run_dir = "runs/x"
        raise err

    monkeypatch.setattr(training, "train", interrupted)
    result = run("train", "--model", "svm", "--json")
    assert result.exit_code == 130
    out = json.loads(result.stdout)
    assert out == {"status": "interrupted", "run_dir": "runs/x", "error": out["error"], "exit_code": 130}
    assert "--resume runs/x" in out["error"]
    bad = run("train", "--model", "svm", "--set", "model.k=0", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["status"] == "failed"


def test_success_json_says_done(in_tmp):
    result = run("train", "--model", "knn", *SMALL, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "done"


def test_log_gets_a_line_per_epoch_when_stderr_is_not_a_terminal(tmp_path):
    proc = run_mlcv("train", "--model", "softmax", *SMALL, "--set", "train.epochs=3", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("train softmax:") and " epoch " in line]
    assert [line.split(" epoch ")[1].split()[0] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all(" val_acc 0." in line and " loss " in line for line in epochs)
    assert "\r" not in proc.stderr
