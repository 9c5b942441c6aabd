"""Build hook: the top-level configs/ folder is packaged as mlcv_cli/configs/, so the shipped
configs exist in one copy in the repository and still come with every installed mlcv."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "mlcv_cli" / "configs"
        target.mkdir(parents=True, exist_ok=True)
        for config_file in sorted(CONFIGS.glob("*.yaml")):
            shutil.copyfile(config_file, target / config_file.name)


setup(cmdclass={"build_py": BuildPyWithConfigs})
