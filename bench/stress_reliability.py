"""Chaos on one data dir: concurrent imports, trains, cv runs and resumes, with random SIGKILLs.

For --seconds, keeps --parallel mlcv processes busy on one data dir: re-imports of one dataset
name (alternating between two folders), new softmax trains and cv runs on it, and resumes of
unfinished runs; a random live process is SIGKILLed now and then. Then every unfinished run is
resumed once, undisturbed, and everything is checked:

  - the dataset loads and is exactly one of the two imports, whole;
  - every run is done (model/summary loadable) or its resume said why in one `Error:` line;
  - every finished train equals, bit for bit, an undisturbed train on the same data, and
    every finished cv its undisturbed table;
  - no process printed a traceback; no temporary file is left in the data dir.

    python bench/stress_reliability.py --seconds 60 --parallel 4 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 8
TRAIN = ["--model", "softmax", "--set", "data.dataset=folder", "--set", "data.path=shared", "--set", f"data.image_size={SIDE}",
         "--set", "data.num_val=6", "--set", "train.batch_size=8", "--set", "train.epochs=150", "--set", "train.checkpoint_every=1"]
CV = ["--model", "softmax", "--folds", "3", "--grid", "train.lr=0.001,0.01", "--set", "data.dataset=folder", "--set", "data.path=shared",
      "--set", f"data.image_size={SIDE}", "--set", "data.num_val=0", "--set", "train.epochs=60"]


def make_folder(root, seed, n_train):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", 5)):
        for c, name in enumerate(("a", "b", "c")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 200, (SIDE, SIDE, 3), dtype=np.uint8)
                pixels[..., c] += 50
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


class Procs:
    def __init__(self, work, data):
        self.work, self.data, self.live, self.logs = work, data, [], []
        self.started = self.killed = 0

    def start(self, kind, args, rng=None):
        out = self.work / "logs" / f"{len(self.logs):04d}-{kind}"
        env = dict(os.environ, MLCV_DATA_DIR=str(self.data))
        env.pop("MLCV_DEBUG", None)
        proc = subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=self.work, env=env,
                                stdout=open(f"{out}.out", "w"), stderr=open(f"{out}.err", "w"))
        # Half the processes are SIGKILLed at a random moment of their life (start-up included).
        proc.kill_at = time.time() + rng.uniform(1, 20) if rng is not None and rng.random() < 0.5 else None
        self.live.append((kind, proc))
        self.logs.append((kind, out, proc))
        self.started += 1
        return proc

    def reap(self):
        self.live = [(k, p) for k, p in self.live if p.poll() is None]

    def kill_due(self):
        for kind, proc in self.live:
            if proc.kill_at is not None and time.time() > proc.kill_at and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                self.killed += 1
                proc.sigkilled = True


def run_cli(args, data, cwd):
    env = dict(os.environ, MLCV_DATA_DIR=str(data))
    env.pop("MLCV_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def status(run):
    try:
        return json.loads((run / "meta.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def references(work, folders):
    """Undisturbed train and cv results per data fingerprint."""
    refs = {}
    for i, folder in enumerate(folders):
        data = work / f"ref-data-{i}"
        assert run_cli(["download", "folder", folder, "--name", "shared", "--size", SIDE], data, work).returncode == 0
        t = run_cli(["train", *TRAIN, "--set", f"output.dir={work / f'ref-runs-{i}'}", "--json"], data, work)
        c = run_cli(["cv", *CV, "--set", f"output.dir={work / f'ref-runs-{i}'}", "--json"], data, work)
        assert t.returncode == 0 and c.returncode == 0, (t.stderr, c.stderr)
        train_dir, cv_dir = Path(json.loads(t.stdout)["run_dir"]), Path(json.loads(c.stdout)["run_dir"])
        fp = json.loads((train_dir / "meta.json").read_text())["inputs"]["data"]
        with np.load(train_dir / "model.npz", allow_pickle=False) as m:
            weights = (m["W"].copy(), m["b"].copy())
        refs[fp] = {"weights": weights, "cv": [(s["params"], s["folds"]) for s in json.loads(c.stdout)["summary"]]}
    return refs


def chaos(work, data, folders, seconds, parallel, rng):
    procs = Procs(work, data)
    runs = work / "runs"
    assert run_cli(["download", "folder", folders[0], "--name", "shared", "--size", SIDE], data, work).returncode == 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        procs.reap()
        while len(procs.live) < parallel:
            unfinished = [r for r in runs.glob("*") if r.is_dir() and status(r) != "done"] if runs.is_dir() else []
            choice = rng.choice(["import", "train", "cv", "resume", "resume"])
            if choice == "import":
                procs.start("import", ["download", "folder", rng.choice(folders), "--name", "shared", "--size", SIDE], rng)
            elif choice == "train":
                procs.start("train", ["train", *TRAIN, "--set", f"output.dir={runs}"], rng)
            elif choice == "cv":
                procs.start("cv", ["cv", *CV, "--set", f"output.dir={runs}"], rng)
            elif unfinished:
                run = rng.choice(unfinished)
                procs.start("resume", ["cv" if "-cv-" in run.name else "train", "--resume", run], rng)
        time.sleep(0.2)
        procs.kill_due()
    for _, proc in procs.live:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.sigkilled = True
    return procs


def settle_and_check(work, data, folders, refs, procs):
    from mlcv_cli.data import load_folder, load_imported
    from mlcv_cli.runs import fingerprints

    problems = []
    report = {"processes": procs.started, "sigkilled": procs.killed}
    # Tracebacks from any process that was not SIGKILLed are bugs.
    tracebacks = [str(out) for kind, out, proc in procs.logs
                  if not getattr(proc, "sigkilled", False) and "Traceback" in Path(f"{out}.err").read_text()]
    report["tracebacks"] = len(tracebacks)
    problems += [f"traceback in {t}.err" for t in tracebacks]
    exits = {}
    for kind, out, proc in procs.logs:
        if not getattr(proc, "sigkilled", False):
            exits.setdefault(kind, {}).setdefault(proc.returncode, 0)
            exits[kind][proc.returncode] += 1
    report["exit_codes"] = exits

    try:
        ds = load_imported(data, "shared", mmap=False)
        whole = {fingerprints.of_data(load_folder(f, size=SIDE)[0]) for f in folders}
        ok = fingerprints.of_data(ds) in whole
        report["dataset"] = "whole" if ok else "MIXED"
        if not ok:
            problems.append("the dataset is not one of the two imports")
    except Exception as exc:  # noqa: BLE001 -- any failure here is what we report
        report["dataset"] = f"unloadable: {exc}"
        problems.append(report["dataset"])
    leftovers = [str(p) for p in data.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]
    report["leftover_temp_or_lock_files"] = len(leftovers)

    runs = sorted(p for p in (work / "runs").glob("*") if p.is_dir()) if (work / "runs").is_dir() else []
    counts = {"done": 0, "done_after_settle": 0, "reported": 0, "matches_reference": 0}
    for run in runs:
        if status(run) != "done":
            result = run_cli(["cv" if "-cv-" in run.name else "train", "--resume", run], data, work)
            if result.returncode == 0:
                counts["done_after_settle"] += 1
            else:
                lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
                if len(lines) == 1 and "Traceback" not in result.stderr:
                    counts["reported"] += 1
                    counts.setdefault("reasons", {}).setdefault(_reason(lines[0]), 0)
                    counts["reasons"][_reason(lines[0])] += 1
                    continue
                problems.append(f"{run}: resume failed without a clear message: {result.stderr[-300:]}")
                continue
        counts["done"] += 1
        meta = json.loads((run / "meta.json").read_text())
        ref = refs.get(meta.get("inputs", {}).get("data"))
        if ref is None:
            problems.append(f"{run}: done on data that is neither import")
            continue
        if "-cv-" in run.name:
            table = [(s["params"], s["folds"]) for s in json.loads((run / "cv_summary.json").read_text())["summary"]]
            same = table == ref["cv"]
        else:
            with np.load(run / "model.npz", allow_pickle=False) as m:
                same = np.array_equal(m["W"], ref["weights"][0]) and np.array_equal(m["b"], ref["weights"][1])
        if same:
            counts["matches_reference"] += 1
        else:
            problems.append(f"{run}: finished result differs from the undisturbed run on the same data")
    report["runs"] = len(runs)
    report.update(counts)
    return report, problems


def _reason(line):
    for key in ("not the data", "has no checkpoint", "in use by", "no cv_plan", "does not fit", "is unreadable", "no config.yaml"):
        if key in line:
            return key
    return line[7:60]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlcv-stress-"))
    (work / "logs").mkdir()
    folders = [make_folder(work / "src-one", 1, 20), make_folder(work / "src-two", 2, 16)]
    t0 = time.time()
    refs = references(work, folders)
    data = work / "data"
    procs = chaos(work, data, folders, args.seconds, args.parallel, random.Random(args.seed))
    report, problems = settle_and_check(work, data, folders, refs, procs)
    report["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(report, indent=1))
    for p in problems:
        print("PROBLEM:", p)
    print(f"work dir: {work}" if args.keep else "")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
