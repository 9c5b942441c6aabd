"""A long feature run does not lose its work (issue #21): the run directory exists from the start,
the fitted extractor and every finished chunk of encoded rows are kept in the feature cache, and
`--resume` after a real signal ends with exactly the features, weights and accuracy of a run
nothing interrupted; `mlcv cv` likewise."""

import csv
import json
import signal

import numpy as np
import pytest

from helpers import ROOT, clean_env, run_mlcv, start_mlcv, wait_for

# 3,500 training images (4 chunks of rows) of 16x16 pixels, 100 centroids with mirror: a few seconds
# of encoding, long enough to stop it mid-way.
TRAIN = 3500
KMEANS = ["--config", ROOT / "configs/kmeans-svm.yaml", "--set", f"data.num_train={TRAIN}", "--set", "data.num_test=200",
          "--set", "data.image_size=16", "--set", "features.0.num_centroids=100", "--set", "features.0.num_patches=10000",
          "--set", "features.0.iterations=3", "--set", "train.epochs=4"]


def mlcv(*args, cwd):
    return run_mlcv(*args, cwd=cwd, env=clean_env(MLCV_DATA_DIR=cwd / "data"), timeout=600)


def stopped_while_encoding(cwd, signum, *args):
    """(exit status, stderr) of `mlcv ARGS` sent ``signum`` once the first chunk of rows is kept."""
    proc = start_mlcv(*args, cwd=cwd, env=clean_env(MLCV_DATA_DIR=cwd / "data"))
    wait_for(lambda: list((cwd / "data/features").glob("*.part/0*.npy")), "a chunk of encoded rows", timeout=300, every=0.02,
             proc=proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def results(run):
    """cv_results.csv without its timings."""
    with open(run / "cv_results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(fh)]


def cache_files(cwd):
    return {p.name: p.read_bytes() for p in (cwd / "data/features").glob("*.npy")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The kmeans run that nothing stopped: its run directory and feature cache."""
    cwd = tmp_path_factory.mktemp("full")
    full = mlcv("train", *KMEANS, "--json", cwd=cwd)
    assert full.returncode == 0, full.stderr
    return cwd, cwd / json.loads(full.stdout)["run_dir"]


def test_sigint_while_encoding_then_resume_gives_the_same_features_and_accuracy(tmp_path, uninterrupted):
    rc, err = stopped_while_encoding(tmp_path, signal.SIGINT, "train", *KMEANS)
    assert rc == -signal.SIGINT, err
    assert "stopped while computing the features" in err and "mlcv train --resume" in err and "Traceback" not in err
    if "k-means encoding" in err:  # a bar stopped within its first second writes no line at all
        assert " done in " not in err.split("k-means encoding")[-1]  # the cut-short bar says so
    (run,) = (tmp_path / "runs").iterdir()
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["stage"]) == ("interrupted", "features")
    kept = list((tmp_path / "data/features").glob("*.part/0*.npy"))
    assert kept and list((tmp_path / "data/features").glob("steps-*.npz"))
    assert not list((tmp_path / "data/features").glob("*.json"))  # nothing looks complete
    listed = mlcv("runs", "--json", cwd=tmp_path)
    assert [r["status"] for r in json.loads(listed.stdout)["runs"]] == ["interrupted"]

    resumed = mlcv("train", "--resume", str(run), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    events = [e["cache"] for e in result["features"]["cache"]]
    assert any(e.startswith(f"resumed: {1024 * len(kept)} of {TRAIN} rows") for e in events), events
    assert not list((tmp_path / "data/features").glob("*.part")) and not list((tmp_path / "data/features").glob("steps-*"))

    cwd, full = uninterrupted
    assert cache_files(tmp_path) == cache_files(cwd)  # train, val and test features, bit for bit
    with np.load(run / "model.npz", allow_pickle=False) as a, np.load(full / "model.npz", allow_pickle=False) as b:
        differ = [k for k in a.files if not np.array_equal(a[k], b[k])]
    assert differ == ["config_yaml"], differ  # the weights and the chain, bit for bit; the data dirs differ
    mine, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, full))
    assert [mine[f"{s}_accuracy"] for s in ("train", "val", "test")] == [theirs[f"{s}_accuracy"] for s in ("train", "val", "test")]
    assert json.loads((run / "meta.json").read_text())["status"] == "done"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_hangup_while_encoding_keep_the_run_and_the_chunks(tmp_path, signum):
    rc, err = stopped_while_encoding(tmp_path, signum, "train", *KMEANS)
    assert rc == -signal.SIGTERM, err  # a hang-up ends the process as SIGTERM does
    assert "Resume with: mlcv train --resume" in err and "Traceback" not in err
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    assert list((tmp_path / "data/features").glob("*.part/0*.npy"))


def test_cv_stopped_while_encoding_resumes_to_the_same_results(tmp_path):
    args = ["cv", *KMEANS, "--folds", "2", "--grid", "model.reg=0.003"]
    full_dir = tmp_path / "full"
    full_dir.mkdir()
    full = mlcv(*args, "--json", cwd=full_dir)
    assert full.returncode == 0, full.stderr
    rc, err = stopped_while_encoding(tmp_path, signal.SIGINT, *args)
    assert rc == -signal.SIGINT, err
    assert "while computing the features" in err and "mlcv cv --resume" in err
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    resumed = mlcv("cv", "--resume", str(run), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert results(run) == results(full_dir / json.loads(full.stdout)["run_dir"])
    assert cache_files(tmp_path) == cache_files(full_dir)
