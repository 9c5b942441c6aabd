"""What scripts and logs get from mlcv: JSON on failure too, plain progress lines in a log."""

import io
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mlcv_cli.cli import common
from mlcv_cli.workflow import train as training
from mlcv_cli.cli.app import cli
from mlcv_cli.errors import TrainingInterrupted
from mlcv_cli.system.progress import LineProgress

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_train=400", "--set", "data.num_test=100"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=False)


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
    proc = subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", "train", "--model", "softmax", *SMALL,
                           "--set", "train.epochs=3"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("train softmax:") and " epoch " in line]
    assert [line.split(" epoch ")[1].split()[0] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all(" val_acc 0." in line and " loss " in line for line in epochs)
    assert "\r" not in proc.stderr


def test_line_progress_writes_milestones_and_a_heartbeat():
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(10, "cv knn", stream=out, clock=lambda: now[0])
    bar.update(1)
    bar.update(1, job="g0-f0", acc="0.250")
    now[0] = 45.0
    bar.update(1)  # no milestone, but a long silence: a line shows it is alive
    bar.close()
    assert out.getvalue().splitlines() == ["cv knn: 2/10 job g0-f0 acc 0.250", "cv knn: 3/10", "cv knn: 3/10 done in 45.0 s"]


def _lbfgs_log(total, epochs, seconds_each):
    """Epoch numbers in the log lines of an L-BFGS-like run (one iteration per epoch)."""
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(total, "train softmax", stream=out, clock=lambda: now[0])
    for epoch in range(1, epochs + 1):
        now[0] += seconds_each
        bar.update(1, loss="1.5")
        bar.update(0, epoch=f"{epoch}/{total}", loss="1.5", val_acc="0.400")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith(f"train softmax: {epochs}/{total} done in ")
    assert all(line.endswith("loss 1.5 val_acc 0.400") for line in lines[:-1])
    # The amount is the step count of that epoch, for a held (written at close) epoch too.
    assert all(line.split(": ")[1].split("/")[0] == line.split(" epoch ")[1].split("/")[0] for line in lines[:-1])
    return [int(line.split(" epoch ")[1].split("/")[0]) for line in lines[:-1]]


def test_line_progress_writes_fast_epochs_per_tenth_slow_ones_each_and_always_the_last():
    # Before: 300 lines for 300 L-BFGS iterations.
    assert _lbfgs_log(300, 300, 0.1) == list(range(30, 301, 30))
    assert _lbfgs_log(300, 228, 0.1) == [*range(30, 211, 30), 228]  # converged early: its last epoch still shows
    assert _lbfgs_log(300, 4, 6.0) == [1, 2, 3, 4]  # epochs of seconds each keep a line each
    assert _lbfgs_log(3, 3, 0.1) == [1, 2, 3]
    assert _lbfgs_log(1000, 123, 1.0) == [*range(5, 121, 5), 123]  # at most one every EPOCH_GAP_S seconds


def test_terminal_bar_keeps_validation_accuracy_beside_the_loss(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = common.progress_factory()(20, "train softmax")
    bar.update(0, epoch="1/2", loss="2.1", val_acc="0.310")
    bar.update(1, loss="1.9")
    assert "val_acc=0.310" in bar.tqdm.postfix and "loss=1.9" in bar.tqdm.postfix
    bar.close()
