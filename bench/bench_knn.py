"""Speed and memory of KNearestNeighbor against a bare matmul and scikit-learn's brute force.

Usage: python bench/bench_knn.py [--zip PATH | --synthetic] [--n-query 10000] [--n-train 40000]
                                 [--l1-query 500] [--repeats 3] [--skip-sklearn]
(a) L2, k=1: ours vs the float32 matmul of the same shapes (target <= 1.3x) and vs sklearn
    KNeighborsClassifier(algorithm="brute") (target >= 1.5x faster); peak extra memory (< 2 GiB).
(b) L1, k=1: ours vs sklearn brute manhattan (target >= 2x faster).
"""
import argparse
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_accuracy import DEFAULT_ZIP, load_cifar_jpeg  # noqa: E402

from mlcv_cli.core.knn import KNearestNeighbor  # noqa: E402


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def peak_extra_bytes(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", default=DEFAULT_ZIP)
    ap.add_argument("--synthetic", action="store_true", help="random uint8 pixels instead of CIFAR-10")
    ap.add_argument("--n-query", type=int, default=10000)
    ap.add_argument("--n-train", type=int, default=40000)
    ap.add_argument("--l1-query", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--only", default="l2,l1")
    args = ap.parse_args()

    if args.synthetic:
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (args.n_train + args.n_query, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, len(X))
    else:
        X, y = load_cifar_jpeg(args.zip)
        X = X.reshape(len(X), -1)
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:args.n_train], perm[args.n_train:args.n_train + args.n_query]
    Xtr, ytr, Xq = X[tr].astype(np.float32), y[tr], X[te].astype(np.float32)
    print(f"train {Xtr.shape}, queries {Xq.shape}, threads: {os.cpu_count()} cpus")
    sk = None
    if not args.skip_sklearn:
        from sklearn.neighbors import KNeighborsClassifier as sk

    if "l2" in args.only:
        knn = KNearestNeighbor(k=1, metric="l2").fit(Xtr, ytr, 10)
        t_ours, (_, ind) = timed(lambda: knn.kneighbors(Xq), args.repeats)
        t_pred, pred = timed(lambda: knn.predict(Xq), args.repeats)
        t_mm, _ = timed(lambda: Xq @ Xtr.T, args.repeats)
        extra = peak_extra_bytes(lambda: knn.kneighbors(Xq))
        print(f"[L2] ours kneighbors(k=1): {t_ours:.2f}s  predict: {t_pred:.2f}s  bare matmul: {t_mm:.2f}s  "
              f"ratio {t_ours / t_mm:.2f}x (target <= 1.3)")
        print(f"[L2] peak extra memory during kneighbors: {extra / 2**20:.0f} MiB (target < 2048)")
        if sk is not None:
            clf = sk(n_neighbors=1, algorithm="brute").fit(Xtr, ytr)
            t_sk, sk_pred = timed(lambda: clf.predict(Xq), args.repeats)
            print(f"[L2] sklearn brute predict: {t_sk:.2f}s  ours is {t_sk / t_pred:.2f}x faster (target >= 1.5); "
                  f"predictions agree on {np.mean(sk_pred == pred):.4f}")

    if "l1" in args.only:
        Xq1 = Xq[:args.l1_query]
        knn = KNearestNeighbor(k=1, metric="l1").fit(Xtr, ytr, 10)
        t_ours, pred = timed(lambda: knn.predict(Xq1), args.repeats)
        print(f"[L1] ours predict ({len(Xq1)} queries): {t_ours:.2f}s")
        if sk is not None:
            clf = sk(n_neighbors=1, algorithm="brute", metric="manhattan").fit(Xtr, ytr)
            t_sk, sk_pred = timed(lambda: clf.predict(Xq1), max(1, min(args.repeats, 2)))
            print(f"[L1] sklearn brute manhattan: {t_sk:.2f}s  ours is {t_sk / t_ours:.2f}x faster (target >= 2); "
                  f"predictions agree on {np.mean(sk_pred == pred):.4f}")


if __name__ == "__main__":
    main()
