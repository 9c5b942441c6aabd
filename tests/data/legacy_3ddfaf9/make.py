"""Write the files of tests/data/legacy_3ddfaf9/ with mlcv as of commit 3ddfaf9 (before the
layout of #18): run it with that commit's package first on sys.path, e.g.

    git worktree add /tmp/old 3ddfaf9
    PYTHONPATH=/tmp/old python tests/data/legacy_3ddfaf9/make.py

It works under ROOT (below), a fixed absolute path, because runs record their data dir
absolutely; the test copies the files back to the same path before using them.
"""

import json
import os
import shutil
import signal
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path("/tmp/mlcv-legacy-3ddfaf9")
OUT = Path(__file__).resolve().parent / "files.tar.gz"


def make_folder(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 6)):
        for c, name in enumerate(("a", "b", "c")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 160, (8, 8, 3), dtype=np.uint8)
                pixels[..., c] += 90
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def main():
    import mlcv_cli
    from mlcv_cli.cli import main as mlcv_main

    assert "old" in mlcv_cli.__file__ or os.environ.get("MLCV_LEGACY_ANY"), f"not the old package: {mlcv_cli.__file__}"
    shutil.rmtree(ROOT, ignore_errors=True)
    folder = make_folder(ROOT / "src")
    os.chdir(ROOT)

    def mlcv(*args, ok=(0,)):
        try:
            mlcv_main(list(map(str, args)))
        except SystemExit as exc:
            if exc.code not in ok:
                raise
    mlcv("download", "folder", folder, "--name", "bits", "--data-dir", "data", "--size", "8")
    data = ["--data-dir", "data", "--set", "data.dataset=folder", "--set", "data.path=bits", "--set", "data.image_size=8",
            "--set", "data.num_val=15"]
    mlcv("train", "--model", "softmax", *data, "--set", "train.epochs=4", "--set", "train.batch_size=20",
         "--set", "output.name=softmax-done")
    mlcv("train", "--model", "svm", *data, "--set", "train.optimizer=lbfgs", "--set", "train.epochs=5",
         "--set", "output.name=svm-lbfgs")
    mlcv("train", "--model", "knn", *data, "--set", "model.k=3", "--set", "output.name=knn")
    mlcv("train", "--model", "softmax", *data, "--set", "features=[{type: kmeans, num_centroids: 8, num_patches: 2000, "
         "patch_size: 3, iterations: 3, mirror: true}]", "--set", "train.epochs=3", "--set", "output.name=kmeans")
    mlcv("cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", *data, "--set", "output.name=knn")
    # an interrupted run: SIGINT after the 7th step (5 steps per epoch), checkpoint written
    from mlcv_cli import config, pipeline

    class Stop:
        n = 0

        def __call__(self, total, desc):
            return self

        def update(self, n=1, **postfix):
            Stop.n += n
            if n and Stop.n == 7:
                os.kill(os.getpid(), signal.SIGINT)

        def close(self):
            pass

    cfg = config.resolve(None, ["data.dataset=folder", "data.path=bits", "data.image_size=8", "data.num_val=15",
                                "train.epochs=4", "train.batch_size=20", "output.name=softmax-stopped", "data.dir=data"],
                         model_type="softmax")
    try:
        pipeline.train(cfg, progress=Stop())
    except Exception as exc:  # TrainingInterrupted
        print("interrupted:", exc)
    shutil.rmtree(ROOT / "src")
    with tarfile.open(OUT, "w:gz") as tar:
        tar.add(ROOT, arcname=".")
    print(OUT, OUT.stat().st_size, "bytes")
    print(json.dumps(sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file())))


if __name__ == "__main__":
    sys.exit(main())
