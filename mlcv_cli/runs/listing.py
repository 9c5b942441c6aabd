"""`mlcv runs`: scan a folder of run directories into comparable rows (cached by each run's
file signatures), select and sort them, find the keys that differ, and diff two runs.

Reading one run is rows.py; a damaged run never stops a listing.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from ..config import KEYS, KEYS_USED_BY
from ..errors import MlcvError, UsageError
from ..system import atomic, locks
from .rows import check_liveness, is_run_dir, read_run
from .rundir import read_run_file

# Columns every listing has; any dotted config key can be used as well.
COLUMNS = ("name", "kind", "model", "dataset", "status", "train", "val", "test", "time", "date")
# Accuracy-like columns sort best first; everything else ascending.
DESCENDING = {"train", "val", "test"}
# Config keys that say where things are, not what was trained: never a "differing" column.
_NOT_HYPERPARAMETERS = {"name", "data.dir", "output.dir", "output.name", "cv.grid", "model.max_memory_mb", "train.checkpoint_every"}
_ALWAYS_SHOWN = {"model.type", "data.dataset"}


# Files whose identity, size and times decide whether a cached row is still right.
_SIGNATURE_FILES = ("meta.json", "config.yaml", "metrics.json", "cv_summary.json", "refit_summary.json")
CACHE_FILE = ".mlcv-runs-cache.json"
_CACHE_VERSION = 3  # 3: time is the whole run's wall time, with its parts in times
_CACHE_LIMIT = 256 << 20  # past this the cache costs more than it saves: the runs are read instead


def _signature(path: str):
    """[(inode, size, mtime_ns, ctime_ns) or None per file], or None when the directory holds no run files.

    The change time moves with chmod and chown too, so a row read while a file was unreadable
    is not kept once its permissions are fixed (damaged rows are not cached at all, see scan)."""
    sig, any_run_file = [], False
    for i, name in enumerate(_SIGNATURE_FILES):
        try:
            st = os.stat(os.path.join(path, name))
        except OSError:
            sig.append(None)
            continue
        sig.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        any_run_file = any_run_file or i < 3
    return sig if any_run_file else None


def _load_cache(root: Path) -> dict:
    try:
        data = json.loads(read_run_file(root / CACHE_FILE, _CACHE_LIMIT))
        if data.get("version") == _CACHE_VERSION and isinstance(data.get("runs"), dict):
            return data["runs"]
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    return {}


def _save_cache(root: Path, runs: dict):
    """Best effort: a read-only runs directory is listed just the same, only not faster next time."""

    try:
        # One writer at a time (another listing busy writing: skip); holding the lock, the
        # temporaries of a listing killed while writing are removed.
        with locks.hold(root / (CACHE_FILE + ".lock"), wait=False):
            atomic.remove_temporaries(root, name=CACHE_FILE)
            atomic.write_text(root / CACHE_FILE, json.dumps({"version": _CACHE_VERSION, "runs": runs}, separators=(",", ":")))
    except (MlcvError, OSError, ValueError, TypeError):
        pass


def scan(runs_dir) -> list:
    """Every run directory directly under ``runs_dir``, as rows (unsorted).

    Rows are cached in RUNS_DIR/.mlcv-runs-cache.json, keyed by each run file's identity, size
    and times, so listing a thousand runs again reads a thousand directories' metadata instead
    of three thousand files. A damaged row is never cached: what made it damaged (a permission,
    a full disk, a file being replaced) may be gone by the next listing, and nothing in the
    files' metadata need say so.
    """
    root = Path(runs_dir)
    if not root.exists():
        raise UsageError(f"runs directory {root} does not exist; give the directory your runs are in (output.dir, default runs/)")
    if not root.is_dir():
        raise UsageError(f"{root} is a file; give the directory that holds the run directories")
    if is_run_dir(root):
        raise UsageError(f"{root} is a single run directory; give the directory above it (e.g. {root.parent}), or compare runs with `mlcv runs diff`")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"cannot read runs directory {root}: {exc.strerror}") from None
    cache = _load_cache(root)
    fresh, rows = {}, []
    for entry in entries:
        try:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
        except OSError:
            continue
        sig = _signature(entry.path)
        if sig is None:
            continue
        hit = cache.get(entry.name)
        if isinstance(hit, dict) and hit.get("sig") == sig and isinstance(hit.get("row"), dict):
            row = hit["row"]
        else:
            row = read_run(entry.path)
        # A damaged run is recorded without its row: it is read again every time.
        fresh[entry.name] = {"sig": sig, "row": row} if row["status"] != "damaged" else {"sig": sig}
        rows.append(check_liveness({**row, "path": str(root / entry.name)}))
    if fresh.keys() != cache.keys() or any(fresh[k]["sig"] != cache[k].get("sig") for k in fresh):
        _save_cache(root, fresh)
    return rows


# -- choosing, sorting and filtering ---------------------------------------------------------


def value_of(row, key):
    if key in COLUMNS:
        return row.get(key)
    return row["config"].get(key)


_KEYS_USED_BY = None


def applies(row, key):
    """Whether a config key means anything for this row's model (k for kNN, lr for linear)."""
    global _KEYS_USED_BY
    if not key.startswith(("model.", "train.", "preprocess.")):
        return key != "cv.folds" or row["kind"] == "cv"
    if _KEYS_USED_BY is None:

        _KEYS_USED_BY = KEYS_USED_BY
    used = _KEYS_USED_BY.get(row.get("model"))
    return used is None or key in used


def differing_keys(rows) -> list:
    """Config keys whose values differ among the runs they apply to, in config order.

    Model, training and preprocessing keys are compared among runs of the same model type:
    a kNN run and a softmax run differ in preprocess.scale only because their defaults do.
    """
    seen = {}
    skip_by_model = {}
    for row in rows:
        model = row.get("model")
        skip = skip_by_model.get((model, row["kind"]))
        if skip is None:
            probe = {"model": model, "kind": row["kind"]}
            skip = {k for k in row["config"] if k in _NOT_HYPERPARAMETERS or k in _ALWAYS_SHOWN or not applies(probe, k)}
            skip_by_model[(model, row["kind"])] = skip
        for key, value in row["config"].items():
            if key in skip:
                continue
            group = model if key.startswith(("model.", "train.", "preprocess.", "features.")) else None
            seen.setdefault(key, {}).setdefault(group, set()).add(_hashable(value))
    return [k for k, groups in seen.items() if any(len(values) > 1 for values in groups.values())]


def _hashable(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return (type(value).__name__, value)


def short_names(keys) -> dict:
    """Dotted key -> its last part where that is unambiguous (model.reg -> reg), for table headers."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 and s not in COLUMNS else k) for k, s in zip(keys, last)}


def parse_filter(item: str):
    """'KEY=VALUE' (also !=, >, <, >=, <=) -> (key, op, value)."""
    for op in ("!=", ">=", "<=", "=", ">", "<"):
        if op in item:
            key, value = item.split(op, 1)
            key = key.strip()
            if not key:
                break
            return resolve_key(key, "--filter"), op, value.strip()
    raise UsageError(f"--filter expects KEY=VALUE (or KEY>VALUE, KEY<VALUE, KEY!=VALUE), found {item!r}; e.g. --filter model.type=svm")


def resolve_key(key, option):
    """A column, a dotted config key, or the last part of one (lr, reg, k) as the table shows it."""

    if key in COLUMNS or key in KEYS or key in ("name", "seed", "cv.grid") or re.fullmatch(r"features\.\d+\.\w+", key):
        return key
    matches = [k for k in KEYS if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if not matches:  # a typo (tset): the closest column, dotted key, or short name as the table shows it
        short = {k.rsplit(".", 1)[-1]: k for k in reversed(list(KEYS))}
        near = difflib.get_close_matches(key, [*COLUMNS, *KEYS, *short], n=1)
        matches = [short.get(near[0], near[0]) if near and near[0] not in COLUMNS and near[0] not in KEYS else near[0]] if near else []
    known = f"a column ({', '.join(COLUMNS)}) or a dotted config key such as model.reg"
    hint = f"did you mean {' or '.join(matches)}? (keys are {known})" if matches else f"use {known}"
    raise UsageError(f"{option}: unknown key {key!r}; {hint}")


def _as_number(text):
    text = text.strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        return float(text) * scale
    except ValueError:
        return None


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _matches(row, key, op, wanted):
    value = value_of(row, key)
    if key == "status" and wanted.lower() == "running" and value == "stale":
        value = "running"  # a stale run was running too; --filter status=stale picks only those
    number = _as_number(wanted)
    if _is_number(value) and number is not None:
        a, b = float(value), number
    elif op in ("=", "!="):
        a, b = _text(value), wanted.lower()
    else:
        return False  # an order comparison with a missing or text value selects nothing
    return {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def select(rows, filters=(), sort=None, reverse=False, top=None) -> list:
    """Rows that pass every filter, sorted (missing values last), the first ``top`` of them."""
    parsed = [parse_filter(f) for f in filters]
    rows = [r for r in rows if all(_matches(r, *f) for f in parsed)]
    if sort:
        sort = resolve_key(sort, "--sort")
        descending = (sort in DESCENDING) != reverse
        nums = [r for r in rows if _is_number(value_of(r, sort))]
        texts = [r for r in rows if value_of(r, sort) is not None and not _is_number(value_of(r, sort))]
        missing = [r for r in rows if value_of(r, sort) is None]
        nums.sort(key=lambda r: value_of(r, sort), reverse=descending)
        texts.sort(key=lambda r: _text(value_of(r, sort)), reverse=descending)
        rows = nums + texts + missing
    elif reverse:
        rows = rows[::-1]
    if top is not None:
        rows = rows[:top]
    return rows


def listing(runs_dir, filters=(), sort=None, reverse=False, top=None) -> dict:
    """The `mlcv runs` result: rows, the differing config keys, and counts."""
    rows = scan(runs_dir)
    chosen = select(rows, filters, sort, reverse, top)
    keys = differing_keys(chosen)
    return {"runs_dir": str(runs_dir), "total": len(rows), "runs": chosen, "param_keys": keys}


# -- diff ----------------------------------------------------------------------------------


def diff(path_a, path_b) -> dict:
    """Config keys that differ and the metrics side by side (per-class accuracy too)."""
    rows = []
    for p in (path_a, path_b):
        p = Path(p)
        if not p.is_dir():
            raise UsageError(f"{p} is not a directory; give two run directories (see `mlcv runs`)")
        if not is_run_dir(p):
            raise UsageError(f"{p} is not a run directory (no meta.json, config.yaml or metrics.json)")
        rows.append(check_liveness(read_run(p, detail=True)))
    a, b = rows
    keys = list(dict.fromkeys([*a["config"], *b["config"]]))
    config = [
        {"key": k, "a": a["config"].get(k), "b": b["config"].get(k)}
        for k in keys
        if k not in ("data.dir", "output.dir", "output.name") and a["config"].get(k) != b["config"].get(k)
    ]
    metrics = [{"metric": m, "a": a.get(m), "b": b.get(m)} for m in ("train", "val", "cv_std", "test", "final_loss", "time")
               if a.get(m) is not None or b.get(m) is not None]
    split, per_class = _per_class(a, b)
    return {"a": _brief(a), "b": _brief(b), "config": config, "metrics": metrics, "per_class_split": split, "per_class": per_class}


def _brief(row):
    return {k: row.get(k) for k in ("name", "path", "kind", "model", "dataset", "status", "reason")}


def _per_class(a, b):
    """(split, rows): per-class test accuracy (val when either run has no test split), matched
    by class name; no rows unless both runs have them."""
    for split in ("test", "val"):
        sides = []
        for row in (a, b):
            classes = row.get("classes") if isinstance(row.get("classes"), list) else None
            acc = (row.get("per_class") or {}).get(split)
            if classes is None or not isinstance(acc, list) or len(acc) != len(classes):
                break
            sides.append({str(c): v for c, v in zip(classes, acc)})
        if len(sides) == 2:
            break
    else:
        return None, []
    out = []
    for name in dict.fromkeys([*sides[0], *sides[1]]):
        va, vb = sides[0].get(name), sides[1].get(name)
        delta = vb - va if _is_number(va) and _is_number(vb) else None
        out.append({"class": name, "a": va, "b": vb, "delta": delta})
    return split, out
