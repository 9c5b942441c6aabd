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
from .common import CONTEXT, debug_enabled
from .cache import cache
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


class MlcvGroup(click.Group):
    """Turns MlcvError into one `Error: ...` line and its exit code, Ctrl-C into 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        debug = debug_enabled()
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
