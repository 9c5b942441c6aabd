"""A run's result files read back and checked: history.csv, metrics.json, cv_summary.json.

Plots and reports draw from these; a file that is not what mlcv wrote raises MlcvError naming
the file and what is wrong, so a damaged run is reported as damaged, never drawn wrongly.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import MlcvError
from .rundir import read_run_file


def read_history(run_dir) -> list:
    """history.csv rows (dicts of text), checked: whole iterations and epochs, numbers (or blanks) elsewhere."""
    path = Path(run_dir) / "history.csv"
    try:
        rows = list(csv.DictReader(io.StringIO(read_run_file(path).decode("utf-8"), newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); the run directory is damaged") from None
    for n, row in enumerate(rows, start=2):
        for key in ("iteration", "epoch", "loss", "lr", "train_acc", "val_acc"):
            value = row.get(key)
            try:
                if key in ("iteration", "epoch", "loss") or value:
                    (int if key in ("iteration", "epoch") else float)(value)
            except (TypeError, ValueError):
                raise MlcvError(f"{path} line {n}: {key} is {value!r}, expected a number; the run directory is damaged") from None
    return rows


def read_checked_json(path, problem_of):
    """A JSON run file, checked by ``problem_of(doc)`` (None when it is fine)."""
    try:
        doc = json.loads(read_run_file(path))
    except (OSError, ValueError, RecursionError) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); the run directory is damaged") from None
    problem = problem_of(doc)
    if problem:
        raise MlcvError(f"{path} is not what mlcv wrote ({problem}); the run directory is damaged")
    return doc


def read_metrics(path) -> dict:
    """metrics.json: model type, class names, and per split accuracy, per-class accuracy and confusion matrix."""
    return read_checked_json(path, metrics_problem)


def read_cv_summary(path) -> dict:
    """cv_summary.json: the grid, and per grid point its params, mean, std and fold accuracies."""
    return read_checked_json(path, cv_summary_problem)


def metrics_problem(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), str):
        return "expected an object with the model type"
    classes = doc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "no class names"
    splits = doc.get("splits")
    if not isinstance(splits, dict):
        return "no splits"
    features = doc.get("features")
    if features is not None and not (isinstance(features, dict) and isinstance(features.get("steps", []), list)
                                     and all(isinstance(x, str) for x in features.get("steps", []))):
        return "features is not a list of steps"
    C = len(classes)
    for name, split in splits.items():
        if split is None:
            continue
        cm = split.get("confusion_matrix") if isinstance(split, dict) else None
        if not (isinstance(cm, list) and len(cm) == C and all(isinstance(r, list) and len(r) == C for r in cm)
                and all(type(v) is int and v >= 0 for r in cm for v in r)):
            return f"the {name} confusion matrix is not {C} x {C} counts"
        per_class = split.get("per_class_accuracy")
        if per_class is not None and not (isinstance(per_class, list) and len(per_class) == C
                                          and all(v is None or isinstance(v, (int, float)) for v in per_class)):
            return f"the {name} per-class accuracy is not {C} numbers"
    return None


def cv_summary_problem(doc):
    if not isinstance(doc, dict) or not isinstance(doc.get("grid"), dict) or not isinstance(doc.get("summary"), list):
        return "expected an object with grid and summary"
    for row in doc["summary"]:
        if not (isinstance(row, dict) and isinstance(row.get("params"), dict) and type(row.get("point")) is int
                and all(isinstance(row.get(k), (int, float)) for k in ("mean", "std"))
                and isinstance(row.get("folds"), list) and all(isinstance(a, (int, float)) for a in row["folds"])):
            return "a summary row is malformed"
    if not all(isinstance(doc.get(k), (str, int)) for k in ("folds", "model", "dataset")):
        return "folds, model or dataset missing"
    return None
