"""`mlcv report`: one self-contained HTML page for a run, a cv run or a folder of runs."""

from __future__ import annotations

import click

from ..system import output
from . import completion, render
from .common import CONTEXT, require_matplotlib


@click.command("report", context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write the page here (default: TARGET/report.html).")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the system's web browser, where there is one.")
@click.option("--no-examples", is_flag=True, help="Do not score the test split again for the mistakes, neighbours and HOG pictures.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def report_cmd(target, out, open_page, no_examples, as_json):
    """Write one HTML page that shows a run, a cv run or a folder of runs.

    \b
    A run: metrics per split, loss and accuracy curves, the confusion matrix, per-class
    accuracy, what the model learned (class templates, first-layer weights, k-means
    filters, HOG cells), nearest neighbours (kNN), the most confident mistakes, timing,
    the config that differs from the defaults, and how to reproduce it.
    A cv run: the cv figure, every grid point with its folds, the best setting, the refit.
    A folder of runs: the `mlcv runs` table (sortable) linking each run's report, and
    accuracy against each hyperparameter the runs differ in.
    The page is one file with everything embedded: it fetches nothing and runs no script
    from anywhere else. Needs matplotlib: pip install 'mlcv[plot]'.
    \b
    Examples:
      mlcv report runs/softmax-20261129-101500
      mlcv report runs --out sweep.html --open
    """
    require_matplotlib()
    from .. import report

    result = report.write(target, out, with_examples=not no_examples)
    if open_page:
        result["opened"] = open_in_browser(result["report"])
    render.show("report", result, render.output_format(as_json))


def open_in_browser(path) -> bool:
    """Open the page in the system's browser; False (and a note) where there is none."""
    import webbrowser
    from pathlib import Path

    try:
        opened = webbrowser.get().open(Path(path).resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        output.echo(f"Note: no web browser found here; open {path} in one", err=True)
    return opened


def write_after_run(run_dir) -> str:
    """The report a `train --report` or `cv --report` writes into its run directory (its path)."""
    from .. import report

    return report.write(run_dir)["report"]
