"""Cross-validation speed, measured in one run (ratios; timings here are noisy).

(a) 5-fold, ten-value k sweep on the 5,000 sample training images: mlcv's many-k path
    (one kNN pass per fold) against ten separate scikit-learn GridSearchCV fits of
    KNeighborsClassifier (one per k, brute force, the same stratified folds).
(b) A linear-model grid with --jobs 2 against --jobs 1.

    python bench/bench_cv.py [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcv_cli import config, crossval
from mlcv_cli.datasets import load_sample

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
    args = parser.parse_args()

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
