"""How long `mlcv runs` takes over 1,000 run directories (the target is under 2 s).

Writes 1,000 run directories shaped like real ones (900 training runs, 80 cv runs, 20
damaged) into a temporary directory, then times the listing in-process and as the full
command (interpreter start-up included), each as the median of several repeats.

    python bench/bench_runs.py [--runs 1000] [--classes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlcv_cli import config as config_mod
from mlcv_cli.runs import listing as runlist


def write_runs(root: Path, n: int, n_classes: int):
    rng = np.random.default_rng(0)
    classes = [f"class{i}" for i in range(n_classes)]
    n_cv, n_bad = n * 8 // 100, n * 2 // 100
    for i in range(n):
        model = ("knn", "svm", "softmax")[i % 3]
        reg = rng.choice([1e-4, 1e-3, 1e-2])
        lr = rng.choice([1e-3, 1e-2])
        # kNN refuses model keys it does not use (model.reg), so it varies k instead.
        sets = [f"model.k={1 + i % 5}"] if model == "knn" else [f"model.reg={reg}", f"train.lr={lr}"]
        cfg = config_mod.resolve(None, sets, model_type=model)
        d = root / f"{model}-20261129-{i:06d}"
        d.mkdir()
        (d / "config.yaml").write_text(config_mod.to_yaml(cfg))
        kind = "cv" if i < n_cv else "train"
        meta = {"command": "mlcv train", "status": "done", "seed": 0, "started": "2026-11-29T10:00:00+00:00",
                "ended": "2026-11-29T10:01:00+00:00", "pid": 1, "model": model, "dataset": "cifar10", "kind": kind}
        (d / "meta.json").write_text(json.dumps(meta))
        if n_cv + n_bad > i >= n_cv:
            (d / "metrics.json").write_text("{ truncated")
            continue
        if kind == "cv":
            (d / "cv_summary.json").write_text(json.dumps({"best_mean": 0.3, "best_std": 0.01, "time_s": 10.0, "folds": 5,
                                                           "best_params": {"model.k": 5}}))
            continue
        cm = rng.integers(0, 100, (n_classes, n_classes)).tolist()
        split = {"accuracy": 0.4, "n": 1000, "per_class_accuracy": rng.random(n_classes).tolist(), "confusion_matrix": cm}
        metrics = {"model": model, "classes": classes, "final_loss": 1.7, "train_accuracy": 0.45, "val_accuracy": 0.4,
                   "test_accuracy": float(rng.random()), "splits": {"train": split, "val": split, "test": split},
                   "times": {"load_s": 1.0, "fit_s": 3.0, "total_s": 5.0}}
        (d / "metrics.json").write_text(json.dumps(metrics, indent=2))


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def child_cpu(fn):
    """CPU seconds (user + system) of the subprocess fn runs: less noisy than wall time on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--classes", type=int, default=10, help="classes per run (metrics.json grows with the square)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        write_runs(root, args.runs, args.classes)
        cache = root / runlist.CACHE_FILE
        listed = len(runlist.listing(root)["runs"])  # also brings the files into the OS page cache

        def cold(fn):
            def run():
                cache.unlink(missing_ok=True)
                fn()
            return run

        mlcv = [sys.executable, "-c", "from mlcv_cli.cli.app import main; main()"]

        def command(*extra):
            subprocess.run([*mlcv, "runs", str(root), "--sort", "test", *extra], check=True, capture_output=True)

        t_scan_cold = median_time(cold(lambda: runlist.listing(root, sort="test")), 5)
        t_scan_warm = median_time(lambda: runlist.listing(root, sort="test"), 5)
        t_cmd_cold = median_time(cold(command), 3)
        t_cmd = median_time(command, 3)
        t_json = median_time(lambda: command("--json"), 3)
        cpu_cold = statistics.median(child_cpu(cold(command)) for _ in range(3))
        cpu_warm = statistics.median(child_cpu(command) for _ in range(3))
        t_bare = median_time(lambda: subprocess.run([*mlcv, "--version"], check=True, capture_output=True), 3)
    print(f"{listed} run directories ({args.classes} classes each), medians; target under 2 s")
    print(f"  `mlcv runs --sort test`: first listing {t_cmd_cold:.3f} s, again (row cache) {t_cmd:.3f} s, --json {t_json:.3f} s; "
          f"`mlcv --version` alone {t_bare:.3f} s")
    print(f"  CPU time of the command (user + system): first listing {cpu_cold:.3f} s, again {cpu_warm:.3f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  in-process listing: first {t_scan_cold:.3f} s, again {t_scan_warm:.3f} s")


if __name__ == "__main__":
    main()
