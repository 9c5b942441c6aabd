"""One run directory -> one row of `mlcv runs`: its config (flattened to dotted keys), status,
accuracies and times, read without ever raising for a damaged run (the row says ``damaged``
and why).

Files are read with the fastest safe parser at hand (a line reader for the plain configs mlcv
writes, else libyaml when PyYAML has it, with the config loader's decimal numbers), each
bounded in size and never from a FIFO or device, because a batch script leaves hundreds of
runs behind and the listing must stay instant.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
from pathlib import Path

import yaml

from ..config.loading import (
    RunConfigLoader,  # numbers read as the config loader reads them (1:30 stays text)
)
from ..system import locks
from .rundir import CONFIG_FILE_LIMIT, LOCK_FILE, read_run_file


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
