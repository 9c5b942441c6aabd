"""What the feature cache holds on disk, and removing entries from it (`mlcv cache`), least
recently used first, never one that a running process holds.

An entry is one of the cache's files (see feature_cache.py): encoded features (``<key>.npy``
with its ``.json`` marker), a fitted chain (``chain-<key>.npz``), and the work in progress of
an interrupted run (``steps-<key>.npz``, ``<key>.part/``). Its last use is its modification
time, which a cache hit sets. Held by a running process: features it has memory-mapped, an
encoding in progress (its part directory's lock), and the fitted extractors of one.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MlcvError
from ..system import atomic, locks
from . import feature_chunks
from .feature_cache import LOCK_FILE

@dataclass
class Entry:
    """One cache entry: ``name`` (its file or directory), ``kind`` (features, chain, steps, part or
    incomplete: a file a killed writer left), ``bytes``,
    ``last_used`` (seconds since the epoch), ``in_use`` and a ``detail`` for people."""

    name: str
    kind: str
    bytes: int
    last_used: float
    in_use: bool = False
    detail: str = ""
    paths: list = field(default_factory=list, repr=False)

    def to_dict(self):
        return {k: v for k, v in asdict(self).items() if k != "paths"}


def entries(directory) -> list:
    """The entries under ``directory`` (a data dir's features/), least recently used first."""
    directory = Path(directory)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise MlcvError(f"cannot read the feature cache {directory}: {exc.strerror}") from None
    found, busy_images = [], _images_being_encoded(directory, names)
    for name in names:
        path = directory / name
        if name.startswith(".") or name.endswith(".json"):
            continue  # the lock, temporaries, and markers (counted with their .npy)
        entry = _entry(path, busy_images)
        if entry is not None:
            found.append(entry)
    for name in names:  # a marker whose features are gone
        if name.endswith(".json") and not name.startswith(".") and not (directory / name).with_suffix(".npy").exists():
            found.append(_files_entry(name, "incomplete", [directory / name]))
    found.sort(key=lambda e: (e.last_used, e.name))
    return found


def _entry(path, busy_images):
    name = path.name
    if name.endswith(feature_chunks.SUFFIX) and path.is_dir():
        return _part_entry(path)
    if name.endswith(".npy"):
        marker = path.with_suffix(".json")
        if not marker.exists():
            return _files_entry(name, "incomplete", [path])
        entry = _files_entry(name, "features", [path, marker], last_use=marker)
        entry.in_use = locks.in_use(path)
        entry.detail = _shape_of(marker)
        return entry
    if name.startswith(("chain-", "steps-")) and name.endswith(".npz"):
        kind = name.split("-", 1)[0]
        entry = _files_entry(name, kind, [path])
        entry.in_use = kind == "steps" and _images_of(path) in busy_images
        return entry
    return None


def _files_entry(name, kind, paths, last_use=None):
    sizes, times = [], []
    for p in paths:
        with contextlib.suppress(OSError):
            st = p.stat()
            sizes.append(st.st_size)
            times.append(st.st_mtime)
    if last_use is not None:
        with contextlib.suppress(OSError):
            times = [last_use.stat().st_mtime]
    return Entry(name, kind, sum(sizes), max(times, default=0.0), paths=list(paths))


def _part_entry(path):
    files = [p for p in path.iterdir()] if path.is_dir() else []
    entry = _files_entry(path.name, "part", files + [path])
    entry.in_use = locks.in_use(path / feature_chunks.LOCK_FILE)
    manifest = _read_json(path / feature_chunks.MANIFEST)
    chunks = sum(1 for p in files if p.name.endswith(".npy") and not p.name.startswith("."))
    try:
        n, d = manifest["shape"]
        entry.detail = f"{chunks} of {-(-int(n) // int(manifest['chunk_rows']))} chunks of {n} x {d}"
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        entry.detail = f"{chunks} chunks"
    return entry


def _images_being_encoded(directory, names):
    """Fingerprints of the images that running processes are encoding now (their part directories' locks)."""
    busy = set()
    for name in names:
        path = directory / name
        if name.endswith(feature_chunks.SUFFIX) and locks.in_use(path / feature_chunks.LOCK_FILE):
            busy.add((_read_json(path / feature_chunks.MANIFEST) or {}).get("images"))
    return busy - {None}


def _images_of(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            return str(npz["images"])
    except Exception:  # a damaged file is nobody's
        return None


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _shape_of(marker):
    shape = (_read_json(marker) or {}).get("shape")
    return f"{shape[0]} x {shape[1]}" if isinstance(shape, list) and len(shape) == 2 else ""


def to_remove(found, max_bytes=None):
    """The entries to remove, least recently used first: all of them (``max_bytes`` None), or as many
    as it takes to bring the cache to at most ``max_bytes``. Entries in use are never chosen."""
    if max_bytes is None:
        return [e for e in found if not e.in_use]
    total, chosen = sum(e.bytes for e in found), []
    for e in found:
        if total <= max_bytes:
            break
        if not e.in_use:
            chosen.append(e)
            total -= e.bytes
    return chosen


def remove(directory, chosen) -> tuple:
    """Delete the chosen entries holding the cache's lock, so no reader maps one and no writer
    writes one meanwhile; one a process took up since it was listed is left. Returns (removed,
    left in use)."""
    directory = Path(directory)
    removed, busy = [], []
    if not chosen:
        return removed, busy
    with locks.hold(directory / LOCK_FILE, remove=False, timeout=120, on_wait=locks.say_waiting("writing the feature cache")):
        now_busy = {e.name for e in entries(directory) if e.in_use}
        for e in chosen:
            if e.name in now_busy:
                busy.append(e)
                continue
            for p in e.paths:
                if p.is_dir():
                    feature_chunks.remove_tree(p)
                else:
                    atomic.remove_quietly(p)
            removed.append(e)
    return removed, busy
