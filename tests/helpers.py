"""What many test files need, written once: the mlcv command in this process (CliRunner) or as a
real process, small image folders, --set arguments, waiting on processes, one-line error checks.

Imported by name (``from helpers import mlcv``): tests/ is on sys.path because its conftest.py
is not in a package. Fixtures live in conftest.py; this module holds plain functions, so module-
and session-scoped fixtures can use them too.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from mlcv_cli.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]
"""The project checkout (configs/, setup.py)."""

MLCV = [sys.executable, "-m", "mlcv_cli.cli.app"]
"""The console command, as a subprocess argument list (what `mlcv` runs, from this checkout)."""

SIDE = 8
"""Image side of the folders make_folder writes unless told otherwise."""


# -- the command in this process -----------------------------------------------------------------


def mlcv(*args, env=None, catch_exceptions=True):
    """`mlcv ARGS` through click's CliRunner; every argument is passed as str. An unexpected
    exception becomes ``result.exception``, as a user would see it end the command."""
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv", catch_exceptions=catch_exceptions, env=env)


def mlcv_uncaught(*args, env=None):
    """mlcv() that lets an unexpected exception propagate with its traceback (catch_exceptions=False)."""
    return mlcv(*args, env=env, catch_exceptions=False)


# -- the command as a real process -----------------------------------------------------------------


def clean_env(**extra):
    """os.environ without MLCV_DEBUG (a traceback would hide the one-line errors under test), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "MLCV_DEBUG"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_mlcv(*args, cwd=None, env=None, timeout=None, **kwargs):
    """Run `mlcv ARGS` as a process to its end: a CompletedProcess with text stdout and stderr.
    ``env`` None inherits this process's environment (use clean_env() to drop MLCV_DEBUG)."""
    return subprocess.run([*MLCV, *map(str, args)], cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True, **kwargs)


def start_mlcv(*args, cwd=None, env=None, **kwargs):
    """Start `mlcv ARGS` as a process (stdout and stderr piped, text); the caller waits, signals or kills it."""
    return subprocess.Popen([*MLCV, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def wait_for(predicate, what, timeout=120, every=0.05, proc=None):
    """Poll ``predicate()`` until it is truthy and return its value; AssertionError naming ``what``
    after ``timeout`` seconds, or at once when ``proc`` (a Popen) ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


# -- data and arguments -------------------------------------------------------------------------------


def make_folder(root, classes=("a", "b", "c"), n_train=14, n_test=4, *, side=SIDE, seed=0, noise=200, tint=50, base=0,
                test_classes=None):
    """Write ROOT/{train,test}/<class>/<i>.png and return ROOT.

    Each image is uniform noise in 0..noise-1 plus ``base``, with ``tint`` added to one colour
    channel per class (the class's index in ``classes``, modulo 3), drawn from one seeded
    generator in the order split, class, image. ``n_train``/``n_test`` is a count per class or
    {class: count}; a split of 0 images is not written at all (a train-only folder).
    ``test_classes``: the classes of test/ (default: ``classes``).
    """
    rng = np.random.default_rng(seed)
    for split, n, names in (("train", n_train, classes), ("test", n_test, test_classes or classes)):
        if not n:
            continue
        for name in names:
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n[name] if isinstance(n, dict) else n):
                pixels = rng.integers(0, noise, (side, side, 3), dtype=np.uint8)
                if base:
                    pixels += np.uint8(base)
                if tint:
                    pixels[..., classes.index(name) % 3] += np.uint8(tint)
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def sets(*items):
    """["--set", item, ...] for "key=value" items."""
    return [a for item in items for a in ("--set", item)]


def folder_args(folder, runs=None, *, image_size=SIDE, num_val=6):
    """--set arguments that train on image folder (or imported name) ``folder``, writing runs under ``runs``."""
    items = ["data.dataset=folder", f"data.path={folder}", f"data.image_size={image_size}", f"data.num_val={num_val}"]
    return sets(*items, *([f"output.dir={runs}"] if runs is not None else []))


TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""What a terminal would act on in shown text: C0/C1 controls (ESC starts colour and cursor
sequences) and the bidirectional overrides that reorder a line."""


# -- results ------------------------------------------------------------------------------------------


def assert_one_line_error(result, code, *fragments):
    """A CliRunner result that exited ``code`` through SystemExit, without a traceback, with exactly
    one `Error: ...` line on stderr holding every fragment."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def error_line(stderr, *fragments):
    """The one `Error: ...` line of a process's stderr (no traceback), holding every fragment."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def permissions_apply():
    """A command prefix under which file permissions apply: root reads and writes any file
    otherwise (setpriv drops the two capabilities that let it); [] for another user."""
    import shutil

    import pytest

    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be made to apply")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]


def json_of(result):
    """The JSON object a successful `--json` command printed."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cv_table(result):
    """(params, fold accuracies) per grid point of a cv result: what two equal cv runs share."""
    return [(s["params"], s["folds"]) for s in result["summary"]]


def status_of(run):
    """The status meta.json records for run directory ``run``."""
    return json.loads((Path(run) / "meta.json").read_text())["status"]


def as_recorded_before_mirror(config_dict):
    """A resolved config (as a dict) as a run recorded it before the parameter features.N.mirror existed."""
    old = json.loads(json.dumps(config_dict))
    for step in old["features"]:
        step.pop("mirror", None)
    return old


def memory_error_in_cv_job(monkeypatch, n):
    """Make the n-th cv job run in this process raise MemoryError (through the seam every executor
    calls, mlcv_cli.workflow.cv.jobs.run_job); returns the real run_job, to put back."""
    from mlcv_cli.workflow.cv import jobs

    real, calls = jobs.run_job, []

    def run_job(job, *args, **kwargs):
        calls.append(job["id"])
        if len(calls) == n:
            raise MemoryError
        return real(job, *args, **kwargs)

    monkeypatch.setattr(jobs, "run_job", run_job)
    return real


class InterruptAfter:
    """A progress factory that sends this process SIGINT after ``n`` steps: training stops with a
    checkpoint, as after a Ctrl-C."""

    def __init__(self, n):
        self.n = n

    def __call__(self, total, desc):
        return self

    def update(self, n=1, **postfix):
        import signal

        self.n -= n
        if n and self.n == 0:
            os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        pass
