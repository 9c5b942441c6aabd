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


def timed(fn):
    """(wall seconds, CPU seconds of all this process's threads) of one call of fn()."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def paired_rounds(fns, rounds):
    """Each of fns (name -> callable) once per round, in turn: name -> array (rounds, 2) of
    (wall, CPU) seconds. Ratios are taken within a round, then their median across rounds:
    a machine whose other load comes and goes disturbs neighbours in time least. The CPU
    times are the view that such load disturbs least (time slices it takes are not counted)."""
    for fn in fns.values():  # warm up: compilation, first-touch page faults
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: np.array(t) for name, t in times.items()}


def median_ratio(a, b, col=0):
    """Median over rounds of a / b (col 0: wall, 1: CPU)."""
    return float(np.median(a[:, col] / b[:, col]))


class PeakProducts:
    """Square n x n float32 products, the machine's peak: the better of one product with
    NumPy's BLAS on all cores and one product per core at once, each on a one-thread BLAS
    (the encoder's way of using the cores; a multithreaded BLAS also spins while it waits,
    so CPU seconds come from the one-thread products)."""

    def __init__(self, n=2048):
        self.threads = cpu_count()
        rng = np.random.default_rng(0)
        self.A, self.B = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        self.outs = [np.empty_like(self.A) for _ in range(self.threads)]
        self.flops = 2.0 * n ** 3

    def shared(self):
        np.matmul(self.A, self.B, out=self.outs[0])

    def per_core(self):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(lambda t: np.matmul(self.A, self.B, out=self.outs[t]), range(self.threads)))

    def rates(self, times):
        """Per round: (FLOP per wall second, FLOP per CPU second) from paired_rounds times."""
        wall = np.maximum(self.flops / times["peak shared"][:, 0],
                          self.threads * self.flops / times["peak per core"][:, 0])
        return wall, self.threads * self.flops / times["peak per core"][:, 1]


def encoder_products(extractor, images):
    """(callable running the products the compiled encoder performs on these images, alone;
    their FLOPs). Same shapes (slabs of patches against the fused centroids, the even and odd
    halves apart with mirror), same threads (one per core, each with a one-thread BLAS);
    random patches, no extraction and no encoder."""
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

    def run():
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))

    return run, 2.0 * slabs * n * enc.M_whole.shape[0] * enc.M_whole.shape[1]


def report_encoding(ex, X_test, args):
    """Encode time against the peak and against the encoder's own products (paired rounds)."""
    rows, cols = patch_grid(X_test.shape[1:], ex.patch_size, ex.stride)
    d = ex.patch_size ** 2 * X_test.shape[3]
    sample = X_test[:args.bare_images]
    peak = PeakProducts()
    products, flops = encoder_products(ex, sample)
    t = paired_rounds({"peak shared": peak.shared, "peak per core": peak.per_core,
                       "encode": lambda: ex.transform(sample), "products": products}, args.repeats)
    rate, rate_cpu = peak.rates(t)
    plain = 2.0 * len(sample) * rows * cols * d * ex.num_centroids * (2 if ex.mirror else 1)
    frac = lambda f, name, col=0: float(np.median(f / (rate, rate_cpu)[col] / t[name][:, col]))  # noqa: E731
    print(f"  peak float32 rate {np.median(rate) / 1e9:.1f} GFLOP/s (rounds: "
          f"{', '.join(f'{r / 1e9:.0f}' for r in rate)}); per CPU second {np.median(rate_cpu) / 1e9:.1f}")
    print(f"  encoder products ({len(sample)} images, {flops / 1e9:.0f} GFLOP): {np.median(t['products'][:, 0]):.2f} s, "
          f"{frac(flops, 'products'):.2f} of peak (CPU time: {frac(flops, 'products', 1):.2f})")
    print(f"  encode {len(sample)} images: {np.median(t['encode'][:, 0]):.2f} s = "
          f"{median_ratio(t['encode'], t['products']):.2f}x its products (CPU time: "
          f"{median_ratio(t['encode'], t['products'], 1):.2f}x); {frac(flops, 'encode'):.2f} of the peak rate for "
          f"its FLOPs (CPU time: {frac(flops, 'encode', 1):.2f}); "
          f"{1000 * np.median(t['encode'][:, 0]) / len(sample):.2f} ms/image")
    print(f"  the plain formulation's FLOPs ({plain / 1e9:.0f} GFLOP: patches x K centroids"
          f"{', twice for mirror' if ex.mirror else ''}): encode runs at {frac(plain, 'encode'):.2f}x the peak "
          f"rate for them (CPU time: {frac(plain, 'encode', 1):.2f}x)")
    if not _kernels.available():
        print(f"  (compiled kernels unavailable: {_kernels.unavailable_reason()}; the NumPy path ran)")


def report_lbfgs(F, y, args, C=10):
    """One L-BFGS evaluation on the training features against one pass over them (paired rounds)."""
    from threadpoolctl import threadpool_limits

    N, D = F.shape
    theta = 1e-3 * np.random.default_rng(1).standard_normal(D * C + C)
    clf = LinearClassifier(loss="softmax", optimizer="lbfgs", reg=args.reg[0])
    dt = np.dtype(np.float32)
    v = np.ones(D, np.float32)
    peak = PeakProducts()
    with threadpool_limits(None):
        t = paired_rounds({
            "peak shared": peak.shared, "peak per core": peak.per_core,
            "evaluation": lambda: clf._flat_loss_grad(theta, F, y, dt), "pass": lambda: F @ v,
            "numpy": lambda: fused.loss_grad_reference(theta, F, y, dt, loss="softmax", reg=args.reg[0]),
        }, args.repeats)
    rate, _ = peak.rates(t)
    floor = 4.0 * N * D * C / rate
    print(f"  L-BFGS evaluation on ({N}, {D}) float32, {C} classes: {np.median(t['evaluation'][:, 0]):.3f} s = "
          f"{median_ratio(t['evaluation'], t['pass']):.2f}x one pass over the matrix "
          f"({np.median(t['pass'][:, 0]):.3f} s, {F.nbytes / np.median(t['pass'][:, 0]) / 1e9:.1f} GB/s); "
          f"the NumPy path {np.median(t['numpy'][:, 0]):.3f} s = {median_ratio(t['numpy'], t['pass']):.2f}x; "
          f"its 4NDC FLOPs at the peak rate {np.median(floor):.3f} s: evaluation = "
          f"{float(np.median(t['evaluation'][:, 0] / floor)):.2f}x that")


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
    parser.add_argument("--repeats", type=int, default=5, help="rounds of each speed comparison (medians)")
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
