"""The config's ``features`` section: an ordered list of extractors, each a mapping with a
``type`` and that type's parameters, checked like every other config value.

Keys are addressed as ``features.<index>.<param>`` (``--set features.0.num_centroids=400``,
cv grids); the whole list is the single config key ``features``.
"""

from __future__ import annotations

import copy
import difflib
import re

from ..core.features.chain import FeatureChain, StepError
from ..errors import ConfigError


def _p(default, kind, doc, **limits):
    meta = dict(kind=kind, choices=None, low=None, high=None, low_open=False, high_open=False, nullable=False, pattern=None, doc=doc)
    meta.update(limits)
    return default, meta


# type -> {param: (default, metadata)}; the defaults are the shipped, measured settings.
PARAMS = {
    "pixels": {},
    "hog": {
        "orientations": _p(9, int, "gradient orientation bins", low=1, high=360),
        "cell_size": _p(4, int, "cell width and height in pixels", low=1),
        "block_size": _p(2, int, "cells per block side for the normalisation (blocks overlap by all but one cell)", low=1),
        "block_norm": _p("L2-Hys", str, "block normalisation", choices=("L2-Hys", "L2", "L1")),
        "signed": _p(False, bool, "orientations over 0-360 degrees instead of 0-180"),
    },
    "color_hist": {
        "bins": _p(10, int, "hue histogram bins", low=1, high=360),
    },
    "kmeans": {
        "num_centroids": _p(1600, int, "dictionary size (features per pooling region)", low=1),
        "patch_size": _p(6, int, "patch width and height in pixels", low=1),
        "stride": _p(1, int, "pixels between patches when encoding", low=1),
        "contrast_eps": _p(10.0, float, "contrast normalisation: added to each patch's variance (pixels 0-255)", low=0.0, low_open=True),
        "whiten": _p(True, bool, "ZCA-whiten the patches"),
        "whiten_eps": _p(0.1, float, "ZCA epsilon added to the covariance eigenvalues", low=0.0, low_open=True),
        "num_patches": _p(400000, int, "random patches sampled to learn the whitening and the dictionary", low=1),
        "iterations": _p(10, int, "k-means iterations", low=0),
        "seed": _p(None, int, "seed for patch sampling and initial centroids (null: the run's seed)", low=0, nullable=True),
        "encoder": _p("triangle", str, "triangle, or soft_threshold with alpha", choices=("triangle", "soft_threshold")),
        "alpha": _p(0.5, float, "soft_threshold: the threshold", low=0.0),
        "pooling": _p("quadrants", str, "sum the codes over the 4 image quadrants, the whole image (global), or a finer "
                      "3x3 or 4x4 grid of cells (9 or 16 x num_centroids features)", choices=("quadrants", "global", "3x3", "4x4")),
        "mirror": _p(False, bool, "also encode each image's left-right mirror image and average the two (flip-invariant features; twice the encoding time)"),
    },
}
TYPES = tuple(PARAMS)
DEFAULT = ({"type": "pixels"},)
_KEY = re.compile(r"^features\.(\d+)\.([A-Za-z_][A-Za-z0-9_]*)$")


def _closest(name, options):

    match = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def is_feature_key(key: str) -> bool:
    """True for 'features.<index>.<name>' keys (checked against the steps later)."""
    return bool(_KEY.match(key))


def split_key(key):
    m = _KEY.match(key)
    return int(m.group(1)), m.group(2)


def param_meta(key):
    """The metadata for a features.<i>.<param> key, whatever the step's type (names are unique)."""
    index, name = split_key(key)
    for params in PARAMS.values():
        if name in params:
            return params[name][1]
    known = sorted({p for params in PARAMS.values() for p in params} | {"type"})
    raise ConfigError(f"unknown config key {key!r}{_closest(name, known)}; feature parameters are {', '.join(known)}")


def check_features(value, check_one) -> tuple:
    """A features list -> tuple of complete {type, params...} dicts (defaults filled in).

    ``check_one(key, meta, value)`` is the config's value checker.
    """
    if value is None:
        return DEFAULT
    if isinstance(value, dict):
        raise ConfigError("features: expected a list of extractors (each item starts with '- type: ...'), found a mapping")
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"features: expected a non-empty list of extractors ({', '.join(TYPES)}), found {value!r}")
    steps = []
    for i, item in enumerate(value):
        where = f"features.{i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with a type ({', '.join(TYPES)}), found {item!r}")
        kind = item.get("type")
        if kind is None:
            raise ConfigError(f"{where}.type: missing; expected one of {', '.join(TYPES)}")
        if kind not in PARAMS:
            raise ConfigError(f"{where}.type: expected one of {', '.join(TYPES)}; found {kind!r}{_closest(str(kind), TYPES)}")
        schema = PARAMS[kind]
        step = {"type": kind}
        for name, given in item.items():
            if name == "type":
                continue
            if not isinstance(name, str) or name not in schema:
                options = ", ".join(schema) or "none"
                raise ConfigError(
                    f"{where}.{name}: not a parameter of {kind}{_closest(str(name), schema)}; {kind} takes: {options}"
                )
        for name, (default, meta) in schema.items():
            step[name] = check_one(f"{where}.{name}", meta, item.get(name, default)) if name in item else default
        steps.append(step)
    if sum(step["type"] == "pixels" for step in steps) > 1:
        raise ConfigError("features: pixels appears more than once; list each extractor once")
    return tuple(steps)


def apply_overrides(steps, overrides: dict) -> list:
    """features.<i>.<name> = value applied to a copy of the list; index len(steps) appends a step."""
    steps = [dict(s) for s in copy.deepcopy(list(steps))]
    for key, value in overrides.items():
        index, name = split_key(key)
        if index == len(steps) and name == "type":
            steps.append({"type": value})
            continue
        if index >= len(steps):
            raise ConfigError(
                f"{key}: the config has {len(steps)} extractor{'s' if len(steps) != 1 else ''} "
                f"(features.0{'' if len(steps) == 1 else f' to features.{len(steps) - 1}'}); "
                f"add one with --set features.{len(steps)}.type=TYPE"
            )
        if name == "type" and value != steps[index].get("type"):
            steps[index] = {"type": value}  # another type: its own parameters and defaults
        else:
            steps[index][name] = value
    return steps


def check_grid_key(key, steps):
    """A cv grid over features.<i>.<param>: the step must exist and take that parameter."""
    index, name = split_key(key)
    if index >= len(steps):
        raise ConfigError(f"cv.grid: {key!r} names extractor {index}, but the config has {len(steps)} (features.0..{len(steps) - 1})")
    kind = steps[index]["type"]
    if name not in PARAMS[kind]:
        raise ConfigError(f"cv.grid: {key!r}: {kind} has no parameter {name!r}{_closest(name, PARAMS[kind])}")


def chain_steps(cfg) -> list:
    """(type, params) pairs for core.features.FeatureChain from a resolved config.

    ``pixels`` takes its numbers from the preprocess section, so configs written before the
    features section behave exactly as they did; a kmeans seed of null becomes the run's seed.
    """
    steps = []
    for step in cfg.features:
        params = {k: v for k, v in step.items() if k != "type"}
        if step["type"] == "pixels":
            params = {"scale": cfg.preprocess.scale, "subtract_mean": cfg.preprocess.subtract_mean}
        if "seed" in params and params["seed"] is None:
            params["seed"] = cfg.seed
        steps.append((step["type"], params))
    return steps


def build_chain(cfg):

    return FeatureChain(chain_steps(cfg))


def check_chain(cfg, image_shape=None):
    """Every extractor's own check against the images' shape (H, W, C), as a ConfigError naming
    the key. Without ``image_shape`` (before the data is loaded) the config's size and channels
    are used, colour unless data.channels is 1; the pipeline checks again with the real shape."""

    if image_shape is None:
        size = cfg.data.image_size
        image_shape = (size, size, 1 if getattr(cfg.data, "channels", None) == 1 else 3)
    try:
        build_chain(cfg).check(tuple(image_shape))
    except StepError as exc:
        key = f"features.{exc.index}"
        error = exc.error
        m = re.match(r"^([A-Za-z_]\w*): ", error)
        if m and cfg.features[exc.index]["type"] == "pixels" and m.group(1) in ("scale", "subtract_mean"):
            key, error = "preprocess", error
        raise ConfigError(f"{key}.{error}") from None
    except ImportError as exc:
        raise ConfigError(f"features: this installation of mlcv cannot load an extractor ({exc})") from None
