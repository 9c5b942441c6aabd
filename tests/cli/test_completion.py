"""Shell completion through click's mechanism: subcommands, options, configs, run directories."""

import json

import pytest

from helpers import mlcv

from mlcv_cli.models import registry


def complete(words, cword):
    env = {"_MLCV_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = mlcv(env=env)
    assert result.exit_code == 0, result.output
    return [line.split(",", 1) for line in result.stdout.splitlines()]


@pytest.fixture
def project(in_tmp):
    """A working directory with configs/, a file that is not a config, and runs/ with two runs."""
    (in_tmp / "configs").mkdir()
    for name in ("knn.yaml", "svm.yaml", "notes.txt"):
        (in_tmp / "configs" / name).write_text("model:\n  type: knn\n")
    for name in ("knn-20261129-101500", "svm-20261129-101733"):
        (in_tmp / "runs" / name).mkdir(parents=True)
        (in_tmp / "runs" / name / "meta.json").write_text(json.dumps({"status": "done"}))
    (in_tmp / "runs" / "scratch").mkdir()  # not a run
    return in_tmp


def test_subcommands_and_options(project):
    assert ["plain", "runs"] in complete("mlcv ru", 1)
    names = {v for _, v in complete("mlcv ", 1)}
    assert {"train", "cv", "evaluate", "predict", "download", "runs", "plot", "gradcheck"} <= names
    assert {"--config", "--set", "--resume"} <= {v for _, v in complete("mlcv train --", 2)}
    assert {v for _, v in complete("mlcv train --model ", 3)} == set(registry.names()) >= {"knn", "svm", "softmax", "mlp"}
    assert {"diff", "list"} <= {v for _, v in complete("mlcv runs ", 2)}


def test_config_files(project):
    assert complete("mlcv train --config ", 3) == [["plain", "configs/knn.yaml"], ["plain", "configs/svm.yaml"]]
    assert complete("mlcv cv -c configs/s", 3) == [["plain", "configs/svm.yaml"]]
    assert complete("mlcv train --config elsewhere/", 3) == [["file", "elsewhere/"]]  # the shell takes over


def test_run_directories(project):
    runs = [["plain", "runs/knn-20261129-101500"], ["plain", "runs/svm-20261129-101733"]]
    assert complete("mlcv evaluate ", 2) == runs
    assert complete("mlcv predict runs/s", 2) == runs[1:]
    assert complete("mlcv train --resume ", 3) == runs
    assert complete("mlcv runs diff runs/knn-20261129-101500 ", 4) == runs
    assert complete("mlcv plot nowhere/", 2) == [["dir", "nowhere/"]]


def test_runs_keys(project):
    got = {v for _, v in complete("mlcv runs --sort model.r", 3)}
    assert got == {"model.reg"}
    assert "test" in {v for _, v in complete("mlcv runs --filter t", 3)}


def test_source_scripts_for_each_shell():
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef mlcv"), ("fish", "complete --no-files --command mlcv")):
        result = mlcv(env={"_MLCV_COMPLETE": f"{shell}_source"})
        assert result.exit_code == 0 and marker in result.stdout, shell
