"""`mlcv cv`: choose hyperparameters by k-fold cross-validation."""

from __future__ import annotations

from pathlib import Path

import click

from .. import config as config_mod
from .. import plots
from ..errors import UsageError
from ..models import registry
from ..system import cluster, output
from ..workflow.cv import refit as cv_refit
from ..workflow.cv import run as cv_run
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
@click.option("--model", "model_type", type=click.Choice(registry.names()), help="Model to tune when no --config is given.")
@click.option("--folds", type=click.IntRange(2), help="Number of folds (cv.folds).")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...", help="Values to try, e.g. model.k=1,3,5 or 'train.lr=logspace(-7,-5,5)' (quoted: the shell reads parentheses; repeatable; replaces cv.grid).")
@click.option("--random", "random_n", type=click.IntRange(1, 10_000), help="Sample N random points (log scale for numbers) instead of the full grid (at most 10,000).")
@click.option("--jobs", "n_jobs", default=1, show_default=True, type=click.IntRange(1), help="Local worker processes.")
@click.option("--dask-scheduler", metavar="ADDRESS", help="Run the jobs on a Dask cluster (tcp://host:8786), or 'local' for a LocalCluster on 127.0.0.1.")
@click.option("--dask-timeout", type=click.FloatRange(1, 3600), default=cluster.DEFAULT_TIMEOUT, show_default=True, metavar="SECONDS",
              help="How long to wait for the Dask scheduler to answer, for a worker to join, or for workers to come back.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True), shell_complete=completion.complete_run_dirs, help="Finish an interrupted cv run, skipping finished jobs.")
@click.option("--refit", is_flag=True, help="Retrain the best setting on all training images and score the test split once.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (with the grid to search) and exit.")
@click.option("--plot", is_flag=True, help="Write cv.png (accuracy per fold, mean and std per value). Needs mlcv[plot].")
@click.option("--report", "write_report", is_flag=True, help="Write report.html into the run at the end, after --refit (as `mlcv report RUN`). Needs mlcv[plot].")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@accept_changes_option
def cv(config_path, overrides, model_type, folds, grid_items, random_n, n_jobs, dask_scheduler, dask_timeout, resume_dir, refit, print_config, plot,
       write_report, data_dir, as_json, accept_changes):
    """Choose hyperparameters by k-fold cross-validation on the training images.

    \b
    Folds are stratified and seeded; the test split is not touched unless --refit.
    Writes cv_results.csv (one row per grid point and fold), best.yaml and jobs.jsonl
    into runs/<name>-cv-<timestamp>/.
    \b
    Examples:
      mlcv cv --model knn --folds 5
      mlcv cv --config configs/svm.yaml --grid 'train.lr=logspace(-3,-1,3)' --jobs 2
    """

    if plot or write_report:
        require_matplotlib()
    if dask_scheduler:
        cluster.check_address(dask_scheduler)
    progress = progress_factory(not as_json)
    if resume_dir:
        if config_path or overrides or model_type or grid_items or folds:
            raise UsageError("--resume continues a cv run with its saved plan; drop --config/--set/--model/--grid/--folds")
        # A refit that was started (and perhaps interrupted) is finished on resume.
        refit = refit or (Path(resume_dir) / "refit").is_dir()
        result = cv_run.cross_validate(resume_dir=resume_dir, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout, progress=progress,
                                         accept_changes=accept_changes)
    else:
        check_config_or_model(config_path, model_type)
        extra = {}
        if folds:
            extra["cv.folds"] = folds
        if grid_items:
            extra["cv.grid"] = config_mod.parse_grid_option(grid_items)
        cfg = load_config(config_path, overrides, model_type, extra=extra, data_dir=data_dir)
        if print_config:
            if not cfg.cv.grid:
                cfg = config_mod.replace(cfg, {"cv.grid": config_mod.DEFAULT_GRIDS[cfg.model.type]})
            click.echo(config_mod.to_yaml(cfg), nl=False)
            return
        result = cv_run.cross_validate(cfg, random_n=random_n, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout, progress=progress)
    output.note_run_dir(result["run_dir"])
    render.echo_note(result)
    if plot:

        result["plots"] = plots.plot_run(result["run_dir"], which=("cv",))
    if not as_json:
        render.show("cv", result)  # before a refit, so the table is shown even if it is interrupted
    if refit:
        result["refit"] = cv_refit.refit_best(result["run_dir"], progress=progress, accept_changes=accept_changes)
        if not as_json:
            render.show("refit", result["refit"])
    if write_report:
        result["report"] = write_after_run(result["run_dir"])
        if not as_json:
            output.echo(f"report: {result['report']}")
    if as_json:
        render.show("cv", result, "json")
