"""The model-type registry: every model type of the families in this package, by name.

A family is a module of this package with a ``MODEL_TYPES`` tuple of ModelType instances
(knn.py, linear.py, ...): adding a module adds its types, and nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import ConfigError

DEFAULT = "softmax"
"""The model type of a config that names none."""

_SUPPORT = {"base", "registry", "modelfile", "build"}
_TYPES: dict = {}


def _load():
    if not _TYPES:
        package = __name__.rsplit(".", 1)[0]
        found = {}
        for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
            if info.name in _SUPPORT or info.name.startswith("_"):
                continue
            for model_type in getattr(importlib.import_module(f"{package}.{info.name}"), "MODEL_TYPES", ()):
                if model_type.name in found:
                    raise RuntimeError(f"model type {model_type.name!r} is declared twice ({info.name}.py)")
                found[model_type.name] = model_type
        _TYPES.update(found)
    return _TYPES


def names() -> tuple:
    """Every model type's name, in the order of the family modules."""
    return tuple(_load())


def types() -> tuple:
    return tuple(_load().values())


def get(name: str):
    """The ModelType called ``name``; ConfigError naming the choices when there is none."""
    found = _load().get(name)
    if found is None:
        raise ConfigError(f"model.type: expected one of {', '.join(names())}; found {name!r}")
    return found


def gradcheckable() -> tuple:
    """Names of the types `mlcv gradcheck` can check."""
    return tuple(t.name for t in types() if t.gradcheck_penalties)
