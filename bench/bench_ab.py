"""The same mlcv commands timed on two checkouts, alternating, in one run: did a change of
layout (or anything else) change what users wait for?

Usage: python bench/bench_ab.py OLD_CHECKOUT [NEW_CHECKOUT] [--rounds 5] [--only startup,train,cv,runs]

Each command runs as `python -c "<entry point>" ARGS` in a fresh process with PYTHONPATH set to
the checkout, in a fresh temporary directory (so nothing is read from an earlier round's run or
cache, except the runs listing, which reads a folder of runs made once per checkout), on the sample
shipped with the package. Rounds alternate old and new so that a busy machine slows both alike;
each line prints both medians (wall seconds), their ratio new / old and the load average.
NEW_CHECKOUT defaults to this repository. Both must be importable with the same Python (the
dependencies of the newer one installed). PYTHONDONTWRITEBYTECODE is removed from the children's
environment and each checkout runs once before the timed rounds, so both start from compiled
bytecode as an installed mlcv does (with it set, every start compiles every module it imports).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = ("import sys\n"
         "try:\n    from mlcv_cli.cli.app import main\n"  # the layout since #18
         "except ImportError:\n    from mlcv_cli.cli import main\n"  # one cli module before it
         "sys.argv[0] = 'mlcv'\nmain()\n")
COMMANDS = {
    "startup": ["--help"],
    "train": ["train", "--config", "softmax", "--set", "train.epochs=3"],
    "cv": ["cv", "--model", "knn", "--folds", "5"],
    "runs": ["runs", "RUNS"],
}


def run(checkout, args, cwd):
    env = {**os.environ, "PYTHONPATH": str(checkout), "MLCV_DATA_DIR": str(cwd / "data")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", ENTRY, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{checkout}: mlcv {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall


def runs_folder(checkout, root, count=30):
    """A folder of ``count`` short runs made by ``checkout``, for the listing."""
    folder = root / "runs"
    for i in range(count):
        run(checkout, ["train", "--config", "softmax", "--set", "train.epochs=1", "--set", f"train.lr={1e-3 * (i + 1):g}",
                       "--set", f"output.dir={folder}"], root)
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path, nargs="?", default=REPO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(COMMANDS))
    args = parser.parse_args()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    print(f"# old {checkouts['old']}, new {checkouts['new']}; {args.rounds} alternating rounds; "
          f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="mlcv-ab-"))
    try:
        for checkout in checkouts.values():  # writes the bytecode of what a start imports
            run(checkout, COMMANDS["startup"], work)
        folders = {}
        for name in args.only.split(","):
            times = {"old": [], "new": []}
            load0 = os.getloadavg()[0]
            for r in range(args.rounds):
                for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    command = COMMANDS[name]
                    if name == "runs":
                        if side not in folders:
                            (work / f"{side}-runs").mkdir()
                            folders[side] = runs_folder(checkouts[side], work / f"{side}-runs")
                        command = ["runs", str(folders[side])]
                    cwd = Path(tempfile.mkdtemp(dir=work))
                    times[side].append(run(checkouts[side], command, cwd))
                    shutil.rmtree(cwd, ignore_errors=True)
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"{name:8s} mlcv {' '.join(COMMANDS[name]):48s} old {old:6.2f} s  new {new:6.2f} s  new/old {new / old:5.2f}"
                  f"  (load {load0:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
