"""A long feature run does not lose its work: the run directory exists from the start, the fitted
extractor and every finished chunk of encoded rows are kept in the feature cache, and `--resume`
ends with exactly the features and the accuracy of a run nothing interrupted."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlcv_cli import data as datasets
from mlcv_cli.core.features import kmeans
from mlcv_cli.core.features.chain import FeatureChain
from mlcv_cli.data import feature_chunks
from mlcv_cli.data.feature_cache import FeatureStore
from mlcv_cli.system import locks, signals
from mlcv_cli.system.progress import LineProgress, Pieces

ROOT = Path(__file__).resolve().parents[1]
# 3,500 training images (4 chunks of rows) of 16x16 pixels, 100 centroids with mirror: a few seconds
# of encoding, long enough to stop it mid-way.
TRAIN = 3500
KMEANS = ["--config", str(ROOT / "configs/kmeans-svm.yaml"), "--set", f"data.num_train={TRAIN}", "--set", "data.num_test=200",
          "--set", "data.image_size=16", "--set", "features.0.num_centroids=100", "--set", "features.0.num_patches=10000",
          "--set", "features.0.iterations=3", "--set", "train.epochs=4"]


def one_cpu():
    """Each mlcv process here runs on one CPU: the k-means encoder's compiled kernel (fastmath), run
    by two worker threads at once, gives about one encoding in 25 that differs from another in a
    few rows (by 1e-5), which would hide what these tests check: that an interrupted and resumed
    run computes exactly what an uninterrupted one does."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _env(cwd):
    env = {**os.environ, "MLCV_DATA_DIR": str(cwd / "data")}
    env.pop("MLCV_DEBUG", None)
    return env


def mlcv(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *args], cwd=cwd, env=_env(cwd), capture_output=True,
                          text=True, timeout=600, preexec_fn=one_cpu)


def stopped_while_encoding(cwd, signum, *args):
    """(exit status, stderr) of `mlcv ARGS` sent ``signum`` once the first chunk of rows is kept."""
    proc = subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *args], cwd=cwd, env=_env(cwd), preexec_fn=one_cpu,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((cwd / "data/features").glob("*.part/0*.npy")):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1]
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


# -- in process: the feature cache's work in progress ----------------------------------------------


@pytest.fixture(scope="module")
def images():
    return datasets.load_sample(32).train_x[:150]


@pytest.fixture(autouse=True)
def _small_chunks_one_thread(monkeypatch):
    """Chunks of 64 rows, so 150 images make three; one encoder thread (see one_cpu)."""
    monkeypatch.setattr(feature_chunks, "CHUNK_ROWS", 64)
    monkeypatch.setattr(kmeans, "cpu_count", lambda: 1)


def kmeans_chain():
    return FeatureChain([("kmeans", {"num_centroids": 20, "num_patches": 2000, "iterations": 2, "mirror": True})])


def interrupted_after(rows):
    """A progress factory that raises KeyboardInterrupt once ``rows`` images are encoded (a Ctrl-C)."""
    count = [0]

    class Bar:
        def __init__(self, total, desc):
            self.desc = desc

        def update(self, n=1, **postfix):
            if self.desc == "k-means encoding" and not postfix:
                count[0] += n
                if count[0] >= rows:
                    raise KeyboardInterrupt

        def close(self):
            pass

    return Bar


def test_rows_do_not_depend_on_the_chunks_they_are_encoded_in(images):
    chain = kmeans_chain().fit_steps(images)
    whole = chain.encode(images)
    for rows in (64, 50, 7):
        assert np.array_equal(np.concatenate([chain.encode(images[s:s + rows]) for s in range(0, len(images), rows)]), whole)


def test_an_interrupted_fit_keeps_its_extractor_and_chunks_and_goes_on_from_them(tmp_path, images):
    reference_chain, reference = FeatureStore(None).fit(kmeans_chain(), images)
    store = FeatureStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.fit(kmeans_chain(), images, interrupted_after(100))
    assert [p.name for p in tmp_path.glob("*.part/0*.npy")] == ["0000000000.npy"]  # 64 rows, the second chunk cut short
    assert len(list(tmp_path.glob("steps-*.npz"))) == 1 and not list(tmp_path.glob("*.json"))
    (tmp_path / next(tmp_path.glob("*.part")).name / ".0000000064.npy.x1y2z3.tmp").write_bytes(b"torn")  # a killed writer's

    again = FeatureStore(tmp_path)
    chain, X = again.fit(kmeans_chain(), images)
    outcomes = [e["cache"] for e in again.events]
    assert outcomes[0].startswith("resumed: the fitted extractors") and outcomes[1] == "resumed: 64 of 150 rows were kept by an interrupted run"
    assert np.array_equal(X, reference) and chain.fingerprint() == reference_chain.fingerprint()
    assert sorted(p.name.split("-")[0] if p.name.startswith("chain-") else p.suffix for p in tmp_path.iterdir()
                  if not p.name.startswith(".")) == [".json", ".npy", "chain"]  # the work in progress is gone


def test_a_transform_interrupted_goes_on_from_its_chunks(tmp_path, images):
    store = FeatureStore(tmp_path)
    chain, _ = store.fit(kmeans_chain(), images[:50])
    expected = chain.transform(images)
    with pytest.raises(KeyboardInterrupt):
        store.transform(chain, images, interrupted_after(130), "test")
    again = FeatureStore(tmp_path)
    X = again.transform(chain, images, None, "test")
    assert np.array_equal(X, expected) and again.events[0]["cache"].startswith("resumed: 128 of 150")
    assert not list(tmp_path.glob("*.part"))


def test_a_part_directory_for_other_rows_is_rebuilt_not_used(tmp_path, images):
    store = FeatureStore(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        store.fit(kmeans_chain(), images, interrupted_after(100))
    manifest = next(tmp_path.glob("*.part")) / feature_chunks.MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "chunk_rows": 7}))
    again = FeatureStore(tmp_path)
    _, X = again.fit(kmeans_chain(), images)
    assert any("was written for other rows" in e["cache"] for e in again.events)
    assert np.array_equal(X, FeatureStore(None).fit(kmeans_chain(), images)[1])


def test_a_mapped_entry_is_in_use_until_it_is_released(tmp_path, images):
    store = FeatureStore(tmp_path)
    chain, _ = store.fit(kmeans_chain(), images[:40])
    X = FeatureStore(tmp_path).transform(chain, images[:40])
    (npy,) = tmp_path.glob("*.npy")
    assert isinstance(X, np.memmap) and locks.in_use(npy)
    del X
    assert not locks.in_use(npy)


# -- progress lines in a log -----------------------------------------------------------------------


def test_log_lines_of_a_long_stage_say_rate_and_eta_and_a_stop_is_not_done():
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(48500, "k-means encoding", stream=out, clock=lambda: now[0])
    bar.update(500, resumed=500)  # done by the interrupted run: not this process's rate
    now[0] = 40.0
    bar.update(15000)
    try:
        try:
            raise KeyboardInterrupt
        finally:
            bar.close()
    except KeyboardInterrupt:
        pass
    assert out.getvalue().splitlines() == [
        "k-means encoding: 500/48500 resumed 500",
        "k-means encoding: 15500/48500 31% 375/s ETA 1 min 28 s",
        "k-means encoding: 15500/48500 stopped after 40.0 s",
    ]


def test_pieces_show_one_bar_for_the_whole_work():
    opened = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.count, self.closed = total, desc, 0, False
            opened.append(self)

        def update(self, n=1, **postfix):
            self.count += n

        def close(self):
            self.closed = True

    pieces = Pieces(Bar, 2500, done=1024)
    for size in (1024, 452):
        bar = pieces.piece(size)(size, "k-means encoding")
        bar.update(size)
        bar.close()
    assert [(b.total, b.count, b.closed) for b in opened] == [(2500, 1024 + 1024 + 452, False)]
    pieces.close()
    assert opened[0].closed


def test_a_signal_during_a_deferred_block_takes_effect_after_it():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished.append(True)
    assert finished == [True]
