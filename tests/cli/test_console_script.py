"""The installed `mlcv` console script in a subprocess: the real stdout and stderr wrappers
(system/output.py), which CliRunner replaces, under the click release that is installed.

Covers what a new user types first: the bare command, each group without a subcommand,
--help, --version, the completion scripts and completion requests for bash, zsh and fish,
and --json on a usage error that click finds before any command code runs.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlcv_cli.cli.app import cli


def _script():
    """The console script pip installed beside this interpreter (the one a user runs)."""
    found = Path(sys.executable).parent / "mlcv"
    if not found.exists():
        found = shutil.which("mlcv")
    if not found:
        pytest.fail("the mlcv console script is not installed: pip install -e '.[test]'")
    return str(found)


MLCV = _script()


def run(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("_MLCV_COMPLETE", "COMP_", "MLCV_DEBUG"))}
    full_env.update(env or {})
    return subprocess.run([MLCV, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120)


def assert_clean(proc):
    """No traceback, and no help flattened into one line of literal backslash-n."""
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream, stream
        assert "\\n" not in stream, stream


def test_bare_command_prints_its_help_as_lines(tmp_path):
    proc = run(cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 2, proc  # no subcommand is a usage error, on every click release
    lines = proc.stderr.splitlines()
    assert lines[0] == "Usage: mlcv [OPTIONS] COMMAND [ARGS]..."
    assert any(line.strip().startswith("train ") for line in lines)
    assert proc.stdout == ""


def test_download_without_a_dataset_prints_its_help_as_lines(tmp_path):
    proc = run("download", cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "Usage: mlcv download [OPTIONS] COMMAND [ARGS]..."
    assert any(line.strip().startswith("cifar10 ") for line in proc.stderr.splitlines())


def test_runs_without_a_subcommand_lists_and_says_what_is_missing(tmp_path):
    proc = run("runs", cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: runs directory runs does not exist")
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", [[], *[[name] for name in sorted(cli.commands)], ["download", "mnist"], ["runs", "diff"]])
def test_help_of_every_command(command, tmp_path):
    proc = run(*command, "--help", cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: {' '.join(['mlcv', *command])} ")
    assert proc.stderr == ""


def test_version(tmp_path):
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("mlcv, version ")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_is_printed(shell, tmp_path):
    proc = run(env={"_MLCV_COMPLETE": f"{shell}_source"}, cwd=tmp_path)
    assert_clean_completion(proc)
    assert "_mlcv_completion" in proc.stdout
    assert "_MLCV_COMPLETE" in proc.stdout


def assert_clean_completion(proc):
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("shell, cword", [("bash", "1"), ("zsh", "1"), ("fish", "tr")])
def test_completion_request(shell, cword, tmp_path):
    proc = run(env={"_MLCV_COMPLETE": f"{shell}_complete", "COMP_WORDS": "mlcv tr", "COMP_CWORD": cword}, cwd=tmp_path)
    assert_clean_completion(proc)
    assert "train" in proc.stdout.replace(",", "\n").replace("\t", "\n").splitlines()
    assert "runs" not in proc.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_readme_bashrc_line_works_in_bash(tmp_path):
    """What the README's ~/.bashrc line does in a new shell: no output, and `mlcv` completes."""
    line = f'eval "$(_MLCV_COMPLETE=bash_source {MLCV})" && complete -p mlcv'
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", line], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("_MLCV_COMPLETE")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "_mlcv_completion" in proc.stdout and proc.stdout.rstrip().endswith("mlcv")


def test_json_usage_error_prints_one_json_object(tmp_path):
    proc = run("evaluate", "runs/nope", "--json", cwd=tmp_path)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and "runs/nope" in doc["error"]
    assert "does not exist" in proc.stderr  # the person still gets click's usage message


def test_json_unknown_option_prints_one_json_object(tmp_path):
    proc = run("runs", "--json", "--sort", "test", "--nonsense", cwd=tmp_path)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["status"] == "failed"
