"""A run directory (runs/<name>-<timestamp>/) and the files in it.

Every file is written atomically (see atomic.py). ``meta.json`` carries the run's
status: running, done, failed or interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy

from .. import __version__
from ..errors import MlcvError
from ..system import atomic, locks
from ..system.files import read_small

STATUSES = ("running", "done", "failed", "interrupted")
LOCK_FILE = ".lock"
# The most bytes a run file is read to: far above what mlcv writes (a metrics.json of 1,000
# classes is about 10 MB), far below what would exhaust the memory. config.yaml has the config
# loader's limit.
JSON_FILE_LIMIT = 64 << 20
CONFIG_FILE_LIMIT = 1 << 20


def read_run_file(path, limit=JSON_FILE_LIMIT) -> bytes:
    """A run file's bytes: a regular file of at most ``limit`` bytes, read without blocking
    (FileNotFoundError when absent, an OSError naming the problem otherwise)."""
    return read_small(path, limit)


def _now():
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def versions():

    return {"mlcv": __version__, "python": platform.python_version(), "numpy": numpy.__version__}


class RunDir:
    """One run's directory: config.yaml, meta.json, metrics.json, history.csv, model.npz, ..."""

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, root, name):
        """Make a new, unique run directory under ``root``.

        ``os.mkdir`` is atomic, so two processes started in the same second with the
        same config get different directories (the second gets a ``-2`` suffix).
        """
        root = Path(root)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            try:
                reason = "it is a file, not a directory" if root.is_file() else exc.strerror
            except OSError:
                reason = exc.strerror
            raise MlcvError(f"cannot create runs directory {root}: {reason}; set output.dir to a writable directory") from None
        for attempt in range(1, 1000):
            path = root / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise MlcvError(f"cannot create run directory {path}: {exc.strerror}; set output.dir to a writable directory") from None
            return cls(path)
        raise MlcvError(f"too many runs named {name}-{stamp} in {root}")

    def file(self, name):
        return self.path / name

    def locked(self):
        """Hold the run's lock while this process writes in it (re-entrant).

        A second process is refused at once, naming the holder's pid; the kernel drops the
        lock when its holder dies, so a killed run can be resumed right away. The first hold
        removes the temporary files a killed writer left.
        """

        def busy(pid):
            who = f"mlcv process {pid}" if pid else "another mlcv process"
            stop = f" (kill {pid})" if pid else ""
            return f"{self.path} is in use by {who}; wait for it to finish, or stop it{stop} and run this again"

        return self._locked(busy)

    @contextlib.contextmanager
    def _locked(self, busy):
        first = not locks.held_here(self.file(LOCK_FILE))
        with locks.hold(self.file(LOCK_FILE), wait=False, busy=busy):
            if first:  # no live writer here but us: temporaries are a killed process's
                atomic.remove_temporaries(self.path)
            yield

    def is_live(self):
        """True while some process holds this run's lock (it is being written now)."""
        return locks.is_locked(self.file(LOCK_FILE))

    def exists(self, name):
        return (self.path / name).exists()

    # -- meta.json --------------------------------------------------------------
    def read_meta(self):
        try:
            meta = json.loads(read_run_file(self.file("meta.json")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            raise MlcvError(f"{self.file('meta.json')} is unreadable ({exc}); the run directory is damaged") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("status", ""), str):
            raise MlcvError(f"{self.file('meta.json')} is not an mlcv meta.json (expected an object with a text status); the run directory is damaged")
        return meta

    def start_meta(self, command, seed, **extra):
        meta = {
            "command": command,
            "status": "running",
            "seed": seed,
            "started": _now(),
            "ended": None,
            "pid": os.getpid(),
            "versions": versions(),
            **extra,
        }
        self.write_json("meta.json", meta)
        return meta

    def update_meta(self, **changes):
        meta = self.read_meta()
        meta.update(changes)
        if changes.get("status") in ("done", "failed", "interrupted"):
            meta["ended"] = _now()
        self.write_json("meta.json", meta)
        return meta

    @property
    def status(self):
        return self.read_meta().get("status", "unknown")

    # -- writers ------------------------------------------------------------------
    def write_json(self, name, obj):
        atomic.write_json(self.file(name), obj)

    def write_text(self, name, text):
        atomic.write_text(self.file(name), text)

    def write_csv(self, name, rows, columns):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        atomic.write_text(self.file(name), buf.getvalue())

    def write_npz(self, name, arrays):
        atomic.save_npz(self.file(name), arrays)

    def read_json(self, name):
        try:
            return json.loads(read_run_file(self.file(name)))
        except FileNotFoundError:
            raise MlcvError(f"{self.file(name)} does not exist") from None
        except (OSError, ValueError, RecursionError) as exc:
            raise MlcvError(f"{self.file(name)} is unreadable ({exc})") from None


def command_line():
    return " ".join(["mlcv", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("mlcv") else " ".join(sys.argv)
