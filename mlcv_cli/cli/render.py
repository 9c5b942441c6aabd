"""Printing results: rich tables on a terminal (plain lines when piped), one JSON object with --json."""

from __future__ import annotations

import json
import sys

import click

from ..system import output


def emit_json(obj):
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def echo_note(result):
    """A pipeline note (e.g. a slower fallback path was used) as one line on stderr."""
    if result.get("note"):
        output.echo(f"Note: {result['note']}", err=True)


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def train_summary(r):
    from rich.table import Table

    table = Table(title=f"{r['model']} on {r['dataset']}", show_header=True, header_style="bold")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_row("train", str(r["n_train"]), pct(r["train_accuracy"]))
    table.add_row("val", str(r["n_val"]), pct(r["val_accuracy"]))
    table.add_row("test", str(r["n_test"]), pct(r["test_accuracy"]))
    con = stdout_console()
    con.print(table)
    if describe(r.get("features")):
        con.print(describe(r.get("features")))
    if r.get("final_loss") is not None:
        con.print(f"final loss {r['final_loss']:.4f}; trained in {r['fit_s']:.1f} s ({r['total_s']:.1f} s in all)")
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']}")


def cv_summary(r):
    from rich.table import Table

    con = stdout_console()
    keys = list(r["grid"])
    table = Table(title=f"{r['folds']}-fold cross-validation of {r['model']} on {r['n_images']} {r['dataset']} training images", header_style="bold")
    table.add_column("rank", justify="right")
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column("accuracy (mean ± std)", justify="right")
    table.add_column("folds", justify="left")
    for rank, s in enumerate(r["summary"], start=1):
        style = "bold green" if rank == 1 else None
        table.add_row(
            str(rank),
            *[fmt_value(s["params"].get(k)) for k in keys],
            f"{100 * s['mean']:.2f}% ± {100 * s['std']:.2f}",
            " ".join(f"{100 * a:.1f}" for a in s["folds"]),
            style=style,
        )
    con.print(table)
    if r.get("warning"):
        from rich.text import Text

        con.print(Text.assemble(("Warning:", "yellow"), " ", output.printable(r["warning"])))
    best = ", ".join(f"{k}={fmt_value(v)}" for k, v in r["best_params"].items())
    con.print(f"best: {best} ({100 * r['best_mean']:.2f}% ± {100 * r['best_std']:.2f}); {r['jobs']} jobs in {r['time_s']:.1f} s"
              + (f" ({r['jobs_resumed']} resumed)" if r.get("jobs_resumed") else ""))
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']} (best config: {r['run_dir']}/best.yaml)")


def fmt_value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def evaluation(r):
    from rich.table import Table

    con = stdout_console()
    classes = r["classes"]
    con.print(f"{r['model']} model {r['model_path']} on {r['dataset']} {r['split']} ({r['n']} images): accuracy {pct(r['accuracy'])}")
    per = Table(title="per-class accuracy", header_style="bold")
    per.add_column("class")
    per.add_column("accuracy", justify="right")
    for name, acc in zip(classes, r["per_class_accuracy"]):
        per.add_row(name, pct(acc))
    con.print(per)
    if len(classes) > 20:
        _top_confusions(con, classes, r["confusion_matrix"])
        for p in r.get("plots", []):
            con.print(f"plot: {p}")
        return
    cm = Table(title="confusion matrix (rows: true class, columns: predicted)", header_style="bold")
    cm.add_column("")
    for name in classes:
        cm.add_column(name[:5], justify="right")
    for name, row in zip(classes, r["confusion_matrix"]):
        cm.add_row(name, *[str(v) for v in row])
    con.print(cm)
    for p in r.get("plots", []):
        con.print(f"plot: {p}")


def _top_confusions(con, classes, matrix, n=20):
    """With many classes a full matrix is unreadable: the largest off-diagonal counts instead."""
    from rich.table import Table

    cells = [(v, i, j) for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    t = Table(title=f"the {min(n, len(cells))} largest confusions ({len(classes)} classes; --json has the full matrix)", header_style="bold")
    for col, just in (("true class", "left"), ("predicted", "left"), ("images", "right"), ("of the class", "right")):
        t.add_column(col, justify=just)
    for v, i, j in cells[:n]:
        total = sum(matrix[i])
        t.add_row(classes[i], classes[j], str(v), f"{100 * v / total:.1f}%" if total else "-")
    con.print(t)


def stdout_console():
    """Rich output, strings as plain text; when piped, lines are not wrapped at 80 columns (scripts grep them)."""
    piped = not sys.stdout.isatty()
    return output.console(soft_wrap=piped, width=200 if piped else None)


def describe(features_doc) -> str:
    """One line for people: the chain, its size, and what the cache did (None for plain pixels)."""
    if not features_doc or features_doc.get("steps") == ["pixels"]:
        return None
    line = f"features: {' + '.join(features_doc['steps'])}, {features_doc['dim']} per image"
    line += " (standardized)" if features_doc.get("standardized") else ""
    events = [e for e in features_doc.get("cache", []) if e["cache"] != "off"]
    hits = [e for e in events if e["cache"] == "hit"]
    if events and len(hits) == len(events):
        line += f"; read from the feature cache in {sum(e['seconds'] for e in hits):.1f} s"
    elif events:
        computed = sum(e["seconds"] for e in events if e["cache"] != "hit")
        line += f"; computed in {computed:.1f} s"
        rebuilt = [e["cache"][len("rebuilt: "):] for e in events if e["cache"].startswith("rebuilt")]
        failed = [e["cache"] for e in events if e["cache"].startswith("failed")]
        if rebuilt:
            line += f" (cache entry rebuilt: {rebuilt[0]})"
        if failed:
            line += f" (not cached: {failed[0]})"
        elif not rebuilt:
            line += ", cached for the next run"
    return line
