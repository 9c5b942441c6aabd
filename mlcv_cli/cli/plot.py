"""`mlcv plot`: (re)draw every plot a run directory's files allow."""

from __future__ import annotations

import click

from .. import plots
from ..errors import MlcvError
from ..system import output
from . import completion
from .common import CONTEXT


@click.command("plot", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
def plot_cmd(run_dir):
    """(Re)draw every plot that a run directory's files allow.

    \b
    cv.png          accuracy per fold and value, mean +- std   (an `mlcv cv` run)
    loss.png        loss per iteration, accuracy per epoch      (linear models)
    templates.png   each class's weights as a colour image      (linear models)
    confusion-test.png  confusion matrix of the test split      (any trained run; as evaluate --plot)
    Needs matplotlib: pip install 'mlcv[plot]'.
    """

    made = plots.plot_run(run_dir)
    if not made:
        raise MlcvError(f"{run_dir} holds nothing to plot (no cv_summary.json, history.csv, model.npz or metrics.json)")
    for p in made:
        output.echo(p)
