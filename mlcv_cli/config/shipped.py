"""The configs shipped with mlcv, usable by name from any directory (`--config softmax`).

The repository's top-level configs/ is the only copy: setup.py packages it as
mlcv_cli/configs/ in a built wheel, and a source checkout reads it in place.
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # mlcv_cli/


def config_dir():
    """Where the shipped configs are: inside an installed package, else the source checkout."""
    packaged = _PACKAGE / "configs"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / "configs"
    if checkout.is_dir() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return checkout
    return None


def names():
    """The shipped configs' names (file names without .yaml), sorted."""
    directory = config_dir()
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory else []


def locate(given):
    """A --config value -> the file to read: the path itself when it exists, else the shipped
    config it names (``softmax``, ``softmax.yaml`` or ``configs/softmax.yaml``)."""
    path = Path(given)
    if path.exists() or path.parent not in (Path("."), Path("configs")):
        return path
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if stem in names():
        return config_dir() / f"{stem}.yaml"
    return path


SUMMARY_CHARS = 100  # a longer first sentence is cut to its headline (before its first ':' or ';')


def summary(name):
    """What a shipped config is: the first sentence of its opening comment, or, when that is long,
    its headline; never cut inside parentheses."""
    text = (config_dir() / f"{name}.yaml").read_text(encoding="utf-8")
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.lstrip("# ").strip():
            break
        lines.append(line.lstrip("# ").strip())
        if lines[-1].endswith("."):  # the first sentence may run over several comment lines
            break
    description = " ".join(lines)
    sentence = re.split(r"(?<=\.)\s", description, maxsplit=1)[0]
    return sentence if len(sentence) <= SUMMARY_CHARS else _headline(sentence)


def _headline(sentence):
    depth = 0
    for i, char in enumerate(sentence):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char in ":;":
            return sentence[:i]
    return sentence
