"""Feature extractors on the CIFAR-10 JPEG training set (40,000 train / 10,000 test): accuracy, stage times, memory.

Usage: python bench/bench_features.py [--zip PATH] [--only hog,kmeans] [--centroids 1600,4000]
       [--num-train N] [--num-test N] [--reg R] [--kmeans-iterations N] [--mirror] [--no-sklearn]
       [--quick]
Prints, per path: stage times, the encoding's peak memory beyond its output, mlcv's softmax
(L-BFGS) accuracy and scikit-learn's LogisticRegression(lbfgs) on the same features. For the
k-means path also, measured in the same run (medians of repeats): the machine's float32 peak
(a square matrix product on all cores, before and after), the rate of the encoder's own
products (its shapes, its threads), the encode time against the peak-rate time of the FLOPs it
performs (and of the FLOPs of the plain formulation: products with K centroids per patch, twice
with mirror), and one L-BFGS evaluation against one plain pass over the feature matrix, the
NumPy path's evaluation and the peak-rate time of its FLOPs. --quick: a small problem (a check
that everything runs, in about a minute; its figures are not the issue's).
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

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from mlcv_cli.core import _kernels, fused  # noqa: E402
from mlcv_cli.core.features.color_hist import ColorHistogram  # noqa: E402
from mlcv_cli.core.features.hog import HOG  # noqa: E402
from mlcv_cli.core.features.kmeans import KMeansFeatures, cpu_count, patch_grid, pooling_cells  # noqa: E402
from mlcv_cli.core.features.patch_encoder import PatchEncoder  # noqa: E402
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


def median_time(fn, repeats):
    """Medians of repeats calls of fn(): (wall seconds, CPU seconds of all this process's threads).

    The CPU times are the view that a busy shared machine disturbs least (time slices taken
    by other processes are not counted); the wall times are what a user waits.
    """
    times = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t, time.process_time() - c))
    wall, cpu = np.median(np.array(times), axis=0)
    return float(wall), float(cpu)


def peak_rate(n=2048, repeats=5):
    """The machine's float32 rate: (FLOP per wall second, FLOP per CPU second).

    Wall: the better of a square n x n matrix product with NumPy's BLAS on all cores, and one
    such product per core at once, each on a one-thread BLAS (the encoder's way of using the
    cores). CPU: that of the one-thread products (a multithreaded BLAS spins while it waits).
    """
    from threadpoolctl import threadpool_limits

    threads = cpu_count()
    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    outs = [np.empty_like(A) for _ in range(threads)]
    np.matmul(A, B, out=outs[0])
    flops = 2.0 * n ** 3
    shared, _ = median_time(lambda: np.matmul(A, B, out=outs[0]), repeats)
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(threads) as pool:
        each, cpu = median_time(lambda: list(pool.map(lambda t: np.matmul(A, B, out=outs[t]), range(threads))),
                                repeats)
    return max(flops / shared, threads * flops / each), threads * flops / cpu


def better_peak(*rates):
    """The best wall and CPU rates of several peak_rate() measurements."""
    return max(r[0] for r in rates), max(r[1] for r in rates)


def encoder_products(extractor, images, repeats=3):
    """The products the compiled encoder performs on these images, alone: ((wall, cpu), FLOPs).

    Same shapes (slabs of patches against the fused centroids, the even and odd halves
    apart with mirror), same threads (one per core, each with a one-thread BLAS); random
    patches, no extraction and no encoder.
    """
    from threadpoolctl import threadpool_limits

    rows, cols = patch_grid(images.shape[1:], extractor.patch_size, extractor.stride)
    enc = PatchEncoder(extractor, images.shape[1:], pooling_cells(rows, cols, extractor.pooling))
    n = enc.slab_rows * cols
    slabs = -(-len(images) * rows // enc.slab_rows) * (2 if enc.mirror and enc.sides == 1 else 1)
    threads = cpu_count()
    Z = np.random.default_rng(0).standard_normal((n, enc.M_whole.shape[0]), dtype=np.float32)
    outs = [np.empty((n, enc.M_whole.shape[1]), np.float32) for _ in range(2 * threads)]

    def work(t):
        for _ in range(t, slabs, threads):
            if enc.sides == 2:
                np.matmul(Z[:, :enc.d_even], enc.M_even, out=outs[2 * t])
                np.matmul(Z[:, enc.d_even:], enc.M_odd, out=outs[2 * t + 1])
            else:
                np.matmul(Z, enc.M_whole, out=outs[2 * t])

    with threadpool_limits(1, "blas"), ThreadPoolExecutor(threads) as pool:
        seconds = median_time(lambda: list(pool.map(work, range(threads))), repeats)
    return seconds, 2.0 * slabs * n * enc.M_whole.shape[0] * enc.M_whole.shape[1]


def report_encoding(ex, X_test, args):
    """Encode time against the peak and against the encoder's own products (same run)."""
    before = peak_rate()
    rows, cols = patch_grid(X_test.shape[1:], ex.patch_size, ex.stride)
    d = ex.patch_size ** 2 * X_test.shape[3]
    sample = X_test[:args.bare_images]
    (encode, encode_cpu) = median_time(lambda: ex.transform(sample), args.repeats)
    (prod, prod_cpu), flops = encoder_products(ex, sample, args.repeats)
    after = peak_rate()
    peak, peak_cpu = better_peak(before, after)
    plain = 2.0 * len(sample) * rows * cols * d * ex.num_centroids * (2 if ex.mirror else 1)
    print(f"  peak float32 rate: {peak / 1e9:.1f} GFLOP/s (the better of before and after: "
          f"{before[0] / 1e9:.1f}, {after[0] / 1e9:.1f}); per CPU second {peak_cpu / 1e9:.1f}")
    print(f"  encoder products ({len(sample)} images, {flops / 1e9:.0f} GFLOP): {prod:.2f} s = "
          f"{flops / prod / 1e9:.1f} GFLOP/s, {flops / prod / peak:.2f} of peak "
          f"(CPU time: {flops / prod_cpu / peak_cpu:.2f})")
    print(f"  encode {len(sample)} images: {encode:.2f} s = {encode / prod:.2f}x its products; the peak-rate "
          f"time of its FLOPs {flops / peak:.2f} s: {flops / peak / encode:.2f} of peak "
          f"(CPU time: {encode_cpu:.2f} s, {flops / encode_cpu / peak_cpu:.2f} of peak); "
          f"{1000 * encode / len(sample):.2f} ms/image")
    print(f"  FLOPs of the plain formulation ({plain / 1e9:.0f} GFLOP: patches x K centroids"
          f"{', twice for mirror' if ex.mirror else ''}) at peak {plain / peak:.2f} s: encode runs at "
          f"{plain / peak / encode:.2f}x that rate (CPU time: {plain / encode_cpu / peak_cpu:.2f}x)")
    if not _kernels.available():
        print(f"  (compiled kernels unavailable: {_kernels.unavailable_reason()}; the NumPy path ran)")


def report_lbfgs(F, y, args, C=10):
    """One L-BFGS evaluation on the training features against one pass over them (same run)."""
    from threadpoolctl import threadpool_limits

    before = peak_rate()
    N, D = F.shape
    theta = 1e-3 * np.random.default_rng(1).standard_normal(D * C + C)
    clf = LinearClassifier(loss="softmax", optimizer="lbfgs", reg=args.reg[0])
    dt = np.dtype(np.float32)
    v = np.ones(D, np.float32)
    with threadpool_limits(None):
        clf._flat_loss_grad(theta, F, y, dt)
        evaluation, _ = median_time(lambda: clf._flat_loss_grad(theta, F, y, dt), args.repeats + 2)
        one_pass, _ = median_time(lambda: F @ v, args.repeats + 2)
        reference, _ = median_time(
            lambda: fused.loss_grad_reference(theta, F, y, dt, loss="softmax", reg=args.reg[0]), args.repeats)
    peak, _ = better_peak(before, peak_rate())
    floor = 4.0 * N * D * C / peak
    print(f"  L-BFGS evaluation on ({N}, {D}) float32, {C} classes: {evaluation:.3f} s = "
          f"{evaluation / one_pass:.2f}x one pass over the matrix ({one_pass:.3f} s, {F.nbytes / one_pass / 1e9:.1f} "
          f"GB/s); the NumPy path {reference:.3f} s = {reference / one_pass:.2f}x; the peak-rate time of its "
          f"4NDC FLOPs {floor:.3f} s ({peak / 1e9:.1f} GFLOP/s): evaluation = {evaluation / floor:.2f}x that")


def bench_kmeans(X_train, y_train, X_test, y_test, K, args):
    print(f"k-means features, {K} centroids, {args.kmeans_iterations} k-means iterations"
          + (", mirror (each image and its mirror image, averaged)" if args.mirror else ""))
    stages = Stages()
    ex = KMeansFeatures(num_centroids=K, patch_size=6, stride=1, num_patches=args.patches,
                        iterations=args.kmeans_iterations, seed=0, mirror=args.mirror)
    stages.run("fit dictionary", ex.fit, X_train)
    F_test, peak_mem = stages.run("encode test", traced, ex.transform, X_test)
    print(f"  peak memory of encoding the test images: {peak_mem / MiB:.0f} MiB, of which the feature "
          f"matrix {F_test.nbytes / MiB:.0f} MiB: {(peak_mem - F_test.nbytes) / MiB:.0f} MiB beyond it")
    F_train = stages.run("encode train", ex.transform, X_train)
    n = len(X_train) + len(X_test)
    encode = stages.times["encode train"] + stages.times["encode test"]
    print(f"  encode {n} images: {encode:.1f} s wall ({1000 * encode / n:.2f} ms/image), "
          f"{stages.cpu['encode train'] + stages.cpu['encode test']:.1f} s cpu")
    report_encoding(ex, X_test, args)
    standardize(F_train, F_test)
    if args.save_features:
        tag = (f"kmeans{K}" + ("" if args.kmeans_iterations == 10 else f"i{args.kmeans_iterations}")
               + ("m" if args.mirror else ""))
        np.save(os.path.join(args.save_features, f"{tag}_train.npy"), F_train)
        np.save(os.path.join(args.save_features, f"{tag}_test.npy"), F_test)
    report_lbfgs(F_train, y_train, args)
    acc = linear_models(stages, F_train, y_train, F_test, y_test, args.reg, args.iterations, not args.no_sklearn)
    keep = [k for k in stages.times if "sklearn" not in k and "select" not in k]
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
                        help="test images whose encoding is timed against its products and the peak")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each speed measurement (median)")
    parser.add_argument("--quick", action="store_true",
                        help="a small problem: 4,000 / 1,000 images, 400 centroids, 50,000 patches, 3 k-means "
                             "and 50 L-BFGS iterations, k-means only, no scikit-learn")
    parser.add_argument("--save-features", metavar="DIR", help="save the standardized k-means features here")
    args = parser.parse_args()
    if args.quick:
        args.num_train, args.num_test, args.centroids, args.patches = 4000, 1000, "400", 50_000
        args.kmeans_iterations, args.iterations, args.only, args.no_sklearn = 3, 50, "kmeans", True
        args.bare_images = min(args.bare_images, 500)
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
