"""How long loading CIFAR-10 from the cache takes (target: well under a second).

Usage: python bench/bench_load.py [--data-dir DIR] [--folder PATH_OR_ZIP]
Without --data-dir a full-size fake cache (50,000 + 10,000 random images) is built in a
temporary directory. --folder also times decoding an image folder (e.g. the JPEG zip).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mlcv_cli.data import Dataset, load_cifar10, load_folder, save_cache  # noqa: E402
from mlcv_cli.data.cifar10 import CACHE_NAME, CLASSES  # noqa: E402


def build_fake_cache(data_dir, seed=0):
    rng = np.random.default_rng(seed)
    dataset = Dataset(
        name="cifar10",
        classes=list(CLASSES),
        train_x=rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
        train_y=rng.integers(0, 10, 50000).astype(np.int64),
        test_x=rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
        test_y=rng.integers(0, 10, 10000).astype(np.int64),
        source="fake (bench_load.py)",
    )
    start = time.perf_counter()
    save_cache(os.path.join(data_dir, CACHE_NAME), dataset, extra={"archive_md5": None})
    return time.perf_counter() - start


def time_cifar(data_dir, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ds = load_cifar10(data_dir)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    total = int(ds.train_x.sum(dtype=np.uint64)) + int(ds.test_x.sum(dtype=np.uint64))
    touch = time.perf_counter() - start
    start = time.perf_counter()
    ds = load_cifar10(data_dir, mmap=False)
    eager = time.perf_counter() - start
    print(f"load_cifar10 (mmap):      {min(times) * 1000:8.2f} ms  (best of {repeats}; first {times[0] * 1000:.2f} ms)")
    print(f"touch all pixels:         {touch * 1000:8.2f} ms  (sum {total})")
    print(f"load_cifar10 (mmap=False):{eager * 1000:8.2f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="an existing data dir holding cifar10/ (default: a fake one)")
    parser.add_argument("--folder", help="also time load_folder on this directory or zip")
    args = parser.parse_args()
    if args.data_dir:
        time_cifar(args.data_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"built fake full-size cache in {build_fake_cache(tmp):.2f} s")
            time_cifar(tmp)
    if args.folder:
        start = time.perf_counter()
        ds, skipped = load_folder(args.folder)
        took = time.perf_counter() - start
        n = len(ds.train_y) + (len(ds.test_y) if ds.test_y is not None else 0)
        print(f"load_folder {args.folder}: {took:.2f} s for {n} images ({n / took:,.0f}/s), {len(skipped)} skipped")


if __name__ == "__main__":
    main()
