"""Which kNN search runs: numba only where it is used, and a clean fallback without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_train=300", "--set", "data.num_val=50", "--set", "data.num_test=100"]


def mlcv(args, tmp_path, **env):
    environ = {**os.environ, "MLCV_DATA_DIR": str(tmp_path / "data"), **env}
    environ.pop("MLCV_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True)


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


def test_knn_searches_raw_pixels_only_when_neighbours_cannot_change():
    from mlcv_cli.core.features.chain import FeatureChain
    from mlcv_cli.models.build import searches_pixels as knn_searches_pixels

    pixels = [("pixels", {"scale": 1 / 255, "subtract_mean": True})]
    assert knn_searches_pixels("knn", FeatureChain(pixels))
    assert knn_searches_pixels("knn", FeatureChain(pixels + [("pixels", {"scale": 2.0, "subtract_mean": False})]))
    assert not knn_searches_pixels("knn", FeatureChain(pixels, standardize=True))  # per-pixel scales reorder
    assert not knn_searches_pixels("knn", FeatureChain([("hog", {})]))
    assert not knn_searches_pixels("softmax", FeatureChain(pixels))


def test_saved_knn_model_keeps_its_memory_budget(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mlcv_cli.models import modelfile
    from mlcv_cli.models.build import estimator_from_file
    from mlcv_cli.cli.app import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["train", "--model", "knn", *SMALL, "--set", "model.max_memory_mb=40", "--json"])
    assert result.exit_code == 0, result.output
    mf = modelfile.load(tmp_path / json.loads(result.stdout)["run_dir"] / "model.npz")
    est = estimator_from_file(mf)
    assert est.max_memory == 40 * 2**20
    assert est.X_train_.dtype == np.uint8 and est.X_train_.shape == (300, 3072)
