"""Configs: a key given twice is refused (PyYAML would keep the last silently); float32-overflowing scales are refused."""

import pytest
from click.testing import CliRunner

from mlcv_cli.cli.app import cli


def mlcv(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="mlcv")


@pytest.mark.parametrize("text", ["train:\n  lr: 0.1\n  lr: 0.001\n", "model:\n  type: svm\nmodel:\n  type: knn\n"])
def test_duplicate_yaml_keys_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = mlcv("train", "--config", path, "--print-config")
    assert result.exit_code == 2 and "appears twice" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("setting", ["preprocess.scale=1e30", "train.init_scale=1e20"])
def test_settings_that_overflow_float32_are_refused(setting):
    result = mlcv("train", "--model", "softmax", "--set", setting, "--print-config")
    assert result.exit_code == 2 and "<= 1000" in result.stderr
