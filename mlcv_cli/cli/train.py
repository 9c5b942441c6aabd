"""`mlcv train`: train from a config into a run directory, or resume one."""

from __future__ import annotations

import click

from .. import config as config_mod
from .. import plots
from ..errors import UsageError
from ..models import registry
from ..system import output
from ..workflow import resume as resuming
from ..workflow import train as training
from . import completion, render
from .report import write_after_run
from .common import (
    CONTEXT,
    accept_changes_option,
    check_config_or_model,
    config_option,
    data_dir_option,
    load_config,
    progress_factory,
    require_matplotlib,
    set_option,
)


@click.command(context_settings=CONTEXT)
@config_option
@set_option
@click.option("--model", "model_type", type=click.Choice(registry.names()), help="Model to train when no --config is given.")
@data_dir_option
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True), shell_complete=completion.complete_run_dirs, help="Continue an interrupted run from its checkpoint.")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--plot", is_flag=True, help="Write loss.png, templates.png (raw pixels), filters.png (k-means), hog.png (HOG) and confusion-test.png into the run. Needs mlcv[plot].")
@click.option("--report", "write_report", is_flag=True, help="Write report.html into the run at the end (as `mlcv report RUN` does). Needs mlcv[plot].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@accept_changes_option
def train(config_path, overrides, model_type, data_dir, resume_dir, print_config, plot, write_report, as_json, accept_changes):
    """Train a model from a config and write a run directory.

    \b
    The run directory (output.dir/<name>-<timestamp>/) holds config.yaml, meta.json,
    metrics.json, model.npz and (linear models) history.csv. Ctrl-C stops after the current step,
    saves a checkpoint and prints how to resume. --resume RUN --set train.epochs=N trains a
    run (finished too) on to N epochs, as if it had been started with N.
    """

    if plot or write_report:
        require_matplotlib()
    progress = progress_factory(not as_json)
    if resume_dir:
        epochs = None
        for item in overrides:
            key, value = config_mod.parse_override(item)
            if key != "train.epochs":
                raise UsageError(f"--resume continues a run with its saved config; of --set it takes only train.epochs=N "
                                 f"(to train longer), found {key}")
            epochs = config_mod.check_value(key, value)
        if config_path or model_type:
            raise UsageError("--resume continues a run with its saved config; drop --config/--model")
        result = resuming.resume(resume_dir, progress=progress, epochs=epochs, accept_changes=accept_changes)
    else:
        check_config_or_model(config_path, model_type)
        cfg = load_config(config_path, overrides, model_type, data_dir=data_dir)
        if print_config:
            click.echo(config_mod.to_yaml(cfg), nl=False)
            return
        result = training.train(cfg, progress=progress)
    output.note_run_dir(result["run_dir"])
    render.echo_note(result)
    if plot:

        result["plots"] = plots.plot_run(result["run_dir"], which=("loss", "templates", "confusion", "filters", "hog"))
    if write_report:
        result["report"] = write_after_run(result["run_dir"])
    render.show("train", result, render.output_format(as_json))
    if write_report and not as_json:
        output.echo(f"report: {result['report']}")
