"""Run directories on disk: their sizes (`mlcv runs --size`) and removing the runs a filter picks
(`mlcv runs rm`), never one that a running process holds."""

from __future__ import annotations

import os
import shutil

from ..errors import MlcvError, UsageError
from ..system.locks import LockBusy
from . import listing
from .rundir import RunDir


def dir_bytes(path) -> int:
    """Bytes of the files under ``path`` (links not followed; unreadable parts count as 0)."""
    total = 0
    for root, _, files in os.walk(path, onerror=lambda exc: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def with_sizes(rows) -> list:
    """Listing rows with ``bytes``, the size of each run directory."""
    return [{**row, "bytes": dir_bytes(row["path"])} for row in rows]


def removable(runs_dir, filters) -> dict:
    """The runs under ``runs_dir`` that every filter picks (the `mlcv runs --filter` grammar), with their
    sizes: {"runs_dir", "total" (runs in all), "runs" (the picked rows, each with "bytes" and
    "live": held by a running process now)}. At least one filter is required."""
    if not filters:
        raise UsageError("mlcv runs rm needs at least one --filter (e.g. --filter status=failed); "
                         "--filter status!=done picks every run that did not finish")
    rows = listing.scan(runs_dir)
    picked = with_sizes(listing.select(rows, filters, sort="date"))
    return {"runs_dir": str(runs_dir), "total": len(rows),
            "runs": [{**row, "live": RunDir(row["path"]).is_live()} for row in picked]}


def remove_runs(rows) -> tuple:
    """Delete the run directories of ``rows`` (from ``removable``), each while holding its lock, so
    a run that a process started meanwhile (or resumed) is left alone. Returns (removed rows,
    rows left with their "reason")."""
    removed, left = [], []
    for row in rows:
        run = RunDir(row["path"])
        if row["status"] == "running":  # live here, or on another host whose lock we cannot see
            left.append({**row, "reason": "running"})
            continue
        try:
            with run.locked():
                shutil.rmtree(run.path)
        except LockBusy:
            left.append({**row, "reason": "in use by a running process"})
            continue
        except MlcvError as exc:
            left.append({**row, "reason": f"could not be removed ({exc})"})
            continue
        except OSError as exc:
            left.append({**row, "reason": f"could not be removed ({exc.strerror or exc})"})
            continue
        removed.append(row)
    return removed, left
