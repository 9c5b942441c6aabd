"""Disk that mlcv fills: the feature cache (`mlcv cache`) and run directories (`mlcv runs rm`,
`mlcv runs --size`). Returns results; never prints."""

from __future__ import annotations

from ..data import cache_usage
from ..runs import cleanup
from .inputs import resolve_data_dir


def _cache_dir(data_dir):
    return resolve_data_dir(data_dir) / "features"


def cache_usage_report(data_dir=None) -> dict:
    """{"directory", "bytes", "entries"}: the feature cache's entries, least recently used first."""
    directory = _cache_dir(data_dir)
    found = cache_usage.entries(directory)
    return {"directory": str(directory), "bytes": sum(e.bytes for e in found), "entries": [e.to_dict() for e in found]}


def trim_cache(data_dir=None, *, max_bytes=None, dry_run=False) -> dict:
    """Remove every entry no running process holds (``max_bytes`` None), or the least recently used
    ones until the cache holds at most ``max_bytes``. {"directory", "dry_run", "max_bytes",
    "removed", "in_use" (entries kept because a process holds them, when they stood in the way),
    "freed", "bytes" (what the cache holds after)}."""
    directory = _cache_dir(data_dir)
    found = cache_usage.entries(directory)
    chosen = cache_usage.to_remove(found, max_bytes)
    removed, busy = (chosen, []) if dry_run else cache_usage.remove(directory, chosen)
    left = sum(e.bytes for e in found) - sum(e.bytes for e in removed)
    in_use = [e for e in found if e.in_use] + busy if max_bytes is None or left > max_bytes else busy
    return {"directory": str(directory), "dry_run": dry_run, "max_bytes": max_bytes,
            "removed": [e.to_dict() for e in removed], "in_use": [e.to_dict() for e in in_use],
            "freed": sum(e.bytes for e in removed), "bytes": left}


def remove_runs(runs_dir, filters, *, dry_run=False) -> dict:
    """Remove the run directories that every filter picks, never one a running process holds.
    {"runs_dir", "dry_run", "removed", "left" (each with its "reason"), "freed"}; rows as
    `mlcv runs --json` gives them, with "bytes"."""
    picked = cleanup.removable(runs_dir, filters)["runs"]
    if dry_run:
        removed = [r for r in picked if not r["live"] and r["status"] != "running"]
        left = [{**r, "reason": "running"} for r in picked if r["live"] or r["status"] == "running"]
    else:
        removed, left = cleanup.remove_runs(picked)
    return {"runs_dir": str(runs_dir), "dry_run": dry_run, "removed": removed, "left": left,
            "freed": sum(r["bytes"] for r in removed)}


def runs_with_sizes(rows) -> list:
    """Listing rows with "bytes" (each run directory's size)."""
    return cleanup.with_sizes(rows)
