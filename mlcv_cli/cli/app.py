"""The `mlcv` command: each subcommand parses options, calls one pipeline function, prints.

Exit codes: 0 success, 1 runtime failure, 2 usage or config error, 130 interrupted
(143 for SIGTERM during training), 141 when the reader of stdout went away (`| head -1`) after
the work was done (output.py). A user mistake prints one `Error: ...` line;
--debug or MLCV_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path

import click

from .. import __version__
from ..system import cluster, output
from . import completion
from ..errors import MlcvError, UsageError
from ..system.signals import EXIT_CODE, Terminated, exit_by_signal, sigterm_raises

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _debug_enabled():
    return os.environ.get("MLCV_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]


def _stdout_console():
    """Rich output, strings as plain text; when piped, lines are not wrapped at 80 columns (scripts grep them)."""
    piped = not sys.stdout.isatty()
    return output.console(soft_wrap=piped, width=200 if piped else None)


def _progress_factory(enabled=True):
    """Progress on stderr: a tqdm bar in a terminal; in a log (stderr not a terminal), a plain
    line per milestone (an epoch, a finished cv job) and one when a long step ends."""
    if not sys.stderr.isatty():
        from ..system.progress import LineProgress

        return LineProgress
    return lambda total, desc: _TerminalBar(total, desc, enabled)


class _TerminalBar:
    """A tqdm bar on stderr; its postfix is merged, so the last epoch's validation accuracy stays
    beside each step's loss."""

    def __init__(self, total, desc, enabled=True):
        from tqdm import tqdm

        self.tqdm = tqdm(total=total, desc=output.printable(desc), unit="it", file=sys.stderr, disable=not enabled, leave=False, dynamic_ncols=True)
        self.shown = {}

    def update(self, n=1, **postfix):
        self.shown.update({k: output.printable(v) if isinstance(v, str) else v for k, v in postfix.items() if v is not None})
        if postfix:
            self.tqdm.set_postfix(self.shown, refresh=False)
        if n:
            self.tqdm.update(n)

    def close(self):
        self.tqdm.close()


def _emit_json(obj):
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_on_failure(command):
    """With --json, a failed or interrupted command still prints one JSON object (status, run_dir, error)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (MlcvError, KeyboardInterrupt) as exc:
            if not kwargs.get("as_json"):
                raise
            code = getattr(exc, "exit_code", 143 if isinstance(exc, Terminated) else 130)
            _emit_json({
                "status": "interrupted" if code in EXIT_CODE.values() else "failed",
                "run_dir": getattr(exc, "run_dir", None),
                "error": str(exc) or "interrupted",
                "exit_code": code,
            })
            raise

    return wrapper


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _echo_note(result):
    """A pipeline note (e.g. a slower fallback path was used) as one line on stderr."""
    if result.get("note"):
        output.echo(f"Note: {result['note']}", err=True)


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


# -- the group ------------------------------------------------------------------------


class MlcvGroup(click.Group):
    """Turns MlcvError into one `Error: ...` line and its exit code, Ctrl-C into 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        debug = _debug_enabled()
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except MlcvError as exc:
            output.note_run_dir(getattr(exc, "run_dir", None))
            if debug:
                raise
            prefix = "Interrupted" if exc.exit_code in (130, 143) else "Error"
            click.echo(f"{prefix}: {output.printable(exc)}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            if debug:
                raise
            click.echo("Interrupted.", err=True)
            # click turns KeyboardInterrupt into Abort; the cause says which signal it was.
            sys.exit(143 if isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated) else 130)
        except click.ClickException as exc:
            exc.message = output.printable(exc.message)  # it may quote a path or value as typed
            exc.show()
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.exit(1)
        except MemoryError:  # runs catch their own and stay resumable; this is loading, scoring, ...
            if debug:
                raise
            click.echo("Error: ran out of memory; free memory, or use fewer images (data.num_train, data.num_test), "
                       "smaller features or fewer --jobs", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=MlcvGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="mlcv")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (or set MLCV_DEBUG=1).")
def cli(debug):
    """mlcv: train and compare kNN, multiclass SVM and softmax image classifiers.

    \b
    Quick start (works offline on the small CIFAR-10 sample shipped with mlcv):
      mlcv train --config configs/softmax.yaml
      mlcv cv --model knn --folds 5
      mlcv evaluate runs/softmax-YYYYMMDD-HHMMSS
      mlcv predict runs/softmax-YYYYMMDD-HHMMSS cat.png
    """


# -- download -------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def download():
    """Fetch CIFAR-10, CIFAR-100, MNIST or Fashion-MNIST, or import an image folder, into the data dir.

    The data dir is --data-dir, else $MLCV_DATA_DIR, else ./data.
    """


def _data_dir(option):
    from ..workflow.inputs import resolve_data_dir

    return resolve_data_dir(option)


@download.command("cifar10", context_settings=CONTEXT)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where datasets live (default $MLCV_DATA_DIR or ./data).")
@click.option("--url", help="Download from this mirror instead of the official site.")
@click.option("--archive", type=click.Path(dir_okay=False, exists=True), help="Use a local copy of cifar-10-binary.tar.gz instead of downloading.")
@click.option("--md5", help="Expected MD5 of the archive (for a mirror that repacks it).")
@click.option("--force", is_flag=True, help="Download and decode again even if a verified copy is there.")
def download_cifar10(data_dir, url, archive, md5, force):
    """Download the CIFAR-10 binary archive, verify it, and cache it as .npy arrays.

    A partial download is resumed; nothing is used before its MD5 checks out.
    """
    from ..data import cifar10

    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise UsageError(f"--md5 expects 32 hexadecimal digits, found {md5!r}")
    kwargs = {"force": force, "progress": True}
    if url:
        kwargs["url"] = url
    if archive:
        kwargs["archive"] = archive
    if md5:
        kwargs["md5"] = md5
    result = cifar10.prepare_cifar10(_data_dir(data_dir), **kwargs)
    if result["status"] == "cached":
        output.echo(f"CIFAR-10 is already in {result['path']} (verified); nothing to do. Use --force to fetch it again.")
    else:
        output.echo(f"CIFAR-10 ready in {result['path']} (50,000 training and 10,000 test images).")


@download.command("folder", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", required=True, help="Name to use it by: data.dataset: folder, data.path: NAME.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where datasets live (default $MLCV_DATA_DIR or ./data).")
@click.option("--size", default=32, show_default=True, type=click.IntRange(4, 512), help="Images are resized to SIZE x SIZE.")
@click.option("--skip-bad", is_flag=True, help="Import the readable images and list the unreadable ones, instead of stopping.")
def download_folder(path, name, data_dir, size, skip_bad):
    """Import an image folder (ROOT/<split>/<class>/<image>, a directory or .zip) into the cache."""
    from ..data import import_folder

    result = import_folder(path, _data_dir(data_dir), name, size=size, skip_bad=skip_bad, progress=True)
    if result["replaced"]:
        output.echo(f"Replaced the dataset previously imported as {name}.", err=True)
    for bad_path, reason in result.get("skipped", []):
        output.echo(f"skipped {bad_path}: {reason}", err=True)
    for note in result.get("notes", []):
        output.echo(f"Warning: {note}", err=True)
    output.echo(
        f"Imported {result['n_train']} training and {result['n_test']} test images in "
        f"{len(result['classes'])} class{'' if len(result['classes']) == 1 else 'es'} into {result['path']}. Use it with: --set data.dataset=folder --set data.path={name}"
        + (f" --set data.image_size={size}" if size != 32 else "")
    )
    if not result["n_test"]:
        from ..data.splits import holdout_size

        held = holdout_size(result["n_train"])
        output.echo(f"It has no test/ split: {held} of its images (10%) are held out as the test split when it is used "
                    "(data.num_test sets how many)." if held else "It has no test/ split, and too few images to hold one out.", err=True)


# -- train ------------------------------------------------------------------------------

_set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. --set model.k=5 (repeatable)."
)
_config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), shell_complete=completion.complete_config_files,
    help="YAML experiment config: a file, or a shipped config's name (softmax, svm, knn, ...: see `mlcv configs`).",
)
_data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), help="Data dir (default $MLCV_DATA_DIR or ./data).")


def _check_config_or_model(config_path, model_type):
    if not config_path and not model_type:
        raise UsageError("give --config FILE (see configs/) or --model knn|svm|softmax")
    if config_path and model_type:
        raise UsageError("give either --config or --model, not both (a config names its model in model.type; use configs/MODEL.yaml)")


def _load_config(config_path, overrides, model_type=None, extra=None, data_dir=None):
    from .. import config as config_mod

    extra = dict(extra or {})
    if data_dir:
        extra["data.dir"] = data_dir
    return config_mod.resolve(config_path, overrides, model_type=model_type, extra=extra)


_accept_changes_option = click.option(
    "--accept-changes", is_flag=True,
    help="Go on although the data, config.yaml or cv_plan.json changed since the run started (refused otherwise).")


@cli.command(context_settings=CONTEXT)
@_config_option
@_set_option
@click.option("--model", "model_type", type=click.Choice(["knn", "svm", "softmax"]), help="Model to train when no --config is given.")
@_data_dir_option
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True), shell_complete=completion.complete_run_dirs, help="Continue an interrupted run from its checkpoint.")
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
@click.option("--plot", is_flag=True, help="Write loss.png, templates.png (raw pixels), filters.png (k-means), hog.png (HOG) and confusion-test.png into the run. Needs mlcv[plot].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@_accept_changes_option
@_json_on_failure
def train(config_path, overrides, model_type, data_dir, resume_dir, print_config, plot, as_json, accept_changes):
    """Train a model from a config and write a run directory.

    \b
    The run directory (output.dir/<name>-<timestamp>/) holds config.yaml, meta.json,
    metrics.json, model.npz and (linear models) history.csv. Ctrl-C stops after the current step,
    saves a checkpoint and prints how to resume. --resume RUN --set train.epochs=N trains a
    run (finished too) on to N epochs, as if it had been started with N.
    """
    from .. import config as config_mod
    from ..workflow import resume as resuming
    from ..workflow import train as training

    if plot:
        _require_matplotlib()
    progress = _progress_factory(not as_json)
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
        _check_config_or_model(config_path, model_type)
        cfg = _load_config(config_path, overrides, model_type, data_dir=data_dir)
        if print_config:
            click.echo(config_mod.to_yaml(cfg), nl=False)
            return
        result = training.train(cfg, progress=progress)
    output.note_run_dir(result["run_dir"])
    _echo_note(result)
    if plot:
        from .. import plots

        result["plots"] = plots.plot_run(result["run_dir"], which=("loss", "templates", "confusion", "filters", "hog"))
    if as_json:
        _emit_json({"status": "done", **result})
        return
    _print_train_summary(result)


def _print_train_summary(r):
    from rich.table import Table

    table = Table(title=f"{r['model']} on {r['dataset']}", show_header=True, header_style="bold")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_row("train", str(r["n_train"]), _pct(r["train_accuracy"]))
    table.add_row("val", str(r["n_val"]), _pct(r["val_accuracy"]))
    table.add_row("test", str(r["n_test"]), _pct(r["test_accuracy"]))
    con = _stdout_console()
    con.print(table)
    from ..data.feature_cache import describe

    if describe(r.get("features")):
        con.print(describe(r.get("features")))
    if r.get("final_loss") is not None:
        con.print(f"final loss {r['final_loss']:.4f}; trained in {r['fit_s']:.1f} s ({r['total_s']:.1f} s in all)")
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']}")


# -- cv ---------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@_config_option
@_set_option
@click.option("--model", "model_type", type=click.Choice(["knn", "svm", "softmax"]), help="Model to tune when no --config is given.")
@click.option("--folds", type=click.IntRange(2), help="Number of folds (cv.folds).")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...", help="Values to try, e.g. model.k=1,3,5 or train.lr=logspace(-7,-5,5) (repeatable; replaces cv.grid).")
@click.option("--random", "random_n", type=click.IntRange(1, 10_000), help="Sample N random points (log scale for numbers) instead of the full grid (at most 10,000).")
@click.option("--jobs", "n_jobs", default=1, show_default=True, type=click.IntRange(1), help="Local worker processes.")
@click.option("--dask-scheduler", metavar="ADDRESS", help="Run the jobs on a Dask cluster (tcp://host:8786), or 'local' for a LocalCluster on 127.0.0.1.")
@click.option("--dask-timeout", type=click.FloatRange(1, 3600), default=cluster.DEFAULT_TIMEOUT, show_default=True, metavar="SECONDS",
              help="How long to wait for the Dask scheduler to answer, for a worker to join, or for workers to come back.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True), shell_complete=completion.complete_run_dirs, help="Finish an interrupted cv run, skipping finished jobs.")
@click.option("--refit", is_flag=True, help="Retrain the best setting on all training images and score the test split once.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (with the grid to search) and exit.")
@click.option("--plot", is_flag=True, help="Write cv.png (accuracy per fold, mean and std per value). Needs mlcv[plot].")
@_data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@_accept_changes_option
@_json_on_failure
def cv(config_path, overrides, model_type, folds, grid_items, random_n, n_jobs, dask_scheduler, dask_timeout, resume_dir, refit, print_config, plot, data_dir, as_json, accept_changes):
    """Choose hyperparameters by k-fold cross-validation on the training images.

    \b
    Folds are stratified and seeded; the test split is not touched unless --refit.
    Writes cv_results.csv (one row per grid point and fold), best.yaml and jobs.jsonl
    into runs/<name>-cv-<timestamp>/.
    \b
    Examples:
      mlcv cv --model knn --folds 5
      mlcv cv --config configs/svm.yaml --grid train.lr=logspace(-3,-1,3) --jobs 2
    """
    from .. import config as config_mod
    from ..workflow.cv import refit as cv_refit
    from ..workflow.cv import run as cv_run

    if plot:
        _require_matplotlib()
    if dask_scheduler:
        cluster.check_address(dask_scheduler)
    progress = _progress_factory(not as_json)
    if resume_dir:
        if config_path or overrides or model_type or grid_items or folds:
            raise UsageError("--resume continues a cv run with its saved plan; drop --config/--set/--model/--grid/--folds")
        # A refit that was started (and perhaps interrupted) is finished on resume.
        refit = refit or (Path(resume_dir) / "refit").is_dir()
        result = cv_run.cross_validate(resume_dir=resume_dir, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout, progress=progress,
                                         accept_changes=accept_changes)
    else:
        _check_config_or_model(config_path, model_type)
        extra = {}
        if folds:
            extra["cv.folds"] = folds
        if grid_items:
            extra["cv.grid"] = config_mod.parse_grid_option(grid_items)
        cfg = _load_config(config_path, overrides, model_type, extra=extra, data_dir=data_dir)
        if print_config:
            if not cfg.cv.grid:
                cfg = config_mod.replace(cfg, {"cv.grid": config_mod.DEFAULT_GRIDS[cfg.model.type]})
            click.echo(config_mod.to_yaml(cfg), nl=False)
            return
        result = cv_run.cross_validate(cfg, random_n=random_n, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout, progress=progress)
    output.note_run_dir(result["run_dir"])
    _echo_note(result)
    if plot:
        from .. import plots

        result["plots"] = plots.plot_run(result["run_dir"], which=("cv",))
    if not as_json:
        _print_cv_summary(result)  # before a refit, so the table is shown even if it is interrupted
    if refit:
        result["refit"] = cv_refit.refit_best(result["run_dir"], progress=progress, accept_changes=accept_changes)
        if not as_json:
            f = result["refit"]
            _stdout_console().print(
                f"refit on {f['n_train'] + f['n_val']} images: test accuracy {_pct(f['test_accuracy'])}; model: {f['run_dir']}/model.npz"
            )
    if as_json:
        _emit_json(result)


def _require_matplotlib():
    """Fail before any work starts when --plot is asked for without matplotlib."""
    from .. import plots

    plots.pyplot()


def _print_cv_summary(r):
    from rich.table import Table

    con = _stdout_console()
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
            *[_fmt_value(s["params"].get(k)) for k in keys],
            f"{100 * s['mean']:.2f}% ± {100 * s['std']:.2f}",
            " ".join(f"{100 * a:.1f}" for a in s["folds"]),
            style=style,
        )
    con.print(table)
    if r.get("warning"):
        from rich.text import Text

        con.print(Text.assemble(("Warning:", "yellow"), " ", output.printable(r["warning"])))
    best = ", ".join(f"{k}={_fmt_value(v)}" for k, v in r["best_params"].items())
    con.print(f"best: {best} ({100 * r['best_mean']:.2f}% ± {100 * r['best_std']:.2f}); {r['jobs']} jobs in {r['time_s']:.1f} s"
              + (f" ({r['jobs_resumed']} resumed)" if r.get("jobs_resumed") else ""))
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']} (best config: {r['run_dir']}/best.yaml)")


def _fmt_value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# -- evaluate -----------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True), shell_complete=completion.complete_run_dirs)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True, help="Which split to score.")
@click.option("--data", "data_spec", help="Score on another dataset: sample, cifar10, cifar100, mnist, fashion-mnist, or an image folder/.zip/imported name.")
@_data_dir_option
@click.option("--set", "overrides", multiple=True, metavar="data.KEY=VALUE", help="Override a data setting of the saved config, e.g. --set data.skip_bad=true.")
@click.option("--plot", is_flag=True, help="Write the confusion matrix (and, for kNN, the nearest-neighbours grid) as PNG. Needs mlcv[plot].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@_accept_changes_option
@_json_on_failure
def evaluate(target, split, data_spec, data_dir, overrides, plot, as_json, accept_changes):
    """Reload a model (run directory or model.npz) and score it on a split.

    The split is rebuilt exactly as in training (same config and seed).
    """
    from .. import config as config_mod
    from ..workflow import evaluate as evaluating

    changes = {}
    if data_spec:
        # Another dataset: its own sizes, so no subset sizes carried over from training.
        changes.update({"data.num_train": None, "data.num_test": None})
        if data_spec in ("sample", "cifar10", "cifar100", "mnist", "fashion-mnist"):
            changes["data.dataset"] = data_spec
        else:
            changes.update({"data.dataset": "folder", "data.path": data_spec})
    if data_dir:
        changes["data.dir"] = data_dir
    for item in overrides:
        key, value = config_mod.parse_override(item)
        if not key.startswith("data."):
            raise UsageError(f"evaluate --set changes data settings only (data.*), found {key!r}; the model is fixed")
        changes[key] = value
    if plot:
        _require_matplotlib()
    result = evaluating.evaluate(target, split=split, data_cfg_overrides=changes, progress=_progress_factory(not as_json), plot=plot,
                               accept_changes=accept_changes)
    if result.get("warning"):
        output.echo(f"Warning: {result['warning']}", err=True)
    _echo_note(result)
    if as_json:
        _emit_json(result)
        return
    _print_evaluation(result)


def _print_evaluation(r):
    from rich.table import Table

    con = _stdout_console()
    classes = r["classes"]
    con.print(f"{r['model']} model {r['model_path']} on {r['dataset']} {r['split']} ({r['n']} images): accuracy {_pct(r['accuracy'])}")
    per = Table(title="per-class accuracy", header_style="bold")
    per.add_column("class")
    per.add_column("accuracy", justify="right")
    for name, acc in zip(classes, r["per_class_accuracy"]):
        per.add_row(name, _pct(acc))
    con.print(per)
    if len(classes) > 20:
        _print_top_confusions(con, classes, r["confusion_matrix"])
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


def _print_top_confusions(con, classes, matrix, n=20):
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


# -- configs --------------------------------------------------------------------------------


@cli.command("configs", context_settings=CONTEXT)
@click.argument("name", required=False)
def configs_cmd(name):
    """List the shipped configs, or print one to copy and edit.

    \b
    Use one by name from any directory:   mlcv train --config softmax
    Copy one to edit it:                  mlcv configs softmax > my-softmax.yaml
                                          mlcv train --config my-softmax.yaml
    """
    from .. import config as config_mod
    from ..config import shipped

    available = shipped.names()
    if name is None:
        from rich.table import Table

        table = Table(title=f"shipped configs ({shipped.config_dir()})", header_style="bold")
        for col in ("name", "model", "what it is"):
            table.add_column(col)
        for n in available:
            model = (config_mod.read_yaml_file(shipped.config_dir() / f"{n}.yaml").get("model") or {}).get("type", "softmax")
            table.add_row(n, str(model), shipped.summary(n))
        _stdout_console().print(table)
        return
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in available:
        raise UsageError(f"no shipped config named {name!r}; the shipped configs are {', '.join(available) or 'missing from this install'}")
    click.echo((shipped.config_dir() / f"{stem}.yaml").read_text(encoding="utf-8"), nl=False)


# -- plot -----------------------------------------------------------------------------------


@cli.command("plot", context_settings=CONTEXT)
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
    from .. import plots

    made = plots.plot_run(run_dir)
    if not made:
        raise MlcvError(f"{run_dir} holds nothing to plot (no cv_summary.json, history.csv, model.npz or metrics.json)")
    for p in made:
        output.echo(p)


# -- predict ------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("target", type=click.Path(exists=True), shell_complete=completion.complete_run_dirs)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top", default=3, show_default=True, type=click.IntRange(1), help="How many classes to show per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV rows: path, rank, class, value.")
@_json_on_failure
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
    _echo_note(r)
    for f in r["failed"]:
        output.echo(f"Error: {f['error']}", err=True)
    if as_json:
        _emit_json(r)
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
        _stdout_console().print(table)
    if r["failed"]:
        sys.exit(1)


# -- gradcheck ----------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--model", "model_type", type=click.Choice(["svm", "softmax"]), required=True, help="Which loss to check.")
@click.option("--reg", default=0.1, show_default=True, type=click.FloatRange(0), help="Regularization strength.")
@click.option("--checks", default=10, show_default=True, type=click.IntRange(1, 1000), help="Number of random weights checked.")
@click.option("--penalty", default="l2", show_default=True, type=click.Choice(["l2", "l1", "elasticnet", "none"]), help="Regularizer (l1 has a kink at 0 too).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random problem.")
def gradcheck(model_type, reg, checks, penalty, seed):
    """Compare the analytic gradient with a centred numerical one (float64).

    Relative error |a - n| / max(|a| + |n|, tiny): below 1e-7 is good. The SVM loss has
    kinks (max(0, .)); an entry whose margin is within h of 0 can fail there, and is marked.
    """
    from rich.table import Table

    from ..core.gradcheck import check_loss_gradient, verdict

    rows = check_loss_gradient(model_type, reg, num_checks=checks, seed=seed, penalty=penalty)
    table = Table(title=f"{model_type} gradient check (reg={reg:g}, penalty {penalty})", header_style="bold")
    for col in ("index", "analytic", "numerical", "relative error", ""):
        table.add_column(col, justify="right")
    notes, worst, passed = verdict(rows)
    for (index, analytic, numeric, rel_error, _), note in zip(rows, notes):
        table.add_row(str(index), f"{analytic:.8g}", f"{numeric:.8g}", f"{rel_error:.2e}", note)
    con = _stdout_console()
    con.print(table)
    if "kink" in notes:
        con.print(f"{notes.count('kink')} entries sit at an SVM kink, where the numerical gradient straddles max(0, .); they are not counted.")
    con.print(f"max relative error {worst:.2e}: {'PASS' if passed else 'FAIL'}")
    if not passed:
        sys.exit(1)


# -- runs -----------------------------------------------------------------------------------

# Defined in cli_runs.py (which uses this module's helpers, so it is imported last).
from .runs import runs  # noqa: E402

cli.add_command(runs)

# mnist, fashion-mnist and cifar100 downloads, defined in cli_datasets.py.
from .datasets import register as _register_downloads  # noqa: E402

_register_downloads(download)


# -- entry point --------------------------------------------------------------------------


def main(argv=None):
    """Console-script entry point: an interrupted command ends by its signal (see interrupts.py);
    output that could not be written is reported, and never stops the work (see output.py)."""
    output.install()
    with sigterm_raises():
        try:
            cli.main(args=argv, prog_name="mlcv")
        except SystemExit as exc:
            code = output.finish(exc.code)
            if code in EXIT_CODE.values():
                exit_by_signal(code)
            sys.exit(code)


if __name__ == "__main__":
    main()
