"""What every command shares: the group class, the options (--config, --set, --data-dir, --accept-changes), loading a config and progress on stderr."""

from __future__ import annotations

import os
import sys

import click
from tqdm import tqdm

from .. import config as config_mod
from .. import plots
from ..errors import UsageError
from ..models import registry
from ..system import output
from ..system.progress import LineProgress
from ..workflow.inputs import resolve_data_dir
from . import completion

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """A group that, run without a subcommand, prints its help on stderr and exits with 2 (a usage
    error), the same with every click release: click 8.2 and later raise NoArgsIsHelpError for
    this (its message the whole help), older releases printed the help and exited with 0."""

    def parse_args(self, ctx, args):
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), err=True, color=ctx.color)
            ctx.exit(2)
        return super().parse_args(ctx, args)


def debug_enabled():
    return os.environ.get("MLCV_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]


def progress_factory(enabled=True):
    """Progress on stderr: a tqdm bar in a terminal; in a log (stderr not a terminal), a plain
    line per milestone (an epoch, a finished cv job) and one when a long step ends."""
    if not sys.stderr.isatty():

        return LineProgress
    return lambda total, desc: _TerminalBar(total, desc, enabled)


class _TerminalBar:
    """A tqdm bar on stderr; its postfix is merged, so the last epoch's validation accuracy stays
    beside each step's loss."""

    def __init__(self, total, desc, enabled=True):

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


def data_dir_of(option):

    return resolve_data_dir(option)


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. --set model.k=5 (repeatable)."
)


config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False), shell_complete=completion.complete_config_files,
    help="YAML experiment config: a file, or a shipped config's name (softmax, svm, knn, ...: see `mlcv configs`).",
)


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), help="Data dir (default $MLCV_DATA_DIR or ./data).")


def check_config_or_model(config_path, model_type):
    if not config_path and not model_type:
        raise UsageError(f"give --config FILE (see configs/) or --model {'|'.join(registry.names())}")
    if config_path and model_type:
        raise UsageError("give either --config or --model, not both (a config names its model in model.type; use configs/MODEL.yaml)")


def load_config(config_path, overrides, model_type=None, extra=None, data_dir=None):

    extra = dict(extra or {})
    if data_dir:
        extra["data.dir"] = data_dir
    return config_mod.resolve(config_path, overrides, model_type=model_type, extra=extra)


accept_changes_option = click.option(
    "--accept-changes", is_flag=True,
    help="Go on although the data, config.yaml or cv_plan.json changed since the run started (refused otherwise).")


def require_matplotlib():
    """Fail before any work starts when --plot is asked for without matplotlib."""

    plots.pyplot()


def confirm(what, yes):
    """Go on when ``yes``; else ask "Remove WHAT?" on a terminal, and refuse with a usage error in a script."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"this would remove {what}; add --yes to remove without asking, or --dry-run to see what it would remove")
    click.confirm(f"Remove {what}?", abort=True, err=True)
