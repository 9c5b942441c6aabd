"""Feature extractors on the CIFAR-10 JPEG training set (40,000 train / 10,000 test): accuracy, stage times, memory.

Usage: python bench/bench_features.py [--zip PATH] [--only hog,kmeans] [--centroids 1600,4000]
       [--num-train N] [--num-test N] [--reg R] [--kmeans-iterations N] [--mirror] [--no-sklearn]
Prints, per path: stage times, the encoding time against the bare float32 matrix products it
needs (measured in the same run), the encoding's peak memory beyond its output, mlcv's
softmax (L-BFGS) accuracy and scikit-learn's LogisticRegression(lbfgs) on the same features.
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from bench_accuracy import DEFAULT_ZIP, load_cifar_jpeg, split  # noqa: E402

from mlcv_cli.core.features.color_hist import ColorHistogram  # noqa: E402
from mlcv_cli.core.features.hog import HOG  # noqa: E402
from mlcv_cli.core.features.kmeans import KMeansFeatures, patch_grid  # noqa: E402
from mlcv_cli.core.linear import LinearClassifier  # noqa: E402

MiB = 2**20


class Stages:
    """Wall-clock and CPU seconds (all threads of this process) of each named stage."""

    def __init__(self):
        self.times = {}
        self.cpu = {}

    def run(self, name, fn, *args, **kw):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        self.times[name] = time.perf_counter() - t
        self.cpu[name] = time.process_time() - c
        print(f"  {name:<34s} {self.times[name]:8.1f} s wall {self.cpu[name]:8.1f} s cpu", flush=True)
        return out


def traced(fn, *args):
    """fn(*args) and the peak bytes NumPy allocated meanwhile (tracemalloc sees NumPy buffers)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        out = fn(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak


def standardize(F_train, F_test):
    """Scale each feature to zero mean and unit variance on the training features (in place)."""
    mean = F_train.mean(axis=0, dtype=np.float64)
    scale = np.sqrt(F_train.var(axis=0, dtype=np.float64) + 0.01)
    for F in (F_train, F_test):
        F -= mean.astype(np.float32)
        F /= scale.astype(np.float32)


def select_reg(stages, F_train, y_train, regs, iterations):
    """The reg of the best validation accuracy on the last 5,000 (at most a fifth) training examples."""
    held_out = min(5000, len(y_train) // 5)
    if len(regs) == 1:
        return regs[0]
    best = None
    for reg in regs:
        clf = stages.run(f"select: train reg={reg:g}", LinearClassifier(
            loss="softmax", optimizer="lbfgs", reg=reg, epochs=iterations).fit,
            F_train[:-held_out], y_train[:-held_out], 10)
        acc = clf.score(F_train[-held_out:], y_train[-held_out:])
        print(f"  select: reg={reg:g} validation {acc:.4f} ({clf.n_iter_} iterations)")
        if best is None or acc > best[0]:
            best = (acc, reg)
    return best[1]


def linear_models(stages, F_train, y_train, F_test, y_test, regs, iterations, with_sklearn):
    reg = select_reg(stages, F_train, y_train, regs, iterations)
    clf = stages.run("train mlcv softmax (lbfgs)", LinearClassifier(
        loss="softmax", optimizer="lbfgs", reg=reg, epochs=iterations).fit, F_train, y_train, 10)
    acc = stages.run("evaluate", clf.score, F_test, y_test)
    print(f"  mlcv softmax lbfgs reg={reg:g}: test {acc:.4f}, train {clf.score(F_train, y_train):.4f}, "
          f"{clf.n_iter_} iterations, converged {clf.converged_}")
    if with_sklearn:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # n_iter_ is printed instead

        # Same objective: sklearn minimises C * sum(CE) + |W|^2 / 2, mlcv mean(CE) + reg |W|^2.
        sk = LogisticRegression(C=1.0 / (2 * reg * len(y_train)), max_iter=iterations, tol=1e-6)
        stages.run("train sklearn LogisticRegression", sk.fit, F_train, y_train)
        sk_acc = sk.score(F_test, y_test)
        print(f"  sklearn LogisticRegression(lbfgs) C={sk.C:.4g}: test {sk_acc:.4f}, "
              f"{int(np.max(sk.n_iter_))} iterations; mlcv - sklearn = {100 * (acc - sk_acc):+.2f} points")
    return acc


def bench_hog(X_train, y_train, X_test, y_test, args):
    print("HOG + colour histogram")
    stages = Stages()
    hog, hist = HOG(orientations=9, cell_size=4, block_size=2), ColorHistogram(bins=10)
    parts = []
    for name, ex in (("hog", hog), ("color_hist", hist)):
        ex.fit(X_train)
        parts.append((stages.run(f"{name} train", ex.transform, X_train), stages.run(f"{name} test", ex.transform, X_test)))
    F_train = np.hstack([p[0] for p in parts])
    F_test = np.hstack([p[1] for p in parts])
    print(f"  features: {F_train.shape[1]}")
    standardize(F_train, F_test)
    linear_models(stages, F_train, y_train, F_test, y_test, args.hog_reg, args.iterations, not args.no_sklearn)
    print(f"  total {sum(stages.times.values()):.1f} s wall, {sum(stages.cpu.values()):.1f} s cpu")


def bare_products(extractor, images):
    """Time of the float32 (patches x d) @ (d x K) products that encoding these images needs,
    with NumPy's BLAS on all cores, in the same blocks of images as the encoder (twice as
    many with mirror: the mirror images are encoded too)."""
    rows, cols = patch_grid(images.shape[1:], extractor.patch_size, extractor.stride)
    d = extractor.patch_size ** 2 * images.shape[3]
    K = extractor.num_centroids
    P = rows * cols
    per_block = 8
    X = np.random.default_rng(0).standard_normal((per_block * P, d)).astype(np.float32)
    Ct = np.ascontiguousarray(extractor.centroids_.T)
    G = np.empty((per_block * P, K), np.float32)
    t = time.perf_counter()
    for _ in range(2 if extractor.mirror else 1):
        for start in range(0, len(images), per_block):
            n = min(per_block, len(images) - start) * P
            np.matmul(X[:n], Ct, out=G[:n])
    return time.perf_counter() - t


def bench_kmeans(X_train, y_train, X_test, y_test, K, args):
    print(f"k-means features, {K} centroids, {args.kmeans_iterations} k-means iterations"
          + (", mirror (each image and its mirror image, averaged)" if args.mirror else ""))
    stages = Stages()
    ex = KMeansFeatures(num_centroids=K, patch_size=6, stride=1, num_patches=args.patches,
                        iterations=args.kmeans_iterations, seed=0, mirror=args.mirror)
    stages.run("fit dictionary", ex.fit, X_train)
    F_test, peak = stages.run("encode test", traced, ex.transform, X_test)
    print(f"  peak memory of encoding the test images: {peak / MiB:.0f} MiB, of which the feature "
          f"matrix {F_test.nbytes / MiB:.0f} MiB: {(peak - F_test.nbytes) / MiB:.0f} MiB beyond it")
    sample = X_test[:args.bare_images]
    bare = stages.run(f"bare products, {len(sample)} images", bare_products, ex, sample)
    per_image = stages.times["encode test"] / len(X_test)
    print(f"  encoding {1000 * per_image:.2f} ms/image, bare float32 products {1000 * bare / len(sample):.2f} "
          f"ms/image: encoding / products = {per_image * len(sample) / bare:.2f}x")
    F_train = stages.run("encode train", ex.transform, X_train)
    n = len(X_train) + len(X_test)
    encode = stages.times["encode train"] + stages.times["encode test"]
    print(f"  encode {n} images: {encode:.1f} s wall ({1000 * encode / n:.2f} ms/image), "
          f"{stages.cpu['encode train'] + stages.cpu['encode test']:.1f} s cpu")
    standardize(F_train, F_test)
    if args.save_features:
        tag = (f"kmeans{K}" + ("" if args.kmeans_iterations == 10 else f"i{args.kmeans_iterations}")
               + ("m" if args.mirror else ""))
        np.save(os.path.join(args.save_features, f"{tag}_train.npy"), F_train)
        np.save(os.path.join(args.save_features, f"{tag}_test.npy"), F_test)
    acc = linear_models(stages, F_train, y_train, F_test, y_test, args.reg, args.iterations, not args.no_sklearn)
    keep = [k for k in stages.times if "sklearn" not in k and "select" not in k and "bare" not in k]
    print(f"  whole path (fit, encode {n}, train, evaluate): {sum(stages.times[k] for k in keep):.1f} s wall, "
          f"{sum(stages.cpu[k] for k in keep):.1f} s cpu")
    return acc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", default=DEFAULT_ZIP)
    parser.add_argument("--only", default="hog,kmeans")
    parser.add_argument("--centroids", default="1600")
    parser.add_argument("--num-train", type=int, default=40000)
    parser.add_argument("--num-test", type=int, default=10000)
    parser.add_argument("--patches", type=int, default=400_000)
    parser.add_argument("--kmeans-iterations", type=int, default=10, help="k-means (Lloyd) iterations")
    parser.add_argument("--mirror", action="store_true",
                        help="encode each image and its mirror image, averaged (features.N.mirror)")
    parser.add_argument("--reg", default="1e-3", help="mlcv reg for the k-means features; several "
                        "(comma-separated): the best on 5,000 held-out training images")
    parser.add_argument("--hog-reg", default="1e-3", help="mlcv reg for HOG + colour histogram (as --reg)")
    parser.add_argument("--iterations", type=int, default=300, help="L-BFGS iteration cap (both solvers)")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--bare-images", type=int, default=2000,
                        help="images whose bare matrix products are timed against the encoding")
    parser.add_argument("--save-features", metavar="DIR", help="save the standardized k-means features here")
    args = parser.parse_args()
    args.reg = [float(v) for v in args.reg.split(",")]
    args.hog_reg = [float(v) for v in args.hog_reg.split(",")]

    X, y = load_cifar_jpeg(args.zip)
    X_train, y_train, X_test, y_test = split(X, y)
    X_train, y_train = X_train[:args.num_train], y_train[:args.num_train]
    X_test, y_test = X_test[:args.num_test], y_test[:args.num_test]
    print(f"train {len(X_train)}, test {len(X_test)}; cpus {os.cpu_count()}; load {os.getloadavg()}")
    only = args.only.split(",")
    if "kmeans" in only:
        for K in (int(k) for k in args.centroids.split(",")):
            bench_kmeans(X_train, y_train, X_test, y_test, K, args)
    if "hog" in only:
        bench_hog(X_train, y_train, X_test, y_test, args)
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
