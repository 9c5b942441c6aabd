"""What every command shares: the options (--config, --set, --data-dir, --accept-changes), loading a config, progress on stderr, and JSON on failure."""

from __future__ import annotations

import functools
import os
import sys

import click
from tqdm import tqdm

from .. import config as config_mod
from .. import plots
from ..errors import MlcvError, UsageError
from ..models import registry
from ..system import output
from ..system.progress import LineProgress
from ..system.signals import EXIT_CODE, Terminated
from ..workflow.inputs import resolve_data_dir
from . import completion
from .render import emit_json

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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


def json_on_failure(command):
    """With --json, a failed or interrupted command still prints one JSON object (status, run_dir, error)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (MlcvError, KeyboardInterrupt) as exc:
            if not kwargs.get("as_json"):
                raise
            code = getattr(exc, "exit_code", 143 if isinstance(exc, Terminated) else 130)
            emit_json({
                "status": "interrupted" if code in EXIT_CODE.values() else "failed",
                "run_dir": getattr(exc, "run_dir", None),
                "error": str(exc) or "interrupted",
                "exit_code": code,
            })
            raise

    return wrapper


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
