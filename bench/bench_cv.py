"""Cross-validation speed, measured in one run (ratios; timings here are noisy).

(a) 5-fold, ten-value k sweep on the 5,000 sample training images: mlcv's many-k path
    (one kNN pass per fold) against ten separate scikit-learn GridSearchCV fits of
    KNeighborsClassifier (one per k, brute force, the same stratified folds).
(b) A linear-model grid with --jobs 2 against --jobs 1.
(c) With --full DATA_DIR: `mlcv cv --model knn --folds 5 --grid model.k=1,...,100` on all 50,000
    CIFAR-10 training images (the shared JPEGs, imported into DATA_DIR as a folder on first
    use), for L2 and L1, end to end as a subprocess with its peak memory (target < 3 GiB); L2
    against five single k=1 searches of the same sizes (target <= 1.3x), L1 under 5 minutes;
    and for one fold the top-k selection (k=100 against k=1) and voting measured apart.

    python bench/bench_cv.py [--repeats 3] [--full DATA_DIR [--zip PATH] [--only-full]]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.core.knn import KNearestNeighbor
from mlcv_cli.core.model_selection import stratified_kfold
from mlcv_cli.data import load_sample

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = REPO.parent / "shared" / "data" / "cifar10-train-jpeg.zip"  # or pass --zip
FULL_NAME = "cifar10jpg"
# Peak memory of the child process: ru_maxrss of RUSAGE_CHILDREN covers only that child
# when a fresh interpreter waits for it.
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "print(done.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.stderr.write(done.stderr[-2000:]); print(done.stdout)\n"
)

KS = [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--full", metavar="DATA_DIR", help="also run (c) on the 50,000 JPEGs, imported into DATA_DIR")
    parser.add_argument("--zip", default=str(DEFAULT_ZIP), help="the 50,000-image JPEG zip for --full")
    parser.add_argument("--only-full", action="store_true", help="skip (a) and (b)")
    args = parser.parse_args()
    if args.full:
        with open("/proc/loadavg") as f:
            print(f"load average {' '.join(f.read().split()[:3])} on {os.cpu_count()} cpus")
    if args.only_full:
        return full_sweep(args)

    ds = load_sample()
    X, y = ds.train_x, ds.train_y
    print(f"data: {len(y)} sample training images, D={X[0].size}")
    with tempfile.TemporaryDirectory() as tmp:
        knn_cfg = config.replace(
            config.resolve(model_type="knn"),
            {"data.num_val": 0, "cv.folds": 5, "cv.grid": {"model.k": KS}, "output.dir": tmp},
        )
        t_ours, res = timed(lambda: crossval.cross_validate(knn_cfg), args.repeats)
        print(f"(a) mlcv cv, 10 k x 5 folds (kNN L2):          {t_ours:7.2f} s  best k={res['best_params']['model.k']} {100 * res['best_mean']:.2f}%")
        if not args.skip_sklearn:
            from sklearn.model_selection import GridSearchCV, StratifiedKFold
            from sklearn.neighbors import KNeighborsClassifier

            Xf = X.reshape(len(X), -1).astype(np.float32)

            def sk():
                scores = {}
                for k in KS:
                    gs = GridSearchCV(
                        KNeighborsClassifier(algorithm="brute"),
                        {"n_neighbors": [k]},
                        cv=StratifiedKFold(5, shuffle=True, random_state=0),
                        n_jobs=1,
                    )
                    gs.fit(Xf, y)
                    scores[k] = gs.best_score_
                return scores

            t_sk, sk_scores = timed(sk, max(1, args.repeats - 2))
            best_k = max(sk_scores, key=sk_scores.get)
            print(f"    sklearn, 10 GridSearchCV fits (brute):       {t_sk:7.2f} s  best k={best_k} {100 * sk_scores[best_k]:.2f}%")
            print(f"    speed-up: {t_sk / t_ours:.1f}x (target >= 5x)")

        # The shipped softmax config's own grid: 3 lr x 3 reg, 5 folds, 20 epochs each.
        shipped = Path(__file__).resolve().parents[1] / "configs" / "softmax.yaml"
        lin_cfg = config.replace(config.resolve(shipped), {"data.num_val": 0, "output.dir": tmp})
        t1, r1 = timed(lambda: crossval.cross_validate(lin_cfg, n_jobs=1), args.repeats)
        t2, r2 = timed(lambda: crossval.cross_validate(lin_cfg, n_jobs=2), args.repeats)
        same = [s["folds"] for s in r1["summary"]] == [s["folds"] for s in r2["summary"]]
        print(f"(b) configs/softmax.yaml grid, 9 points x 5 folds: --jobs 1 {t1:7.2f} s, --jobs 2 {t2:7.2f} s: {t1 / t2:.2f}x (target >= 1.6x); identical results: {same}")
    if args.full:
        return full_sweep(args)
    return 0


def mlcv(*args):
    return [sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)]


def full_sweep(args):
    data_dir = Path(args.full)
    if not (data_dir / "folders" / FULL_NAME).exists():
        t = time.perf_counter()
        subprocess.run(mlcv("download", "folder", args.zip, "--name", FULL_NAME, "--data-dir", data_dir), check=True)
        print(f"imported {args.zip} as {FULL_NAME} in {time.perf_counter() - t:.1f} s")
    from mlcv_cli.data import load_imported

    ds = load_imported(data_dir, FULL_NAME)
    X, y = ds.train_x.reshape(len(ds.train_y), -1), np.asarray(ds.train_y, np.int64)
    print(f"(c) {len(y)} training images, 5 folds, k in {KS}")
    folds = stratified_kfold(y, 5, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for metric in ("l2", "l1"):
            cmd = mlcv("cv", "--model", "knn", "--folds", 5, "--grid", "model.k=" + ",".join(map(str, KS)),
                       "--set", "data.dataset=folder", "--set", f"data.path={FULL_NAME}", "--set", "data.num_val=0",
                       "--set", "data.num_test=0",  # all 50,000 images in the folds, none carved off
                       "--set", f"model.metric={metric}", "--set", f"output.dir={tmp}", "--data-dir", data_dir, "--json")
            out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True)
            rc, wall, rss_kb = out.stdout.split("\n", 1)[0].split()
            result = json.loads(out.stdout.split("\n", 1)[1]) if rc == "0" else {}
            if rc != "0":
                print(out.stderr)
                continue
            best = result["best_params"]["model.k"]
            print(f"    mlcv cv {metric}: {float(wall):7.1f} s end to end ({result['time_s']:.1f} s in cross_validate), "
                  f"peak memory {int(rss_kb) / 2**20:.2f} GiB (target < 3); best k={best} {100 * result['best_mean']:.2f}%")
            if metric == "l2":
                searches = []
                for train_idx, val_idx in folds:
                    est = KNearestNeighbor(k=1, metric="l2").fit(X[train_idx], y[train_idx], 10)
                    t = time.perf_counter()
                    est.kneighbors(X[val_idx], return_distance=False)
                    searches.append(time.perf_counter() - t)
                print(f"    five single k=1 L2 searches of the same sizes: {sum(searches):7.1f} s; "
                      f"cv / searches = {result['time_s'] / sum(searches):.2f}x (target <= 1.3)")
            else:
                print(f"    L1 end to end {float(wall) / 60:.1f} min (target < 5 min)")
        # One fold: the search with k=1, with k=max(KS), and the votes for every k.
        train_idx, val_idx = folds[0]
        for metric in ("l2", "l1"):
            est = KNearestNeighbor(k=1, metric=metric).fit(X[train_idx], y[train_idx], 10)
            t = time.perf_counter()
            est.kneighbors(X[val_idx], k=1, return_distance=False)
            t1 = time.perf_counter() - t
            t = time.perf_counter()
            ind = est.kneighbors(X[val_idx], k=max(KS), return_distance=False)
            t100 = time.perf_counter() - t
            t = time.perf_counter()
            from mlcv_cli.core.knn import vote

            labels = est.y_train_[ind]
            for k in KS:
                vote(labels[:, :k], 10)
            t_vote = time.perf_counter() - t
            print(f"    one fold, {metric}: search k=1 {t1:.2f} s, k={max(KS)} {t100:.2f} s "
                  f"(selection overhead {100 * (t100 - t1) / t1:+.1f}%), votes for {len(KS)} k {t_vote * 1000:.0f} ms")
    with open("/proc/loadavg") as f:
        print(f"load average {' '.join(f.read().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
