"""`mlcv predict`: classify image files with a saved model."""

from __future__ import annotations

import sys

import click

from ..system import output
from ..workflow import predict as predicting
from . import completion, render
from .common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True), shell_complete=completion.complete_run_dirs)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top", default=3, show_default=True, type=click.IntRange(1), help="How many classes to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV rows: path, rank, class, value.")
def predict(target, images, top, as_json, as_csv):
    """Classify image files (PNG/JPEG, any size; directories are searched).

    Shows probabilities for softmax, scores for SVM, neighbour votes for kNN.
    Unreadable files are reported and the rest still predicted (exit code 1 if any failed).
    """

    fmt = render.output_format(as_json, as_csv)
    r = predicting.predict(target, images, top=top)
    if r.get("warning"):
        output.echo(f"Warning: {r['warning']}", err=True)
    render.echo_note(r)
    for f in r["failed"]:
        output.echo(f"Error: {f['error']}", err=True)
    if r["failed"]:
        r["status"] = "partial" if r["predictions"] else "failed"  # and exit code 1
    render.show("predict", r, fmt)
    if r["failed"]:
        sys.exit(1)
