"""The shipped configs: one copy (configs/), packaged at build time, usable by name from anywhere."""

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, run_mlcv
from helpers import mlcv_uncaught as run
from mlcv_cli.config import shipped


def test_configs_lists_every_file_in_configs():
    listed = run("configs")
    assert listed.exit_code == 0
    stems = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert shipped.names() == stems and len(stems) >= 3
    assert all(f"│ {stem} " in listed.stdout for stem in stems)
    printed = run("configs", "svm")
    assert printed.exit_code == 0 and printed.stdout == (ROOT / "configs/svm.yaml").read_text()


def test_config_by_name_from_a_directory_without_configs(in_tmp):
    for given in ("softmax", "softmax.yaml", "configs/softmax.yaml"):
        result = run("train", "--config", given, "--print-config")
        assert result.exit_code == 0, result.output
        assert "type: softmax" in result.stdout
    missing = run("train", "--config", "configs/nope.yaml")
    assert missing.exit_code == 2
    assert missing.stderr.count("nope.yaml") == 1
    assert f"({', '.join(shipped.names())};" in missing.stderr


def test_a_built_package_carries_the_configs_and_finds_them(tmp_path):
    # What `pip install .` builds: setup.py copies configs/ into the package.
    lib = tmp_path / "lib"
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    packaged = sorted((lib / "mlcv_cli/configs").glob("*.yaml"))
    assert [p.name for p in packaged] == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert all(p.read_bytes() == (ROOT / "configs" / p.name).read_bytes() for p in packaged)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(lib)}
    used = run_mlcv("train", "--config", "svm", "--print-config", cwd=empty, env=env, timeout=300)
    assert used.returncode == 0, used.stderr
    assert "type: svm" in used.stdout
    where = subprocess.run([sys.executable, "-c", "from mlcv_cli.config import shipped; print(shipped.config_dir())"], cwd=empty,
                           env=env, capture_output=True, text=True, timeout=300)
    assert Path(where.stdout.strip()) == lib / "mlcv_cli/configs"
