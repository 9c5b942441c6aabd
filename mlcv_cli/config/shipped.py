"""The configs shipped with mlcv, usable by name from any directory (`--config softmax`).

The repository's top-level configs/ is the only copy: setup.py packages it as
mlcv_cli/configs/ in a built wheel, and a source checkout reads it in place.
"""

from __future__ import annotations

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


def summary(name):
    """The first comment line of a shipped config (what it is)."""
    text = (config_dir() / f"{name}.yaml").read_text(encoding="utf-8")
    return next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
