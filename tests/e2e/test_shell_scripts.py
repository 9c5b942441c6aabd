"""mlcv inside shell batch scripts: Ctrl-C stops the whole loop, not only the current run."""

import glob
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

import helpers
from helpers import ROOT

MLCV = shlex.join(helpers.MLCV)


def _default_sigint():
    # A job started in the background inherits SIGINT ignored; a terminal's script does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(script, cwd, until=None, signum=signal.SIGINT, timeout=120):
    """Run a bash script in its own process group; once ``until()`` holds, signal the group like Ctrl-C."""
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint)
    if until is not None:
        deadline = time.time() + timeout
        while time.time() < deadline and not until() and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signum)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_ctrl_c_in_a_training_loop_stops_the_loop_with_a_checkpoint(tmp_path):
    script = f"""
for lr in 1e-3 2e-3 3e-3; do
  {MLCV} train --config {ROOT}/configs/svm.yaml --set train.lr=$lr --set data.num_train=1000 --set train.epochs=400
  echo "after lr=$lr status $?"
done
echo "loop went on"
"""
    rc, out, err = run_script(script, tmp_path, until=lambda: glob.glob(str(tmp_path / "runs/*/checkpoint.npz")))
    assert rc == -signal.SIGINT, (out, err)
    assert "after lr" not in out and "loop went on" not in out
    [run] = list((tmp_path / "runs").iterdir())
    assert (run / "checkpoint.npz").is_file()
    assert f"Resume with: mlcv train --resume runs/{run.name}" in err
    assert "Interrupted: stopped after iteration" in err and "Traceback" not in err


# Each command, made to receive the signal while it works (the command's pipeline call is
# replaced by one that signals the process), inside a loop of two.
COMMANDS = {
    "download": ("mlcv_cli.data.cifar10", "prepare_cifar10", ["download", "cifar10"]),
    "evaluate": ("mlcv_cli.workflow.evaluate", "evaluate", ["evaluate", "."]),
    "predict": ("mlcv_cli.workflow.predict", "predict", ["predict", ".", "x.png"]),
    "cv": ("mlcv_cli.workflow.cv.run", "cross_validate", ["cv", "--model", "knn"]),
    "train": ("mlcv_cli.workflow.train", "train", ["train", "--model", "svm"]),
}


def _signalling_program(command, signum, to_group):
    """Python code running `mlcv COMMAND` whose pipeline call raises ``signum`` while it works."""
    module, func, argv = COMMANDS[command]
    kill = f"os.killpg(os.getpgid(0), {int(signum)})" if to_group else f"os.kill(os.getpid(), {int(signum)})"
    return (
        f"import importlib, os, signal; m = importlib.import_module({module!r}); "
        f"setattr(m, {func!r}, lambda *a, **k: ({kill}, signal.pause())); "
        f"from mlcv_cli.cli.app import main; main({argv!r})"
    )


# train is covered for real above.
@pytest.mark.parametrize("command", ["cv", "download", "evaluate", "predict"])
def test_ctrl_c_stops_a_loop_over_any_command(tmp_path, command):
    # Ctrl-C reaches the whole process group: the shell and the mlcv it waits for.
    program = _signalling_program(command, signal.SIGINT, to_group=True)
    script = f"""
for i in 1 2; do
  {shlex.quote(sys.executable)} -c {shlex.quote(program)}
  echo "after $i status $?"
done
"""
    rc, out, err = run_script(script, tmp_path)
    assert rc == -signal.SIGINT and "after" not in out, (out, err)
    assert "Interrupted" in err and "Traceback" not in err


# train and cv are covered for real in test_interrupt.py.
@pytest.mark.parametrize("command", ["download", "predict"])
def test_sigterm_ends_a_command_by_sigterm(tmp_path, command):
    program = _signalling_program(command, signal.SIGTERM, to_group=False)
    proc = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          preexec_fn=_default_sigint)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "Interrupted" in proc.stderr and "Traceback" not in proc.stderr
