"""BLAS threads per operation: the shipped configs trained with mlcv's default thread choice
(minibatch training on one BLAS thread, kNN on all cores) against BLAS left at all cores for
everything (mlcv before threadpoolctl) and against one thread for everything.

Each setting is timed in turn, round after round (so machine load hits all alike), on the
shipped sample; with --cifar-zip also on 49,500 images of ../shared/data/cifar10-train-jpeg.zip.
Reports medians of the fit time (train) and of the whole command (kNN: its test-set scoring).

    python bench/bench_threads.py [--repeats 3] [--cifar-zip ../shared/data/cifar10-train-jpeg.zip]
"""

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.train import train
from mlcv_cli.system import threads
from mlcv_cli.data import load_folder

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def setting(name):
    """'mlcv default' (per operation), 'all cores' (no limits anywhere), 'one thread' (everywhere)."""
    saved = threads.LINEAR_FIT_THREADS
    try:
        if name == "all cores":
            threads.LINEAR_FIT_THREADS = None
            yield
        elif name == "one thread":
            with threadpool_limits(limits=1, user_api="blas"):
                yield
        else:
            yield
    finally:
        threads.LINEAR_FIT_THREADS = saved


SETTINGS = ("mlcv default", "all cores", "one thread")


def bench(label, run_once, repeats):
    times = {s: [] for s in SETTINGS}
    for _ in range(repeats):
        for s in SETTINGS:
            with setting(s):
                times[s].append(run_once())
    med = {s: statistics.median(t) for s, t in times.items()}
    base = med["mlcv default"]
    print(f"{label:44s} " + "  ".join(f"{s} {med[s]:6.2f} s ({med[s] / base:4.2f}x)" for s in SETTINGS), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cifar-zip", help="also time the linear configs on 49,500 CIFAR-10 training images")
    args = parser.parse_args()
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"BLAS: {blas}; medians of {args.repeats}; ratios against the mlcv default")

    with tempfile.TemporaryDirectory() as tmp:
        def train_fit_s(name):
            cfg = config.replace(config.resolve(ROOT / f"configs/{name}.yaml"), {"output.dir": tmp})
            return lambda: train(cfg)["fit_s"]

        def train_total_s(name):
            cfg = config.replace(config.resolve(ROOT / f"configs/{name}.yaml"), {"output.dir": tmp})
            return lambda: train(cfg)["total_s"]

        for name in ("softmax", "svm"):
            bench(f"train configs/{name}.yaml, sample (fit)", train_fit_s(name), args.repeats)
        bench("train configs/knn.yaml, sample (in all)", train_total_s("knn"), args.repeats)

        def cv_jobs(n_jobs):
            cfg = config.replace(config.resolve(ROOT / "configs/softmax.yaml"),
                                 {"output.dir": tmp, "data.num_train": 2000, "cv.folds": 3,
                                  "cv.grid": {"train.lr": [0.003, 0.01], "model.reg": [0.001]}})

            def once():
                t = time.perf_counter()
                crossval.cross_validate(cfg, n_jobs=n_jobs)
                return time.perf_counter() - t

            return once

        bench("cv softmax grid (2 x 3 folds, 2,000), --jobs 1", cv_jobs(1), args.repeats)

        if args.cifar_zip:
            ds, _ = load_folder(args.cifar_zip)
            ds.name = "cifar10-train-jpeg"
            for name in ("softmax", "svm"):
                cfg = config.replace(config.resolve(ROOT / f"configs/{name}.yaml"),
                                     {"output.dir": tmp, "data.num_test": 0, "data.num_val": 500, "train.epochs": 5})
                bench(f"train configs/{name}.yaml, 49,500 images, 5 epochs (fit)",
                      lambda cfg=cfg: train(cfg, dataset=ds)["fit_s"], args.repeats)


if __name__ == "__main__":
    main()
