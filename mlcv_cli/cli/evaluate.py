"""`mlcv evaluate`: score a saved model on a split, or on other data."""

from __future__ import annotations

import click

from .. import config as config_mod
from .. import plots
from ..data import registry as datasets
from ..errors import UsageError
from ..system import output
from ..workflow import evaluate as evaluating
from . import completion, render
from .common import CONTEXT, accept_changes_option, data_dir_option, progress_factory, require_matplotlib


@click.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True), shell_complete=completion.complete_run_dirs)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True, help="Which split to score.")
@click.option("--data", "data_spec", help="Score on another dataset: sample, cifar10, cifar100, mnist, fashion-mnist, or an image folder/.zip/imported name.")
@data_dir_option
@click.option("--set", "overrides", multiple=True, metavar="data.KEY=VALUE", help="Override a data setting of the saved config, e.g. --set data.skip_bad=true.")
@click.option("--plot", is_flag=True, help="Write the confusion matrix (and, for kNN, the nearest-neighbours grid) as PNG. Needs mlcv[plot].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@accept_changes_option
def evaluate(target, split, data_spec, data_dir, overrides, plot, as_json, accept_changes):
    """Reload a model (run directory or model.npz) and score it on a split.

    The split is rebuilt exactly as in training (same config and seed).
    """

    changes = {}
    if data_spec:
        # Another dataset: its own sizes, so no subset sizes carried over from training.
        changes.update({"data.num_train": None, "data.num_test": None})
        if data_spec in datasets.DATASETS:
            changes["data.dataset"] = data_spec
        else:
            changes.update({"data.dataset": datasets.FOLDER, "data.path": data_spec})
    if data_dir:
        changes["data.dir"] = data_dir
    for item in overrides:
        key, value = config_mod.parse_override(item)
        if not key.startswith("data."):
            raise UsageError(f"evaluate --set changes data settings only (data.*), found {key!r}; the model is fixed")
        changes[key] = value
    if plot:
        require_matplotlib()
    result = evaluating.evaluate(target, split=split, data_cfg_overrides=changes, progress=progress_factory(not as_json),
                                 plot=plots.evaluation_plots if plot else None,
                               accept_changes=accept_changes)
    if result.get("warning"):
        output.echo(f"Warning: {result['warning']}", err=True)
    render.echo_note(result)
    render.show("evaluate", result, render.output_format(as_json))
