"""`mlcv runs`: read many run directories into comparable rows, and diff two of them.

Reading never raises for a damaged run: the row says ``damaged`` and why. Files are
read with the fastest safe parser at hand (libyaml when PyYAML has it, with the config
loader's decimal numbers), each bounded in size and never from a FIFO or device, because a
batch script leaves hundreds of runs behind and the listing must stay instant.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import socket
from pathlib import Path

import yaml

from ..config import KEYS, KEYS_USED_BY
from ..config.loading import RunConfigLoader  # numbers read as the config loader reads them (1:30 stays text)
from ..errors import MlcvError, UsageError
from ..system import atomic, locks
from .rundir import CONFIG_FILE_LIMIT, LOCK_FILE, read_run_file

# Columns every listing has; any dotted config key can be used as well.
COLUMNS = ("name", "kind", "model", "dataset", "status", "train", "val", "test", "time", "date")
# Accuracy-like columns sort best first; everything else ascending.
DESCENDING = {"train", "val", "test"}
# Config keys that say where things are, not what was trained: never a "differing" column.
_NOT_HYPERPARAMETERS = {"name", "data.dir", "output.dir", "output.name", "cv.grid", "model.max_memory_mb", "train.checkpoint_every"}
_ALWAYS_SHOWN = {"model.type", "data.dataset"}


class _Damaged(Exception):
    pass


def _read_json(path: Path):
    """The parsed file, None when it does not exist; _Damaged when unreadable."""
    try:
        data = read_run_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Damaged(f"{path.name} unreadable ({exc.strerror or exc})") from None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _Damaged(f"{path.name} is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict):
        raise _Damaged(f"{path.name} holds a {type(obj).__name__}, not an object")
    return obj


def _read_config(path: Path):
    """config.yaml as {dotted key: value}; None when absent."""
    try:
        text = read_run_file(path, CONFIG_FILE_LIMIT)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Damaged(f"config.yaml unreadable ({exc.strerror or exc})") from None
    flat = fast_config(text)
    if flat is not None:
        return flat

    try:
        data = _plain_text(yaml.load(text, Loader=RunConfigLoader))  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise _Damaged(f"config.yaml is not valid YAML ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(data, dict):
        raise _Damaged("config.yaml does not hold a mapping")
    return flatten_config(data)


def _plain_text(value):
    """``value`` with text of any str subclass as plain str (a cached row compares them by type)."""
    if isinstance(value, dict):
        return {_plain_text(k): _plain_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_text(v) for v in value]
    return str(value) if isinstance(value, str) else value


def flatten_config(data: dict) -> dict:
    """A config as written -> {dotted key: value}: sections one level deep, the feature list as
    features.0.type, features.0.cell, ... (cv.grid stays one value)."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for i, item in enumerate(value):
                for sub, v in item.items():
                    flat[f"{key}.{i}.{sub}"] = v
        else:
            flat[str(key)] = value
    return flat


# The config.yaml that mlcv writes (yaml.safe_dump of two levels of plain scalars) is read
# here line by line: PyYAML's object construction costs ~1.5 ms a file, 1.5 s per 1,000 runs.
# Anything this reader is not sure of (quotes, flow collections, a third level, a scalar
# YAML 1.1 might read as a date, octal or sexagesimal) sends the whole file to PyYAML.
_LINES = re.compile(r"^( {0,2}|- )([A-Za-z_][A-Za-z0-9_]*):(?: ([^\n]*))?$", re.M)
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {**dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
         **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False)}
_KNOWN = {**{k: None for k in _NULL if k}, **_BOOL}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?")
_WORD = re.compile(r"[A-Za-z/_][A-Za-z0-9_./-]*")


def _scalar(text):
    """A plain scalar as YAML 1.1 reads it, or a marker object when unsure."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _WORD.fullmatch(text) and text.lower() not in (".inf", ".nan", "-.inf", "+.inf"):
        return text
    return _UNSURE


_UNSURE = object()


def fast_config(data: bytes):
    """mlcv's own config.yaml as {dotted key: value}, or None when PyYAML must read it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = _LINES.findall(text)
    if len(lines) != text.count("\n") + (not text.endswith("\n")) or not lines:
        return None  # some line is not `key: plain scalar` at indent 0 or 2
    flat, section, item = {}, None, -1  # item: index in a list section (features), -1 in a mapping
    for indent, key, value in lines:
        if not indent:
            section, item = (key, -1) if not value else (None, -1)
            if not value:
                continue
            full = key
        elif section is None:
            return None
        elif indent == "- ":
            item += 1
            full = f"{section}.{item}.{key}"
        else:
            full = f"{section}.{item}.{key}" if item >= 0 else f"{section}.{key}"
        if not value:
            return None  # a nested mapping below a key (cv.grid with values): leave it to PyYAML
        v = _KNOWN.get(value, _UNSURE)
        if v is _UNSURE:
            v = {} if value == "{}" else _scalar(value)
        if v is _UNSURE or full in flat:
            return None
        flat[full] = v
    return flat


def check_liveness(row) -> dict:
    """A run marked running that no live process holds becomes "stale" (checked on every listing)."""
    if row["status"] == "running" and process_gone(row):
        row = {**row, "status": "stale",
               "reason": f"marked running, but its process (pid {row['pid']}) is gone or no longer holds the run; resume or delete it"}
    return row


def process_gone(meta) -> bool:
    """True when no live process is writing the run any more.

    The run's lock (locks.py) decides: its writer holds it from before "running" is written
    until it ends, and the kernel drops it when the writer dies, so a SIGKILL, a reused pid or
    a process in another PID namespace cannot fool it. Only a definite answer counts: a run
    from another host whose lock is not held stays "running" (the file system may not share locks).
    """

    lock = Path(meta["path"]) / LOCK_FILE
    if locks.is_locked(lock) or (lock.exists() and not os.access(lock, os.R_OK)):  # held, or not ours to test
        return False
    host = meta.get("host")
    return not (host and host != socket.gethostname())


def is_run_dir(path: Path) -> bool:
    return any((path / f).is_file() for f in ("meta.json", "config.yaml", "metrics.json"))


def read_run(path, detail=False) -> dict:
    """One run directory as a row: name, kind, model, dataset, status, accuracies, config.

    ``detail`` adds the per-class accuracies and classes (for `runs diff`).
    """
    path = Path(path)
    row = {
        "name": path.name, "path": str(path), "kind": "train", "model": None, "dataset": None, "status": "unknown",
        "reason": None, "train": None, "val": None, "cv_std": None, "test": None, "final_loss": None,
        "time": None, "date": None, "pid": None, "host": None, "config": {},
    }
    problems = []

    def attempt(fn, *args):
        try:
            return fn(*args)
        except _Damaged as exc:
            problems.append(str(exc))
            return None

    meta = attempt(_read_json, path / "meta.json")
    cfg = attempt(_read_config, path / "config.yaml")
    row["config"] = cfg or {}
    if meta is not None:
        row["kind"] = "cv" if meta.get("kind") == "cv" else "train"
        row["model"] = meta.get("model")
        row["dataset"] = meta.get("dataset")
        row["date"] = meta.get("started") if isinstance(meta.get("started"), str) else None
        row["status"] = meta.get("status") if isinstance(meta.get("status"), str) else "unknown"
        if meta.get("error"):
            row["reason"] = str(meta["error"])[:200]
        row["pid"], row["host"] = meta.get("pid"), meta.get("host")
        if row["status"] == "interrupted" and row["kind"] == "train":
            row["reason"] = "interrupted; continue it with mlcv train --resume"
    elif not problems:
        problems.append("meta.json missing")
    row["model"] = row["model"] or row["config"].get("model.type")
    row["dataset"] = row["dataset"] or row["config"].get("data.dataset")
    if cfg is None and not any("config.yaml" in p for p in problems):
        problems.append("config.yaml missing")

    if row["kind"] == "cv":
        _read_cv(path, row, problems, attempt, detail)
    else:
        _read_train(path, row, problems, attempt, detail)
    _check_types(row, problems)
    if problems:
        row["status"] = "damaged"
        row["reason"] = "; ".join(problems)
    return row


def _read_train(path, row, problems, attempt, detail):
    metrics = attempt(_read_json, path / "metrics.json")
    if metrics is None:
        if row["status"] == "done" and not any("metrics.json" in p for p in problems):
            problems.append("status done but metrics.json missing")
        return
    for split in ("train", "val", "test"):
        row[split] = metrics.get(f"{split}_accuracy")
    row["final_loss"] = metrics.get("final_loss")
    times = metrics.get("times")
    if isinstance(times, dict):  # the whole run's wall time (data, features, fit, scoring); the parts stay in "times"
        row["time"] = times.get("total_s", times.get("fit_s"))
        row["times"] = times
    if detail:
        row["classes"] = metrics.get("classes")
        splits = metrics.get("splits") if isinstance(metrics.get("splits"), dict) else {}
        row["per_class"] = {s: (v or {}).get("per_class_accuracy") if isinstance(v, dict) else None for s, v in splits.items()}
        row["times"] = times if isinstance(times, dict) else {}


def _read_cv(path, row, problems, attempt, detail=False):
    summary = attempt(_read_json, path / "cv_summary.json")
    if summary is None:
        if row["status"] == "done" and not any("cv_summary.json" in p for p in problems):
            problems.append("status done but cv_summary.json missing")
        return
    row["val"] = summary.get("best_mean")
    row["cv_std"] = summary.get("best_std")
    row["time"] = summary.get("time_s")
    row["times"] = {"total_s": row["time"]}
    row["folds"] = summary.get("folds")
    best = summary.get("best_params")
    if isinstance(best, dict):
        row["best_params"] = best
        row["config"] = {**row["config"], **best}  # the row stands for its best setting
    refit = attempt(_read_json, path / "refit_summary.json")
    if refit:
        row["test"] = refit.get("test_accuracy")
        if detail:  # the refit model's per-class accuracies stand for the cv run's
            refit_row = dict(row)
            _read_train(path / "refit", refit_row, [], attempt, True)
            row.update({k: refit_row.get(k) for k in ("classes", "per_class")})


def _check_types(row, problems):
    """Numbers that are not numbers would break sorting and formatting: the run is damaged."""
    for key in ("train", "val", "cv_std", "test", "final_loss", "time"):
        v = row[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            problems.append(f"{key} value {v!r} is not a finite number")
            row[key] = None
    for key in ("model", "dataset"):
        if row[key] is not None and not isinstance(row[key], str):
            row[key] = str(row[key])


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
