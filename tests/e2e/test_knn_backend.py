"""Which kNN search runs: numba only where it is used, and a clean fallback without it."""

import json
import os
import subprocess
import sys

import numpy as np

from helpers import ROOT, clean_env, run_mlcv, sets

SMALL = sets("data.num_train=300", "data.num_val=50", "data.num_test=100")


def mlcv(args, tmp_path, **env):
    return run_mlcv(*args, cwd=tmp_path, env=clean_env(MLCV_DATA_DIR=tmp_path / "data", **env))


def test_help_and_linear_models_do_not_import_numba(tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from mlcv_cli.cli.app import cli\n"
        "assert 'numba' not in sys.modules, 'import mlcv_cli.cli.app'\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0 and 'numba' not in sys.modules, 'mlcv --help'\n"
        f"r = CliRunner().invoke(cli, ['train', '--model', 'softmax', '--set', 'train.epochs=1', *{SMALL!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'numba' not in sys.modules, 'softmax train'\n"
    )
    env = {**os.environ, "MLCV_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_cli_falls_back_to_numpy_with_a_note_and_the_same_answers(tmp_path):
    args = ["train", "--config", ROOT / "configs/knn.yaml", *SMALL, "--set", "model.metric=l1", "--set", "model.k=5", "--json"]
    fast = mlcv([*args, "--set", "output.name=fast"], tmp_path)
    slow = mlcv([*args, "--set", "output.name=slow"], tmp_path, MLCV_NO_JIT="1")
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    assert "Note" not in fast.stderr and "Traceback" not in slow.stderr
    notes = [line for line in slow.stderr.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "MLCV_NO_JIT" in notes[0]
    runs = [tmp_path / json.loads(r.stdout)["run_dir"] for r in (fast, slow)]
    metrics = [json.loads((rd / "metrics.json").read_text()) for rd in runs]
    for split in ("val", "test"):
        assert metrics[0]["splits"][split]["confusion_matrix"] == metrics[1]["splits"][split]["confusion_matrix"]
    # predict on the slow path, with the model the fast path trained: the votes of its 5 neighbours
    first = tmp_path / "first.png"
    from PIL import Image

    with np.load(runs[0] / "model.npz", allow_pickle=False) as npz:
        Image.fromarray(npz["X_train"][0].reshape(32, 32, 3)).save(first)
    slow_predict = mlcv(["predict", runs[0], first, "--json", "--top", "10"], tmp_path, MLCV_NO_JIT="1")
    assert slow_predict.returncode == 0, slow_predict.stderr
    assert slow_predict.stderr.count("Note:") == 1
    top = json.loads(slow_predict.stdout)["predictions"][0]["top"]
    assert sum(t["votes"] for t in top) == 5
