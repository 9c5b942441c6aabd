"""Nothing lost, round 3: messages that name the real cause. A damaged feature-cache entry is
rebuilt, not blamed on the learning rate; a damaged model chain is one line, not a ValueError
traceback; a run that diverged before its first checkpoint is not told to check checkpoint_every.
Real processes and real files."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import clean_env, error_line, run_mlcv as run, sets

KMEANS = ["features.0.type=kmeans", "features.0.num_centroids=8", "features.0.patch_size=3", "features.0.num_patches=400",
          "features.0.mirror=false", "features.0.iterations=3"]


def run_mlcv(tmp_path, *args, timeout=300):
    return run(*args, cwd=tmp_path, env=clean_env(MLCV_DATA_DIR=tmp_path / "data"), timeout=timeout)


def _train(tmp_path, tiny, *extra):
    proc = run_mlcv(tmp_path, "train", "--model", "softmax", *sets(*tiny), *sets(*KMEANS), "--set", "train.epochs=5", "--json", *extra)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def _tamper_chain(data_dir, name, factor):
    (path,) = (data_dir / "features").glob("chain-*.npz")
    arrays = dict(np.load(path))
    arrays[name] = (arrays[name] * factor).astype(arrays[name].dtype)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("name, factor", [("state.scale", 1e-30), ("state.0.whiten_matrix", 1e30),
                                          ("state.mean", 1e6), ("state.0.centroids", np.nan)])
def test_a_damaged_cached_chain_is_rebuilt_not_blamed_on_the_settings(tmp_path, tiny, name, factor):
    clean, first = _train(tmp_path, tiny)
    assert clean.returncode == 0, clean.stderr
    _tamper_chain(tmp_path / "data", name, factor)
    proc, again = _train(tmp_path, tiny)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "diverged" not in proc.stderr
    events = [e["cache"] for e in again["features"]["cache"]]
    assert any(e.startswith("rebuilt") and "is damaged" in e for e in events), events
    assert again["test_accuracy"] == first["test_accuracy"]
    _, third = _train(tmp_path, tiny)  # the rebuilt entry replaced the damaged one
    assert [e["cache"] for e in third["features"]["cache"]][0] == "hit"


def test_a_model_file_whose_chain_gives_nan_is_one_line(tmp_path, tiny):
    proc, result = _train(tmp_path, tiny)
    assert proc.returncode == 0, proc.stderr
    model = tmp_path / result["run_dir"] / "model.npz"
    arrays = dict(np.load(model))
    arrays["features.0.whiten_matrix"] = arrays["features.0.whiten_matrix"] * np.float32(1e30)
    with open(model, "wb") as fh:
        np.savez(fh, **arrays)
    image = next(Path([t for t in tiny if t.startswith("data.path=")][0].split("=", 1)[1]).rglob("*.png"))
    for args in (["evaluate", model.parent], ["predict", model.parent, image]):
        out = run_mlcv(tmp_path, *args)
        assert out.returncode == 1, out.stdout
        error_line(out.stderr, "NaN or infinite", "retrain")


def test_a_zero_filled_feature_cache_file_is_rebuilt_without_pickle_advice(tmp_path, tiny):
    import hashlib

    proc, first = _train(tmp_path, tiny)
    assert proc.returncode == 0
    for path in (tmp_path / "data" / "features").glob("*.npy"):
        path.write_bytes(b"\0" * path.stat().st_size)
        manifest = json.loads(path.with_suffix(".json").read_text())  # made consistent with the zeros
        manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_suffix(".json").write_text(json.dumps(manifest))
    proc, again = _train(tmp_path, tiny)
    assert proc.returncode == 0, proc.stderr
    events = [e["cache"] for e in again["features"]["cache"]]
    assert any("not a .npy array file" in e for e in events), events
    assert not any("pickle" in e for e in events)
    assert again["test_accuracy"] == first["test_accuracy"]


def test_resume_of_a_run_that_diverged_before_its_first_checkpoint_names_the_divergence(tmp_path, tiny):
    # 90 images in minibatches of 10: the loss overflows within the first epoch, before any checkpoint.
    proc = run_mlcv(tmp_path, "train", "--model", "softmax", *sets(*tiny), *sets("train.lr=1e30", "train.batch_size=10"))
    assert proc.returncode == 1
    error_line(proc.stderr, "diverged")
    (run,) = (tmp_path / "runs").iterdir()
    assert not (run / "checkpoint.npz").exists()
    out = run_mlcv(tmp_path, "train", "--resume", run)
    assert out.returncode == 1
    line = error_line(out.stderr, "failed before writing its first checkpoint", "diverged", "lower train.lr")
    assert "checkpoint_every" not in line


def test_resume_of_a_run_trained_without_checkpoints_still_says_so(tmp_path, tiny):
    proc = run_mlcv(tmp_path, "train", "--model", "softmax", *sets(*tiny), *sets("train.epochs=2", "train.checkpoint_every=0"))
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").iterdir()
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    (run / "state.npz").unlink()
    out = run_mlcv(tmp_path, "train", "--resume", run)
    assert out.returncode == 1
    error_line(out.stderr, "checkpoint_every: 0")


def test_resume_of_a_run_killed_before_its_first_checkpoint_says_so(tmp_path, tiny):
    proc = run_mlcv(tmp_path, "train", "--model", "softmax", *sets(*tiny), *sets("train.epochs=2"))
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").iterdir()
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "running"}))  # as a SIGKILL leaves it
    (run / "state.npz").unlink()
    out = run_mlcv(tmp_path, "train", "--resume", run)
    assert out.returncode == 1
    error_line(out.stderr, "killed before writing its first checkpoint")
