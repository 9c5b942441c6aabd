"""`mlcv predict`: classify image files with a saved model."""

from __future__ import annotations

import sys

import click

from ..errors import UsageError
from ..system import output
from . import completion
from .common import CONTEXT, json_on_failure
from .render import echo_note, emit_json, stdout_console


@click.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True), shell_complete=completion.complete_run_dirs)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top", default=3, show_default=True, type=click.IntRange(1), help="How many classes to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV rows: path, rank, class, value.")
@json_on_failure
def predict(target, images, top, as_json, as_csv):
    """Classify image files (PNG/JPEG, any size; directories are searched).

    Shows probabilities for softmax, scores for SVM, neighbour votes for kNN.
    Unreadable files are reported and the rest still predicted (exit code 1 if any failed).
    """
    from ..workflow import predict as predicting

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    r = predicting.predict(target, images, top=top)
    if r.get("warning"):
        output.echo(f"Warning: {r['warning']}", err=True)
    echo_note(r)
    for f in r["failed"]:
        output.echo(f"Error: {f['error']}", err=True)
    if as_json:
        emit_json(r)
    elif as_csv:
        writer = output.csv_writer()
        writer.writerow(["path", "rank", "class", r["value"] or "value"])
        for p in r["predictions"]:
            for rank, t in enumerate(p["top"], start=1):
                writer.writerow([p["path"], rank, t["class"], t[r["value"]]])
    elif r["predictions"]:
        from rich.table import Table

        table = Table(header_style="bold")
        table.add_column("image")
        table.add_column("rank", justify="right")
        table.add_column("class")
        table.add_column(r["value"] or "value", justify="right")
        for p in r["predictions"]:
            for rank, t in enumerate(p["top"], start=1):
                v = t[r["value"]]
                table.add_row(p["path"] if rank == 1 else "", str(rank), t["class"], f"{v:.4f}" if isinstance(v, float) else str(v))
        stdout_console().print(table)
    if r["failed"]:
        sys.exit(1)
