"""Real handwritten digits through `mlcv download mnist` and the CLI, end to end.

No MNIST files exist offline, so scikit-learn's own digits (load_digits: 1,797 real 8x8
images, 16 grey levels) are written as the four official gzipped IDX files, served on
127.0.0.1, fetched with `mlcv download mnist --url http://127.0.0.1:PORT/ --md5 ...`, then
kNN and softmax are trained and scored by the CLI. kNN is expected near 98%.

    python bench/bench_digits.py
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

FILES = {"train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
         "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz"}


def idx_gz(array):
    array = np.asarray(array, np.uint8)
    return gzip.compress(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes(), mtime=0)


def write_digits(folder: Path, n_test=297, seed=0):
    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255 / 16)), 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    order = np.random.default_rng(seed).permutation(len(images))
    test, train = order[:n_test], order[n_test:]
    arrays = {"train_x": images[train], "train_y": digits.target[train], "test_x": images[test], "test_y": digits.target[test]}
    md5 = {}
    for key, name in FILES.items():
        data = idx_gz(arrays[key])
        (folder / name).write_bytes(data)
        md5[name] = hashlib.md5(data).hexdigest()
    return len(train), len(test), md5


def mlcv(*args, cwd):
    cmd = [sys.executable, "-c", "from mlcv_cli.cli.app import main; main()", *map(str, args)]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"mlcv {' '.join(map(str, args))} failed:\n{out.stderr}")
    return out.stdout


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        n_train, n_test, md5 = write_digits(served)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(served))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            checks = [x for name, h in md5.items() for x in ("--md5", f"{name}={h}")]
            print(mlcv("download", "mnist", "--url", url, "--data-dir", tmp / "data", *checks, cwd=tmp).strip())
        finally:
            server.shutdown()
        common = ["--set", "data.dataset=mnist", "--set", "data.image_size=8", "--set", "data.num_val=200",
                  "--data-dir", tmp / "data", "--set", f"output.dir={tmp / 'runs'}", "--json"]
        results = {}
        for model, extra in (("knn", ["--set", "model.k=1"]), ("knn", ["--set", "model.k=3"]),
                             ("softmax", ["--set", "train.epochs=100", "--set", "train.lr=0.1", "--set", "train.batch_size=100"])):
            r = json.loads(mlcv("train", "--model", model, *extra, *common, cwd=tmp))
            results[f"{model} {' '.join(extra[1::2])}"] = r
        print(f"sklearn load_digits as MNIST IDX files: {n_train} training ({n_train - 200} fit + 200 val), {n_test} test images of 8x8x1")
        for name, r in results.items():
            print(f"  {name:<60} val {100 * r['val_accuracy']:.1f}%  test {100 * r['test_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
