"""Speed of KNearestNeighbor against its NumPy reference path, a bare matmul and scikit-learn.

Usage: python bench/bench_knn.py [--zip PATH | --synthetic] [--only l1,f32,l2,compile]
                                 [--l1-query 500] [--n-train 40000] [--n-query 10000] [--repeats 3]
All ratios are measured in this run (the machine may be shared: see the load line).
(l1)  exact L1, uint8 CIFAR pixels, 500 queries x 40,000 rows: compiled kernel vs the NumPy
      reference (target >= 4x) and sklearn brute manhattan (target >= 10x), identical
      predictions and indices; byte pairs per second against the measured peak of packed
      byte absolute differences (vpsadbw, a C loop compiled with gcc when it is available).
(f32) exact L1 on float32 1,000-dimensional features: compiled vs reference (target >= 4x).
(l2)  L2, 10,000 x 40,000: float32 and uint8 training rows vs the bare float32 matmul of
      the same shapes (target <= 1.1x) and sklearn brute (target >= 2x faster).
(compile) first call of the compiled kernel in a fresh process with an empty cache (compile),
      then with that cache (load), then later calls.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from bench_accuracy import DEFAULT_ZIP, load_cifar_jpeg  # noqa: E402

from mlcv_cli.core import _kernels  # noqa: E402
from mlcv_cli.core.knn import KNearestNeighbor  # noqa: E402

SAD_PEAK_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#define CHAINS 12
int main(void) {
    long iters = 50000000L;
    __m256i s[CHAINS], b = _mm256_set1_epi8(9);
    for (int c = 0; c < CHAINS; c++) s[c] = _mm256_set1_epi8((char)(c * 13 + 1));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int c = 0; c < CHAINS; c++) s[c] = _mm256_sad_epu8(s[c], b);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long sum = 0, out[4];
    for (int c = 0; c < CHAINS; c++) { _mm256_storeu_si256((__m256i *)out, s[c]); sum += out[0]; }
    printf("%.0f %lld\n", (double)iters * CHAINS * 32 / ((t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec)), sum);
    return 0;
}
"""

COMPILE_SNIPPET = (
    "import time, numpy as np\n"
    "t = time.perf_counter()\n"
    "from mlcv_cli.core.knn import KNearestNeighbor\n"
    "X = np.zeros((50, 3072), np.uint8); F = np.zeros((50, 100), np.float32)\n"
    "KNearestNeighbor(metric='l1').fit(X, np.zeros(50, int)).kneighbors(X[:3])\n"
    "KNearestNeighbor(metric='l1').fit(F, np.zeros(50, int)).kneighbors(F[:3])\n"
    "print(time.perf_counter() - t)\n"
)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def load_line():
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3]) + f" on {os.cpu_count()} cpus"


def cpu_line():
    model, mhz, flags = "?", "?", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                model = value
            elif key == "cpu MHz":
                mhz = value
            elif key == "flags":
                flags = value
    simd = [f for f in ("avx512bw", "avx2", "sse2") if f in flags.split()]
    return f"{model} at {mhz} MHz, {simd[0] if simd else 'no SIMD flags'}", float(mhz) if mhz != "?" else None


def sad_peak_per_core():
    """Measured vpsadbw byte pairs per second on one core, or None without gcc/AVX2."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "sad.c"), os.path.join(tmp, "sad")
        with open(src, "w") as f:
            f.write(SAD_PEAK_C)
        if subprocess.run([cc, "-O2", "-mavx2", "-o", exe, src], capture_output=True).returncode:
            return None
        runs = [float(subprocess.run([exe], capture_output=True, text=True).stdout.split()[0]) for _ in range(3)]
    return max(runs)


def bench_compile():
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        first = [float(subprocess.run([sys.executable, "-c", COMPILE_SNIPPET], env=env, capture_output=True,
                                      text=True, check=True).stdout) for _ in range(2)]
    print(f"[compile] first call in a fresh process (import + compile 2 signatures): {first[0]:.2f}s; "
          f"next process (import + load from the disk cache): {first[1]:.2f}s")


def bench_l1(Xtr, ytr, Xq, args, sk):
    nq = len(Xq)
    pairs = nq * len(Xtr) * Xtr.shape[1]
    ours = KNearestNeighbor(k=1, metric="l1").fit(Xtr, ytr, 10)
    t = time.perf_counter()
    ours.kneighbors(Xq[:2])
    first = time.perf_counter() - t
    t_ours, (_, ind) = timed(lambda: ours.kneighbors(Xq), args.repeats)
    pred = ours.predict(Xq)
    assert ours.backend_ == "numba", "the compiled kernel did not run"
    ref = KNearestNeighbor(k=1, metric="l1").fit(Xtr.astype(np.float32), ytr, 10)  # the reference as it stores rows
    t_ref, (_, ref_ind) = timed(lambda: ref._kneighbors_l1(Xq.astype(np.float32), 1), max(1, args.repeats - 1))
    same = np.array_equal(ind, ref_ind)
    print(f"[L1 uint8] {nq} queries x {len(Xtr)} rows x {Xtr.shape[1]} bytes, k=1: compiled {t_ours:.2f}s "
          f"(first call in this process {first:.2f}s), NumPy reference {t_ref:.2f}s: {t_ref / t_ours:.1f}x faster "
          f"(target >= 4); identical indices: {same}")
    k10 = KNearestNeighbor(k=10, metric="l1").fit(Xtr, ytr, 10)
    t10, (_, i10) = timed(lambda: k10.kneighbors(Xq), 1)
    _, r10 = ref.set_params(k=10)._kneighbors_l1(Xq.astype(np.float32), 10)
    print(f"[L1 uint8] k=10: compiled {t10:.2f}s, identical 10-neighbour lists: {np.array_equal(i10, r10)}")
    if sk is not None:
        clf = sk(n_neighbors=1, algorithm="brute", metric="manhattan").fit(Xtr.astype(np.float32), ytr)
        t_sk, sk_pred = timed(lambda: clf.predict(Xq.astype(np.float32)), 1)
        sk_ind = clf.kneighbors(Xq.astype(np.float32), 1, return_distance=False)
        print(f"[L1 uint8] sklearn brute manhattan predict {t_sk:.2f}s: ours {t_sk / t_ours:.1f}x faster (target >= 10); "
              f"same predictions {np.array_equal(pred, sk_pred)}, same indices {np.array_equal(ind, sk_ind)}")
    rate = pairs / t_ours
    cpu, mhz = cpu_line()
    peak = sad_peak_per_core()
    line = f"[L1 uint8] {rate / 1e9:.1f} G byte pairs/s on {os.cpu_count()} cores ({cpu})"
    if peak:
        total = peak * (os.cpu_count() or 1)
        line += (f"; measured vpsadbw peak {peak / 1e9:.1f} G/s per core"
                 + (f" ({peak / (mhz * 1e6):.1f} byte pairs per cycle)" if mhz else "")
                 + f", {total / 1e9:.0f} G/s on all cores: {rate / total:.2f} of peak")
    print(line)


def bench_f32(Xtr, ytr, Xq, args):
    rng = np.random.default_rng(1)
    # 1,000-dimensional float features: a random projection of the pixels, as a feature
    # extractor would give.
    P = rng.standard_normal((Xtr.shape[1], 1000)).astype(np.float32) / np.float32(Xtr.shape[1] ** 0.5)
    Ftr = (Xtr.astype(np.float32) / 255) @ P
    Fq = (Xq.astype(np.float32) / 255) @ P
    est = KNearestNeighbor(k=1, metric="l1").fit(Ftr, ytr, 10)
    est.kneighbors(Fq[:2])
    t_c, (_, ind) = timed(lambda: est.kneighbors(Fq), args.repeats)
    t_r, (_, ref_ind) = timed(lambda: est._kneighbors_l1(Fq, 1), max(1, args.repeats - 1))
    print(f"[L1 float32] {len(Fq)} queries x {len(Ftr)} rows x 1000 floats, k=1: compiled {t_c:.2f}s, "
          f"NumPy reference {t_r:.2f}s: {t_r / t_c:.1f}x faster (target >= 4); "
          f"indices agree on {np.mean(ind == ref_ind):.4f} (float rounding differs between the two)")


def bench_l2(Xtr, ytr, Xq, args, sk):
    Ftr, Fq = Xtr.astype(np.float32), Xq.astype(np.float32)
    t_mm, _ = timed(lambda: Fq @ Ftr.T, args.repeats)
    f32 = KNearestNeighbor(k=1, metric="l2").fit(Ftr, ytr, 10)
    t_f, ind = timed(lambda: f32.kneighbors(Fq, return_distance=False), args.repeats)
    u8 = KNearestNeighbor(k=1, metric="l2").fit(Xtr, ytr, 10)
    t_u, ind_u = timed(lambda: u8.kneighbors(Xq, return_distance=False), args.repeats)
    print(f"[L2] {len(Xq)} x {len(Xtr)}, k=1: bare float32 matmul {t_mm:.2f}s; float32 rows {t_f:.2f}s "
          f"({t_f / t_mm:.3f}x the matmul), uint8 rows {t_u:.2f}s ({t_u / t_mm:.3f}x) (target <= 1.1); "
          f"same indices {np.array_equal(ind_u, ind)}")
    if sk is not None:
        clf = sk(n_neighbors=1, algorithm="brute").fit(Ftr, ytr)
        t_sk, sk_pred = timed(lambda: clf.predict(Fq), 1)
        pred = u8.predict(Xq)
        print(f"[L2] sklearn brute predict {t_sk:.2f}s: ours (uint8 rows) {t_sk / t_u:.1f}x faster (target >= 2); "
              f"predictions agree on {np.mean(sk_pred == pred):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", default=DEFAULT_ZIP)
    ap.add_argument("--synthetic", action="store_true", help="random uint8 pixels instead of CIFAR-10")
    ap.add_argument("--n-query", type=int, default=10000)
    ap.add_argument("--n-train", type=int, default=40000)
    ap.add_argument("--l1-query", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--only", default="compile,l1,f32,l2")
    args = ap.parse_args()
    only = set(args.only.split(","))

    if args.synthetic:
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (args.n_train + args.n_query, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, len(X))
    else:
        X, y = load_cifar_jpeg(args.zip)
        X = X.reshape(len(X), -1)
    perm = np.random.default_rng(0).permutation(len(X))
    tr, te = perm[:args.n_train], perm[args.n_train:args.n_train + args.n_query]
    Xtr, ytr, Xq = X[tr], y[tr], X[te]
    print(f"train {Xtr.shape} {Xtr.dtype}, queries {Xq.shape}; {load_line()}; "
          f"compiled kernel: {_kernels.available() or _kernels.unavailable_reason()}")
    sk = None
    if not args.skip_sklearn:
        from sklearn.neighbors import KNeighborsClassifier as sk

    if "compile" in only:
        bench_compile()
    if "l1" in only:
        bench_l1(Xtr, ytr, Xq[:args.l1_query], args, sk)
    if "f32" in only:
        bench_f32(Xtr, ytr, Xq[:args.l1_query], args)
    if "l2" in only:
        bench_l2(Xtr, ytr, Xq, args, sk)
    print(load_line())


if __name__ == "__main__":
    main()
