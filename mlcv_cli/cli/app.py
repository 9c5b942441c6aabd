"""The `mlcv` command: the Click group, and every failure turned into one line and an exit code.

Exit codes: 0 success, 1 runtime failure, 2 usage or config error, 130 interrupted
(143 for SIGTERM during training), 141 when the reader of stdout went away (`| head -1`) after
the work was done (system/output.py). A user mistake prints one `Error: ...` line;
--debug or MLCV_DEBUG=1 shows the traceback. Each command lives in its own module here.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import MlcvError
from ..system import output
from ..system.signals import EXIT_CODE, Terminated, exit_by_signal, sigterm_raises
from . import render
from .cache import cache
from .common import CONTEXT, Group, debug_enabled
from .configs import configs_cmd
from .cv import cv
from .download import download
from .evaluate import evaluate
from .gradcheck import gradcheck
from .plot import plot_cmd
from .predict import predict
from .report import report_cmd
from .runs import runs
from .train import train

# -- the group ------------------------------------------------------------------------


class MlcvGroup(Group):
    """Turns MlcvError into one `Error: ...` line and its exit code, Ctrl-C into 130; with --json,
    every failure (a usage error that click finds before the command runs included) also prints
    one JSON object with its status on stdout, as a success does."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        debug = debug_enabled()
        args = list(sys.argv[1:] if args is None else args)
        as_json = wants_json(args)
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except MlcvError as exc:
            output.note_run_dir(getattr(exc, "run_dir", None))
            if as_json:
                _json_failure(exc, exc.exit_code, getattr(exc, "run_dir", None))
            if debug:
                raise
            prefix = "Interrupted" if exc.exit_code in (130, 143) else "Error"
            click.echo(f"{prefix}: {output.printable(exc)}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            # click turns KeyboardInterrupt into Abort; the cause says which signal it was.
            code = 143 if isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated) else 130
            if as_json:
                _json_failure("interrupted", code)
            if debug:
                raise
            click.echo("Interrupted.", err=True)
            sys.exit(code)
        except click.ClickException as exc:
            if as_json:
                _json_failure(exc.format_message(), exc.exit_code)
            if not isinstance(exc, _NO_ARGS_IS_HELP):  # that one's message is the help, lines and all
                exc.message = output.printable(exc.message)  # it may quote a path or value as typed
            exc.show()
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.exit(1)
        except MemoryError:  # runs catch their own and stay resumable; this is loading, scoring, ...
            if as_json:
                _json_failure("ran out of memory", 1)
            if debug:
                raise
            click.echo("Error: ran out of memory; free memory, or use fewer images (data.num_train, data.num_test), "
                       "smaller features or fewer --jobs", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click 8.2 and later


def wants_json(args) -> bool:
    """Whether the command line asks for --json (an argument after `--` is a file name, not a flag)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _json_failure(error, exit_code, run_dir=None):
    """The one JSON object a failed --json command prints: status, run_dir, error, exit_code."""
    render.emit_json({
        "status": "interrupted" if exit_code in EXIT_CODE.values() else "failed",
        "run_dir": run_dir,
        "error": str(error) or "interrupted",
        "exit_code": exit_code,
    })


@click.group(cls=MlcvGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="mlcv")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (or set MLCV_DEBUG=1).")
def cli(debug):
    """mlcv: train and compare kNN, linear (SVM, softmax) and two-layer network image classifiers.

    \b
    Quick start (works offline on the small CIFAR-10 sample shipped with mlcv):
      mlcv train --config configs/softmax.yaml
      mlcv cv --model knn --folds 5
      mlcv evaluate runs/softmax-YYYYMMDD-HHMMSS
      mlcv predict runs/softmax-YYYYMMDD-HHMMSS cat.png
    """


# -- download -------------------------------------------------------------------------


# -- train ------------------------------------------------------------------------------


# -- cv ---------------------------------------------------------------------------------


# -- evaluate -----------------------------------------------------------------------------


# -- configs --------------------------------------------------------------------------------


# -- plot -----------------------------------------------------------------------------------


# -- predict ------------------------------------------------------------------------------


# -- gradcheck ----------------------------------------------------------------------------


for _command in (download, train, cv, evaluate, configs_cmd, plot_cmd, report_cmd, predict, gradcheck, runs, cache):
    cli.add_command(_command)


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
