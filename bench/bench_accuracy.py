"""Accuracy of kNN, SVM and softmax on the CIFAR-10 JPEG training set (40,000 train / 10,000 test).

Usage: python bench/bench_accuracy.py [--zip PATH] [--only knn,svm,softmax] [--knn-test N]
Decoded pixels are cached in /tmp so only the first run pays for JPEG decoding.
"""
import argparse
import io
import os
import sys
import time
import zipfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DEFAULT_ZIP = os.path.join(REPO, "..", "shared", "data", "cifar10-train-jpeg.zip")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar_jpeg(path=DEFAULT_ZIP, cache_dir="/tmp"):
    """Return (X uint8 (50000, 32, 32, 3), y int64 (50000,)) in sorted file-name order."""
    stat = os.stat(path)
    cache = os.path.join(cache_dir, f"mlcv_cifar_jpeg_{stat.st_size}_{int(stat.st_mtime)}.npz")
    if os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as f:
            return f["X"], f["y"]
    from PIL import Image

    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        X = np.empty((len(names), 32, 32, 3), np.uint8)
        y = np.empty(len(names), np.int64)
        for i, name in enumerate(names):
            with Image.open(io.BytesIO(zf.read(name))) as im:
                X[i] = np.asarray(im.convert("RGB"))
            y[i] = CLASSES.index(name.split("/")[-2])
    tmp = cache + f".{os.getpid()}.tmp.npz"
    np.savez(tmp, X=X, y=y)
    os.replace(tmp, cache)
    return X, y


def split(X, y, num_test=10000, seed=0):
    """A seeded shuffle, then the last num_test images are the test set."""
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, te = perm[:-num_test], perm[-num_test:]
    return X[tr], y[tr], X[te], y[te]


if __name__ == "__main__" and "--load-only" in sys.argv:
    t = time.perf_counter()
    X, y = load_cifar_jpeg(sys.argv[sys.argv.index("--load-only") + 1] if len(sys.argv) > 2 else DEFAULT_ZIP)
    print(X.shape, np.bincount(y), f"{time.perf_counter() - t:.1f}s")


# Found by a search on a 35,000/5,000 train/validation split of the training part (momentum 0.9,
# init_scale 1e-3, seed 0; inputs scaled to [0, 1] with the training mean image subtracted).
SVM_PARAMS = dict(loss="svm", optimizer="momentum", lr=3e-3, reg=3e-3, batch_size=200, epochs=20, lr_decay=0.85)
SOFTMAX_PARAMS = dict(loss="softmax", optimizer="momentum", lr=1e-2, reg=1e-3, batch_size=200, epochs=20, lr_decay=0.9)


def preprocess(X_train, X_test):
    """Scale pixels to [0, 1] and subtract the training mean image; returns float32 (N, 3072)."""
    Xtr = X_train.reshape(len(X_train), -1).astype(np.float32) / np.float32(255)
    Xte = X_test.reshape(len(X_test), -1).astype(np.float32) / np.float32(255)
    mean = Xtr.mean(axis=0)
    return Xtr - mean, Xte - mean


def run_linear(params, Xtr, ytr, Xte, yte):
    from mlcv_cli.core.linear import LinearClassifier

    t = time.perf_counter()
    clf = LinearClassifier(**params).fit(Xtr, ytr, num_classes=10)
    elapsed = time.perf_counter() - t
    return clf.score(Xte, yte), clf.score(Xtr, ytr), elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", default=DEFAULT_ZIP)
    ap.add_argument("--only", default="knn,svm,softmax")
    ap.add_argument("--knn-test", type=int, default=10000, help="test images used for kNN (it is the slow one)")
    ap.add_argument("--set", action="append", default=[], help="override a linear hyperparameter, e.g. lr=1e-3")
    args = ap.parse_args()
    X, y = load_cifar_jpeg(args.zip)
    X_train, y_train, X_test, y_test = split(X, y)
    print(f"train {len(y_train)}, test {len(y_test)}")
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = value if key in ("optimizer", "penalty") else (int(value) if value.isdigit() else float(value))
    if "knn" in args.only:
        from mlcv_cli.core.knn import KNearestNeighbor

        n = args.knn_test
        t = time.perf_counter()
        acc = KNearestNeighbor(k=1, metric="l1").fit(X_train, y_train, 10).score(X_test[:n], y_test[:n])
        print(f"kNN L1 k=1: test acc {acc:.4f} on {n} test images, {time.perf_counter() - t:.1f}s")
    Xtr, Xte = preprocess(X_train, X_test)
    for name, params in (("svm", SVM_PARAMS), ("softmax", SOFTMAX_PARAMS)):
        if name in args.only:
            params = {**params, **overrides}
            acc, tr_acc, elapsed = run_linear(params, Xtr, y_train, Xte, y_test)
            print(f"{name}: test acc {acc:.4f} (train {tr_acc:.4f}), fit {elapsed:.1f}s, params {params}")


if __name__ == "__main__" and "--load-only" not in sys.argv:
    main()
