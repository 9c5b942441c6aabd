"""The config schema: one frozen dataclass per section, each field with its type, allowed values
or range and a one-line description; the per-model defaults and the keys each model uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Optional

from ..data import registry as datasets
from ..models import registry
from . import features as feature_config

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "random_search", "lbfgs")
DATASETS = datasets.NAMES
# Datasets whose images have one fixed size: data.image_size defaults to it.
NATIVE_IMAGE_SIZE = datasets.NATIVE_IMAGE_SIZE
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
    dataset: str = _f(datasets.SAMPLE, kind=str, choices=DATASETS, doc=f"{', '.join(datasets.DATASETS)} or {datasets.FOLDER}")
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
class _TrainBase:
    """The train keys every iterative model reads; a model type may add its own (see _section)."""


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


def _section(name, base_fields, prefix):
    """A section's frozen dataclass: ``base_fields`` [(name, type, field)] then the keys the model
    types declare under ``prefix`` (a key declared by two types must be declared alike)."""
    declared = {}
    for model_type in registry.types():
        for dotted, spec in model_type.keys.items():
            if not dotted.startswith(prefix):
                continue
            if dotted in declared and declared[dotted] != spec:
                raise RuntimeError(f"{dotted} is declared differently by two model types ({model_type.name})")
            declared[dotted] = spec
    extra = [(dotted[len(prefix):], spec["kind"], _f(spec["default"], **{k: v for k, v in spec.items() if k != "default"}))
             for dotted, spec in declared.items()]
    cls = dataclasses.make_dataclass(name, base_fields + extra, frozen=True)
    cls.__module__ = __name__  # pickled and documented as this module's class
    return cls


ModelConfig = _section("ModelConfig", [("type", str, _f(registry.DEFAULT, kind=str, choices=registry.names(), doc=", ".join(registry.names())))],
                       "model.")
TrainConfig = _section("TrainConfig", [(f.name, f.type, field(default=f.default, metadata=f.metadata)) for f in fields(_TrainBase)],
                       "train.")


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


SECTIONS = {
    "data": DataConfig,
    "preprocess": PreprocessConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "cv": CVConfig,
    "output": OutputConfig,
}

# Values that suit each model out of the box (the shipped configs spell them out).
MODEL_DEFAULTS = {t.name: dict(t.defaults) for t in registry.types()}


def all_keys() -> dict:
    """Every dotted key -> its field metadata (kind, choices, range, doc)."""
    keys = {}
    for f in fields(Config):
        if f.name in SECTIONS:
            for sub in fields(SECTIONS[f.name]):
                keys[f"{f.name}.{sub.name}"] = dict(sub.metadata)
        else:
            keys[f.name] = dict(f.metadata)
    return keys


KEYS = all_keys()


# Which searchable keys each model uses: a grid over any other key would only measure noise.
KEYS_USED_BY = {t.name: {k for pattern in t.uses for k in ([k for k in KEYS if k.startswith(pattern[:-1])] if pattern.endswith("*") else [pattern])}
                for t in registry.types()}
# What `mlcv cv --model X` searches when neither the config nor --grid gives a grid.
DEFAULT_GRIDS = {t.name: dict(t.default_grid) for t in registry.types()}
