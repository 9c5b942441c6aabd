"""Every printing command under every kind of broken output: what it exits with, and whether its work survived.

Usage: python bench/output_matrix.py [--keep DIR]
Each cell runs `mlcv COMMAND` as a real process with stdout or stderr closed (>&-), a full device
(> /dev/full, Linux) or a pipe whose reader has gone (| true); the expected status follows
output.py (141 broken pipe, 1 failed stdout, otherwise the command's own). A cell fails on a
traceback, an unexpected status, or a missing run (or refit) or one not marked done; "+log" marks
a run that kept what it could not print in output.log.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODES = ["ok", "stdout closed", "stderr closed", "both closed", "stdout full", "stdout gone", "stderr gone"]
DATA = ["--set", "data.dataset=folder", "--set", "data.path=tiny"]
MAKES_A_RUN = ("train", "train --json", "cv --refit")


def run(cwd, args, mode):
    handles, to_close, closed = {}, [], []
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if mode in (f"{name} closed", "both closed"):
            handles[name] = subprocess.DEVNULL
            closed.append(fd)
        elif mode == f"{name} full":
            handles[name] = open("/dev/full", "w")
            to_close.append(handles[name])
        elif mode == f"{name} gone":
            r, w = os.pipe()
            os.close(r)
            handles[name] = w
            to_close.append(w)
        else:
            handles[name] = subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, stdout=handles["stdout"],
                            stderr=handles["stderr"], text=True, preexec_fn=lambda: [os.close(fd) for fd in closed])
    for h in to_close:
        h.close() if hasattr(h, "close") else os.close(h)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out or "", err or ""


def expected(mode, own):
    if own != 0 or mode in ("ok", "stderr closed", "stderr gone"):
        return own
    return 141 if mode == "stdout gone" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="Work in this directory and keep it.")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="mlcv-output-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MLCV_DATA_DIR"] = str(work / "data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 5)):
        for cls in ("cat", "dog", "[bold]x"):
            d = work / "folder" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    assert run(work, ["download", "folder", work / "folder", "--name", "tiny"], "ok")[0] == 0
    assert run(work, ["train", "--model", "knn", *DATA, "--set", "output.name=base"], "ok")[0] == 0
    base = next((work / "runs").glob("base-*"))
    commands = {
        "train": ["train", "--model", "softmax", *DATA, "--set", "train.epochs=2"],
        "train --json": ["train", "--model", "knn", *DATA, "--json"],
        "cv --refit": ["cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", *DATA, "--refit"],
        "evaluate": ["evaluate", base],
        "predict --csv": ["predict", base, work / "folder" / "test" / "cat", "--csv"],
        "download folder": ["download", "folder", work / "folder", "--name", "again"],
        "runs": ["runs"],
        "configs": ["configs"],
        "gradcheck": ["gradcheck", "--model", "svm", "--checks", "3"],
        "usage error": ["train", "--model", "svm", "--set", "model.k=0"],
    }
    failures = 0
    print(f"{'command':<16}" + "".join(f"{m:>15}" for m in MODES))
    for name, argv in commands.items():
        cells, own = [], None
        for mode in MODES:
            before = set((work / "runs").iterdir())
            code, _, err = run(work, argv, mode)
            own = code if mode == "ok" else own
            made = [p for p in set((work / "runs").iterdir()) - before if p.is_dir()]
            status = [json.loads((p / "meta.json").read_text()).get("status") for p in made]
            ok = code == expected(mode, own) and "Traceback" not in err and all(s == "done" for s in status)
            if name in MAKES_A_RUN:  # the work itself: one finished run (and the refit of a cv --refit)
                ok = ok and len(made) == 1 and ("refit" not in argv or (made[0] / "refit" / "model.npz").is_file())
            failures += not ok
            cells.append(f"{code}{'' if ok else ' FAIL'}{' +log' if any((p / 'output.log').exists() for p in made) else ''}")
        print(f"{name:<16}" + "".join(f"{c:>15}" for c in cells))
    print(f"{failures} failing cells; work in {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
