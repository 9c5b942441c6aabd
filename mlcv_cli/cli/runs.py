"""`mlcv runs`, `mlcv runs diff` and `mlcv runs rm`: the commands (the reading is in runs/listing.py,
the removing in runs/cleanup.py, the tables in tables.py)."""

from __future__ import annotations

import click

from ..runs import listing as runlist
from ..workflow import disk
from . import completion, render
from .common import CONTEXT, confirm
from .text import human_bytes


class _RunsGroup(click.Group):
    """`mlcv runs [RUNS_DIR] [OPTIONS]` is short for `mlcv runs list ...`."""

    def parse_args(self, ctx, args):
        # While completing, `mlcv runs <Tab>` offers the subcommands; `mlcv runs` alone lists.
        if (not args and not ctx.resilient_parsing) or (args and args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("runs", cls=_RunsGroup, context_settings=CONTEXT)
def runs():
    """Compare run directories: `mlcv runs [RUNS_DIR]` lists them, `mlcv runs diff A B` compares two,
    `mlcv runs rm --filter ...` removes some.

    \b
    Examples:
      mlcv runs --sort test --top 5
      mlcv runs --filter model.type=svm --filter status=done --sort model.reg
      mlcv runs --filter 'test>=40%' --csv > runs.csv
      mlcv runs diff runs/svm-20261129-101500 runs/svm-20261129-101733
      mlcv runs --size; mlcv runs rm --filter status=failed --dry-run
    """


@runs.command("list", context_settings=CONTEXT)
@click.argument("runs_dir", required=False, default="runs", type=click.Path(), shell_complete=completion.complete_directories)
@click.option("--sort", "sort_key", metavar="KEY", shell_complete=completion.complete_runs_keys,
              help="Sort by a column (name, model, dataset, status, val, test, time, date) or a dotted config key "
                   "(model.reg). Accuracies sort best first, the rest ascending.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", shell_complete=completion.complete_runs_keys,
              help="Keep runs whose KEY equals VALUE (repeatable; also KEY!=V, KEY>V, KEY<V, KEY>=V, KEY<=V; accuracies as 0.4 or 40%).")
@click.option("--top", type=click.IntRange(1), help="Show only the first N runs (after sorting).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every run's full flat config included).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per run, the differing config keys as columns.")
@click.option("--size", "sizes", is_flag=True, help="Add each run directory's size on disk (and their total).")
def list_runs(runs_dir, sort_key, reverse, filters, top, as_json, as_csv, sizes):
    """List the runs under RUNS_DIR (default runs/) in one table.

    \b
    Columns: name, model, dataset, status, the hyperparameters that differ between the
    listed runs, validation and test accuracy, training time, start date. A cv run shows its
    best setting and the mean ± std of its folds in the val column. Status is done, failed,
    interrupted, running, stale (marked running but its process is gone) or damaged
    (an unreadable file; the reason is printed under the table).
    """
    fmt = render.output_format(as_json, as_csv)
    result = runlist.listing(runs_dir, filters=filters, sort=sort_key, reverse=reverse, top=top)
    if sizes:
        result["runs"] = disk.runs_with_sizes(result["runs"])
    render.show("runs", result, fmt)


@runs.command("rm", context_settings=CONTEXT)
@click.argument("runs_dir", required=False, default="runs", type=click.Path(), shell_complete=completion.complete_directories)
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", shell_complete=completion.complete_runs_keys,
              help="Remove the runs whose KEY equals VALUE (required, repeatable; the grammar of `mlcv runs --filter`).")
@click.option("--dry-run", is_flag=True, help="Say which runs would be removed, and remove nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def remove_runs(runs_dir, filters, dry_run, yes, as_json):
    """Remove the run directories under RUNS_DIR (default runs/) that the filters pick.

    \b
    A running run is never removed (a stale one, whose process is gone, is).
    Examples:
      mlcv runs rm --filter status=failed --dry-run
      mlcv runs rm --filter status=interrupted --filter model.type=knn --yes
    """
    planned = disk.remove_runs(runs_dir, filters, dry_run=True)
    if not dry_run and planned["removed"]:
        confirm(f"{len(planned['removed'])} runs ({human_bytes(planned['freed'])}) from {runs_dir}", yes)
    result = planned if dry_run or not planned["removed"] else disk.remove_runs(runs_dir, filters)
    render.show("runs rm", result, render.output_format(as_json))


@runs.command("diff", context_settings=CONTEXT)
@click.argument("run_a", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
@click.argument("run_b", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
@click.option("--all-classes", is_flag=True, help="List every class's accuracy, not only the 20 that changed most.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def diff_runs(run_a, run_b, all_classes, as_json):
    """Show the config keys that differ between two runs and their metrics side by side.

    Per-class accuracy is compared on the test split (val when a run has none), by class name.
    """
    render.show("runs diff", runlist.diff(run_a, run_b), render.output_format(as_json), all_classes=all_classes)
