"""Printing a command's result, in one place: a command hands its result (a dict) and its kind to
``show``, which prints it as the table a person reads (tables.py), as one JSON object (--json) or
as CSV rows (--csv). A new output format is a new branch here, not an edit of every command."""

from __future__ import annotations

import json

import click
import numpy as np

from ..errors import UsageError
from ..runs.listing import applies
from ..system import output
from . import tables

FORMATS = ("table", "json", "csv")
TABLES = {"train": tables.train, "cv": tables.cv, "refit": tables.refit, "evaluate": tables.evaluation,
          "predict": tables.predictions, "runs": tables.runs, "runs diff": tables.runs_diff, "configs": tables.configs,
          "gradcheck": tables.gradcheck, "report": tables.report, "runs rm": tables.runs_removed, "cache": tables.cache,
          "cache trim": tables.cache_trimmed}


def output_format(as_json=False, as_csv=False) -> str:
    """The format the --json/--csv flags ask for (both is a usage error)."""
    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    return "json" if as_json else "csv" if as_csv else "table"


def show(kind: str, result: dict, fmt: str = "table", **options):
    """Print ``result`` of a ``kind`` of command (a key of TABLES) in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        emit_json({"status": "done", **result})
    elif fmt == "csv":
        _CSV[kind](result, output.csv_writer())
    else:
        TABLES[kind](result, **options)


def emit_json(obj):
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def echo_note(result):
    """A workflow note (e.g. a slower fallback path was used) as one line on stderr."""
    if result.get("note"):
        output.echo(f"Note: {result['note']}", err=True)


# -- CSV ------------------------------------------------------------------------------------

RUNS_CSV_COLUMNS = ["name", "path", "kind", "model", "dataset", "status", "train", "val", "cv_std", "test", "final_loss", "time",
                    "date", "reason"]


def _predictions_csv(r, writer):
    writer.writerow(["path", "rank", "class", r["value"] or "value"])
    for p in r["predictions"]:
        for rank, t in enumerate(p["top"], start=1):
            writer.writerow([p["path"], rank, t["class"], t[r["value"]]])


def _runs_csv(result, writer):
    keys = result["param_keys"]
    columns = RUNS_CSV_COLUMNS + (["bytes"] if result["runs"] and "bytes" in result["runs"][0] else [])  # --size
    writer.writerow(columns + keys)
    for row in result["runs"]:
        writer.writerow([_cell(row.get(c)) for c in columns] + [_cell(row["config"].get(k)) if applies(row, k) else ""
                                                                for k in keys])


def _cell(v):
    return "" if v is None else v


_CSV = {"predict": _predictions_csv, "runs": _runs_csv}
