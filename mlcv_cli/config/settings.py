"""Experiment configs: YAML -> frozen dataclasses, defaults filled in, every value checked.

Precedence: built-in defaults < per-model defaults < the YAML file < ``--set key=value``.
Every rejection names the dotted key, what was found and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from . import features as feature_config
from ..errors import ConfigError

MODEL_TYPES = ("knn", "svm", "softmax")
METRICS = ("l2", "l1")
PENALTIES = ("l2", "l1", "elasticnet", "none")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "random_search", "lbfgs")
DATASETS = ("sample", "cifar10", "folder", "mnist", "fashion-mnist", "cifar100")
# Datasets whose images have one fixed size: data.image_size defaults to it.
NATIVE_IMAGE_SIZE = {"mnist": 28, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32}
MAX_CONFIG_BYTES = 1 << 20
# Names that become directory names: no separators, no "..", nothing hidden.
SAFE_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"


def _f(default, *, kind, choices=None, low=None, high=None, low_open=False, high_open=False, nullable=False, pattern=None, doc=""):
    """A config field: its type, its allowed values or range, and a one-line description."""
    meta = dict(kind=kind, choices=choices, low=low, high=high, low_open=low_open, high_open=high_open, nullable=nullable,
                pattern=pattern, doc=doc)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _f("sample", kind=str, choices=DATASETS, doc="sample (shipped), cifar10, cifar100, mnist, fashion-mnist, or folder")
    path: Optional[str] = _f(None, kind=str, nullable=True, doc="image folder/.zip, or a name given to `mlcv download folder`")
    dir: Optional[str] = _f(None, kind=str, nullable=True, doc="data dir (default: --data-dir, $MLCV_DATA_DIR, ./data)")
    num_train: Optional[int] = _f(None, kind=int, low=1, nullable=True, doc="training images (null: all left after num_val)")
    num_val: Optional[int] = _f(None, kind=int, low=0, nullable=True,
                                doc="validation images, carved from the training images (null: 10%, at most 1000)")
    num_test: Optional[int] = _f(None, kind=int, low=0, nullable=True,
                                 doc="test images (null: all; a folder without test/ gets 10% of its images, at most 1000)")
    image_size: int = _f(32, kind=int, low=4, high=512, doc="images are resized to image_size x image_size")
    skip_bad: bool = _f(False, kind=bool, doc="skip unreadable images in folders instead of stopping")
    labels: str = _f("fine", kind=str, choices=("fine", "coarse"), doc="cifar100: the 100 fine classes or the 20 coarse superclasses")
    channels: Optional[int] = _f(None, kind=int, nullable=True, low=1, high=3,
                                 doc="image folders: 1 reads them as grayscale, 3 as colour (null: grayscale when every image is)")


@dataclass(frozen=True)
class PreprocessConfig:
    # Bounded so that pixels x scale x weights stay far inside float32 (3.4e38) at any image size.
    scale: float = _f(1.0, kind=float, low=0.0, high=1e3, low_open=True, doc="pixel values are multiplied by this (at most 1000)")
    subtract_mean: bool = _f(True, kind=bool, doc="subtract the mean training image")


@dataclass(frozen=True)
class ModelConfig:
    type: str = _f("softmax", kind=str, choices=MODEL_TYPES, doc="knn, svm or softmax")
    k: int = _f(1, kind=int, low=1, doc="kNN: number of neighbours")
    metric: str = _f("l2", kind=str, choices=METRICS, doc="kNN: l2 (Euclidean) or l1 (Manhattan)")
    max_memory_mb: int = _f(512, kind=int, low=16, doc="kNN: memory for distance temporaries")
    reg: float = _f(1e-4, kind=float, low=0.0, doc="regularization strength")
    penalty: str = _f("l2", kind=str, choices=PENALTIES, doc="regularizer")
    l1_ratio: float = _f(0.5, kind=float, low=0.0, high=1.0, doc="elasticnet: weight of the L1 part")
    delta: float = _f(1.0, kind=float, low=0.0, low_open=True, doc="SVM margin")
    squared_hinge: bool = _f(False, kind=bool, doc="SVM: square each hinge term")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = _f("sgd", kind=str, choices=OPTIMIZERS, doc="update rule")
    lr: float = _f(1e-3, kind=float, low=0.0, low_open=True, doc="learning rate")
    lr_decay: float = _f(1.0, kind=float, low=0.0, high=1.0, low_open=True, doc="lr multiplied by this after each epoch")
    batch_size: int = _f(200, kind=int, low=1, doc="minibatch size")
    epochs: int = _f(10, kind=int, low=1, doc="passes over the training set (lbfgs: full-batch iterations)")
    momentum: float = _f(0.9, kind=float, low=0.0, high=1.0, high_open=True, doc="momentum/nesterov coefficient")
    decay_rate: float = _f(0.99, kind=float, low=0.0, high=1.0, high_open=True, doc="rmsprop decay")
    beta1: float = _f(0.9, kind=float, low=0.0, high=1.0, high_open=True, doc="adam beta1")
    beta2: float = _f(0.999, kind=float, low=0.0, high=1.0, high_open=True, doc="adam beta2")
    eps: float = _f(1e-8, kind=float, low=0.0, low_open=True, doc="adam/rmsprop/adagrad epsilon")
    init_scale: float = _f(1e-3, kind=float, low=0.0, high=1e3, low_open=True, doc="std of the random initial weights (at most 1000)")
    random_search_tries: int = _f(1000, kind=int, low=1, doc="random_search: random weight matrices tried")
    checkpoint_every: int = _f(1, kind=int, low=0, doc="write a checkpoint every N epochs (0: only on interrupt); lbfgs: every N iterations, at most one per 10 s")


@dataclass(frozen=True)
class CVConfig:
    folds: int = _f(5, kind=int, low=2, doc="number of cross-validation folds")
    grid: dict = _f({}, kind=dict, doc="dotted key -> list of values to try")


@dataclass(frozen=True)
class OutputConfig:
    dir: str = _f("runs", kind=str, doc="runs are written under this directory")
    name: Optional[str] = _f(None, kind=str, nullable=True, pattern=SAFE_NAME, doc="run name prefix (default: the config's name)")


@dataclass(frozen=True)
class Config:
    name: str = _f("mlcv", kind=str, pattern=SAFE_NAME, doc="experiment name")
    seed: int = _f(0, kind=int, low=0, doc="seed for splits, initialisation and minibatches")
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    features: tuple = field(default=feature_config.DEFAULT, metadata=dict(
        kind=list, choices=None, low=None, high=None, low_open=False, high_open=False, nullable=True, pattern=None,
        doc="ordered list of extractors (pixels, hog, color_hist, kmeans) whose outputs are concatenated"))
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["features"] = [dict(step) for step in self.features]
        return d


_SECTION_CLASSES = {
    "data": DataConfig,
    "preprocess": PreprocessConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "cv": CVConfig,
    "output": OutputConfig,
}

# Values that suit each model out of the box (the shipped configs spell them out). The
# linear settings were tuned on 35,000/5,000 CIFAR-10 images (bench/bench_accuracy.py).
_LINEAR_DEFAULTS = {
    "preprocess.scale": 1.0 / 255.0,
    "train.optimizer": "momentum",
    "train.momentum": 0.9,
    "train.batch_size": 200,
    "train.epochs": 20,
}
MODEL_DEFAULTS = {
    "knn": {"name": "knn", "preprocess.subtract_mean": False, "model.k": 1, "model.metric": "l2"},
    "svm": {**_LINEAR_DEFAULTS, "name": "svm", "model.reg": 3e-3, "train.lr": 3e-3, "train.lr_decay": 0.85},
    "softmax": {**_LINEAR_DEFAULTS, "name": "softmax", "model.reg": 1e-3, "train.lr": 1e-2, "train.lr_decay": 0.9},
}


def all_keys() -> dict:
    """Every dotted key -> its field metadata (kind, choices, range, doc)."""
    keys = {}
    for f in fields(Config):
        if f.name in _SECTION_CLASSES:
            for sub in fields(_SECTION_CLASSES[f.name]):
                keys[f"{f.name}.{sub.name}"] = dict(sub.metadata)
        else:
            keys[f.name] = dict(f.metadata)
    return keys


KEYS = all_keys()


def _closest(name, options):
    import difflib

    match = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_value(key: str, value: Any) -> Any:
    """Type- and range-check one value for a dotted key; return it normalised."""
    if key == "features":
        return feature_config.check_features(value, check_meta)
    if feature_config.is_feature_key(key):
        return check_meta(key, feature_config.param_meta(key), value)
    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r}{_closest(key, list(KEYS))}; run `mlcv train --print-config` to see all keys")
    return check_meta(key, KEYS[key], value)


def check_meta(key: str, meta: dict, value: Any) -> Any:
    """Check ``value`` against one field's metadata (kind, choices, range); ``key`` names it in errors."""
    kind = meta["kind"]
    if value is None:
        if meta["nullable"]:
            return None
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
        raise ConfigError(f"{key}: expected {names[kind]}, found null (an empty value)")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, found {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, found {value!r}")
    elif kind is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-7" (no dot) as a string; accept what a person means.
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, found {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, found {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, found {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, found {value!r}")
    elif kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of dotted keys to lists, found {value!r}")
        return {k: check_grid_values(k, v) for k, v in value.items()}
    if meta["pattern"] is not None and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(
            f"{key}: expected a name of at most 100 letters, digits, '_', '.' and '-' (it names a directory), found {value!r}"
        )
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: expected one of {', '.join(meta['choices'])}; found {value!r}")
    low, high = meta["low"], meta["high"]
    too_low = low is not None and (value < low or (meta["low_open"] and value == low))
    too_high = high is not None and (value > high or (meta["high_open"] and value == high))
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"> {low}" if meta["low_open"] else f">= {low}")
        if high is not None:
            bounds.append(f"< {high}" if meta["high_open"] else f"<= {high}")
        raise ConfigError(f"{key}: expected a value {' and '.join(bounds)}, found {value!r}")
    return value


_RANGE = re.compile(r"^\s*(logspace|linspace|range)\(([^)]*)\)\s*$")
# A cv plan is expanded into points, jobs and journal rows, and its values are checked one by
# one: past this many points it would only exhaust the memory and the time of any machine.
MAX_GRID_POINTS = 10_000
# --random draws numbers between a key's smallest and largest value, so two values span a range.
_NARROW = "use fewer values (`mlcv cv --random N` samples between a key's smallest and largest value, so two values span a range)"


def range_count(fn: str, nums: list) -> int:
    """How many values fn(*nums) gives, computed without making them."""
    if fn in ("logspace", "linspace"):
        return int(nums[2])
    start, stop, step = (nums + [1])[:3] if len(nums) == 2 else nums
    start, stop, step = int(start), int(stop), int(step)
    return max(0, (stop - start + step - (1 if step > 0 else -1)) // step)


def parse_range(text: str) -> Optional[list]:
    """Expand 'logspace(a,b,n)' (10**a..10**b), 'linspace(a,b,n)' or 'range(a,b[,step])'; None if not one.

    The count is checked before anything is made: past MAX_GRID_POINTS it is a ConfigError.
    """
    m = _RANGE.match(text)
    if not m:
        return None
    fn, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    try:
        nums = [float(a) for a in args]
    except ValueError:
        raise ConfigError(f"{text!r}: expected numbers inside {fn}(...), e.g. logspace(-7,-5,5)") from None
    if not all(math.isfinite(x) for x in nums):
        raise ConfigError(f"{text!r}: expected finite numbers inside {fn}(...), e.g. logspace(-7,-5,5)")
    if fn in ("logspace", "linspace"):
        if len(nums) != 3 or nums[2] < 1 or nums[2] != int(nums[2]):
            raise ConfigError(f"{text!r}: expected {fn}(start, stop, count) with a whole count >= 1")
        if fn == "logspace" and max(nums[0], nums[1]) > 300:
            raise ConfigError(f"{text!r}: 10**{max(nums[0], nums[1]):g} is beyond what a number can hold; use exponents of at most 300")
    elif len(nums) not in (2, 3) or any(x != int(x) for x in nums) or (len(nums) == 3 and nums[2] == 0):
        raise ConfigError(f"{text!r}: expected range(start, stop[, step]) with whole numbers and a step other than 0")
    n = range_count(fn, nums)
    if n > MAX_GRID_POINTS:
        raise ConfigError(f"{text!r} gives {n:,} values, more than the limit of {MAX_GRID_POINTS:,} grid points; "
                          f"use a smaller count{_NARROW[len('use fewer values'):]}")
    if fn in ("logspace", "linspace"):
        a, b = nums[0], nums[1]
        pts = [a + (b - a) * i / (n - 1) if n > 1 else a for i in range(n)]
        return [float(f"{10.0 ** p:.6g}") for p in pts] if fn == "logspace" else [float(f"{p:.6g}") for p in pts]
    return list(range(*[int(x) for x in nums]))


def _distinct(values: list) -> list:
    """The values in order with repeats dropped (equal as in ``==``, so 1 and 1.0 are one value)."""
    seen, out = set(), []
    for v in values:
        marker = ("value", v)
        try:
            hash(marker)
        except TypeError:  # an unhashable value: compared by its text
            marker = ("text", repr(v))
        if marker not in seen:
            seen.add(marker)
            out.append(v)
    return out


def check_grid_count(key: str, count: int):
    """Refuse a grid entry of more than MAX_GRID_POINTS values, before each of them is checked."""
    if count > MAX_GRID_POINTS:
        raise ConfigError(f"cv.grid.{key}: {count:,} values, more than the limit of {MAX_GRID_POINTS:,} grid points; {_NARROW}")


def check_grid_values(key: str, values: Any) -> list:
    """A grid entry: a list of values (or a range expression) each valid for ``key``."""
    if feature_config.is_feature_key(key) and not key.endswith(".type"):
        feature_config.param_meta(key)  # an unknown parameter name fails here; its step is checked in validate
    elif key not in KEYS or KEYS[key]["kind"] is dict or "." not in key or key.startswith(("cv.", "output.", "data.")) or key == "model.type":
        raise ConfigError(
            f"cv.grid: {key!r} is not a key that can be searched (the data and the model type are fixed for a "
            f"cross-validation: run one cv per model type){_closest(key, list(KEYS)) if key not in KEYS else ''}"
        )
    if isinstance(values, str):
        try:
            expanded = parse_range(values)
        except ConfigError as exc:
            raise ConfigError(f"cv.grid.{key}: {exc}") from None
        values = expanded if expanded is not None else [values]
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"cv.grid.{key}: expected a non-empty list of values, logspace(a,b,n) or range(a,b[,step]), found {values!r}"
        )
    check_grid_count(key, len(values))
    return _distinct([check_value(key, v) for v in values])  # a repeated value is one grid point


def check_grid_size(grid: dict):
    """Refuse a full grid whose points (the product of its value counts) pass MAX_GRID_POINTS."""
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(v)} ({k})" for k, v in grid.items())
        raise ConfigError(f"cv.grid: {sizes} = {n:,} grid points, more than the limit of {MAX_GRID_POINTS:,}; "
                          "use fewer values per key, or sample N points of it with `mlcv cv --random N`")


def parse_scalar(text: str) -> Any:
    """A command-line value read as YAML (numbers, true/false, null, [lists])."""
    try:
        return safe_load_text(text, "--set value")
    except ConfigError:
        return text


def parse_override(item: str) -> tuple:
    if "=" not in item:
        raise ConfigError(f"--set expects key.path=value, found {item!r} (e.g. --set model.k=5)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in KEYS and not feature_config.is_feature_key(key):
        raise ConfigError(f"--set: unknown config key {key!r}{_closest(key, list(KEYS))}")
    return key, parse_scalar(raw)


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (billion-laughs bombs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"YAML aliases are not allowed in configs (found *{event.anchor} at line {event.start_mark.line + 1}); write the values out"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        # PyYAML keeps the last of two equal keys without a word; in a config that hides a typo.
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise ConfigError(
                    f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); keep one"
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def safe_load_text(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML: nested too deeply; a config is a few levels of mappings") from None
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{where}: only plain YAML is allowed ({exc.problem}); remove the tag") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None


def read_yaml_file(path) -> dict:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: a config is at most {MAX_CONFIG_BYTES} bytes, this file has {size}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        from .shipped import names

        raise ConfigError(
            f"{path}: does not exist; give a config file, or the name of a shipped config ({', '.join(names()) or 'none installed'}; "
            "`mlcv configs` lists them, `mlcv configs NAME > my.yaml` copies one to edit)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a config; give a .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    data = safe_load_text(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config needs at least a model section (`mlcv configs NAME` prints a full one)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, ...) at the top level, found {type(data).__name__}")
    return data


def flatten(data: dict, where: str = "") -> dict:
    """Nested YAML mapping -> {dotted key: value}; unknown sections and keys are errors."""
    flat = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where or 'config'}: keys must be strings, found {key!r}")
        dotted = f"{where}.{key}" if where else key
        if not where and key in _SECTION_CLASSES:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping, found {value!r}")
            flat.update(flatten(value, dotted))
        elif dotted in KEYS:
            flat[dotted] = value
        else:
            raise ConfigError(f"unknown config key {dotted!r}{_closest(dotted, list(KEYS) + list(_SECTION_CLASSES))}")
    return flat


def build(flat: dict) -> Config:
    """{dotted key: value} (already checked) -> a frozen Config."""
    sections = {name: {} for name in _SECTION_CLASSES}
    top = {}
    for key, value in flat.items():
        if "." in key:
            section, sub = key.split(".", 1)
            sections[section][sub] = value
        else:
            top[key] = value
    return Config(**top, **{name: cls(**sections[name]) for name, cls in _SECTION_CLASSES.items()})


def resolve(path=None, overrides=(), model_type=None, extra=None) -> Config:
    """Load a config: defaults < per-model defaults < YAML file < extra < --set overrides.

    ``overrides`` are 'key.path=value' strings; ``extra`` a {dotted key: value} mapping
    from command-line shortcuts (e.g. --folds).
    """
    if path is not None:
        from .shipped import locate

        path = locate(path)
    from_file = _in_file(path, lambda: flatten(read_yaml_file(path))) if path is not None else {}
    from_cli = dict(extra or {})
    for item in overrides:
        key, value = parse_override(item)
        from_cli[key] = value
    if model_type is not None:
        from_cli.setdefault("model.type", model_type)
    chosen_type = check_value("model.type", from_cli.get("model.type", from_file.get("model.type", "softmax")))
    merged = dict(MODEL_DEFAULTS[chosen_type])
    dataset = from_cli.get("data.dataset", from_file.get("data.dataset"))
    if dataset in NATIVE_IMAGE_SIZE:
        merged["data.image_size"] = NATIVE_IMAGE_SIZE[dataset]  # 28 for MNIST unless the config says otherwise
    merged.update(from_file)
    step_overrides = {k: v for k, v in from_cli.items() if feature_config.is_feature_key(k)}
    merged.update({k: v for k, v in from_cli.items() if k not in step_overrides})
    checked = {}
    for key, value in merged.items():
        from_yaml = key in from_file and key not in from_cli
        checked[key] = _in_file(path, lambda: check_value(key, value)) if from_yaml else check_value(key, value)
    # Checked after the values, so a bad value is reported as such first.
    set_keys = [parse_override(item)[0] for item in overrides]
    # train.* stays allowed for kNN: a script may pass one set of training options to every model.
    unused = [k for k in set_keys if k.startswith("model.") and k != "model.type" and k not in KEYS_USED_BY[chosen_type]]
    if unused:
        raise ConfigError(
            f"--set {', '.join(unused)}: {'does' if len(unused) == 1 else 'do'} not apply to model.type {chosen_type}; "
            f"set keys it uses, e.g. {', '.join(sorted(DEFAULT_GRIDS[chosen_type]))}"
        )
    if step_overrides:
        steps = feature_config.apply_overrides(checked.get("features", feature_config.DEFAULT), step_overrides)
        checked["features"] = check_value("features", steps)
    return validate(build(checked))


def _in_file(path, fn):
    """Run fn(); a ConfigError it raises is prefixed with the config file's name."""
    try:
        return fn()
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}") from None


def validate(cfg: Config) -> Config:
    """Checks that involve more than one key."""
    if cfg.data.dataset == "folder" and not cfg.data.path:
        raise ConfigError("data.path: data.dataset is folder, so data.path must name an image folder, a .zip, or an imported dataset name")
    for key in cfg.cv.grid:
        if feature_config.is_feature_key(key):
            feature_config.check_grid_key(key, cfg.features)
    feature_config.check_chain(cfg)
    if cfg.data.labels == "coarse" and cfg.data.dataset != "cifar100":
        raise ConfigError(f"data.labels: coarse labels exist only for cifar100, and data.dataset is {cfg.data.dataset}; remove data.labels")
    if cfg.data.channels == 2:
        raise ConfigError("data.channels: expected 1 (grayscale), 3 (colour) or null (detect), found 2")
    return cfg


def replace(cfg: Config, values: dict) -> Config:
    """A copy of ``cfg`` with {dotted key: value} changed (values checked)."""
    flat = flatten_config(cfg)
    step_overrides = {k: v for k, v in values.items() if feature_config.is_feature_key(k)}
    for key, value in values.items():
        if key not in step_overrides:
            flat[key] = check_value(key, value)
    if step_overrides:
        flat["features"] = check_value("features", feature_config.apply_overrides(flat["features"], step_overrides))
    return validate(build(flat))


def flatten_config(cfg: Config) -> dict:
    return flatten(cfg.to_dict())


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)


def from_dict(data: dict) -> Config:
    """A resolved config read back from a run directory (checked like any other)."""
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level of the saved config")
    flat = flatten(data)
    return validate(build({key: check_value(key, value) for key, value in flat.items()}))


# Which searchable keys each model uses: a grid over any other key would only measure noise.
_LINEAR_KEYS = {"model.reg", "model.penalty", "model.l1_ratio"} | {k for k in KEYS if k.startswith("train.")}
KEYS_USED_BY = {
    "knn": {"model.k", "model.metric", "model.max_memory_mb", "preprocess.scale", "preprocess.subtract_mean"},
    "svm": _LINEAR_KEYS | {"model.delta", "model.squared_hinge", "preprocess.scale", "preprocess.subtract_mean"},
    "softmax": _LINEAR_KEYS | {"preprocess.scale", "preprocess.subtract_mean"},
}


def check_grid_for_model(grid: dict, model_type: str):
    unused = [k for k in grid if k not in KEYS_USED_BY[model_type] and not feature_config.is_feature_key(k)]
    if unused:
        raise ConfigError(
            f"cv.grid: {', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to model.type {model_type}; "
            f"search keys it uses, e.g. {', '.join(sorted(DEFAULT_GRIDS[model_type]))}"
        )


# What `mlcv cv --model X` searches when neither the config nor --grid gives a grid.
DEFAULT_GRIDS = {
    "knn": {"model.k": [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]},
    "svm": {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1]},
    "softmax": {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1]},
}
