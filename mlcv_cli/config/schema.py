"""The config schema: one frozen dataclass per section, each field with its type, allowed values
or range and a one-line description; the per-model defaults and the keys each model uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Optional

from . import features as feature_config

MODEL_TYPES = ("knn", "svm", "softmax")
METRICS = ("l2", "l1")
PENALTIES = ("l2", "l1", "elasticnet", "none")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "random_search", "lbfgs")
DATASETS = ("sample", "cifar10", "folder", "mnist", "fashion-mnist", "cifar100")
# Datasets whose images have one fixed size: data.image_size defaults to it.
NATIVE_IMAGE_SIZE = {"mnist": 28, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32}
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


SECTIONS = {
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
        if f.name in SECTIONS:
            for sub in fields(SECTIONS[f.name]):
                keys[f"{f.name}.{sub.name}"] = dict(sub.metadata)
        else:
            keys[f.name] = dict(f.metadata)
    return keys


KEYS = all_keys()


# --random draws numbers between a key's smallest and largest value, so two values span a range.


# Which searchable keys each model uses: a grid over any other key would only measure noise.
_LINEAR_KEYS = {"model.reg", "model.penalty", "model.l1_ratio"} | {k for k in KEYS if k.startswith("train.")}
KEYS_USED_BY = {
    "knn": {"model.k", "model.metric", "model.max_memory_mb", "preprocess.scale", "preprocess.subtract_mean"},
    "svm": _LINEAR_KEYS | {"model.delta", "model.squared_hinge", "preprocess.scale", "preprocess.subtract_mean"},
    "softmax": _LINEAR_KEYS | {"preprocess.scale", "preprocess.subtract_mean"},
}


# What `mlcv cv --model X` searches when neither the config nor --grid gives a grid.
DEFAULT_GRIDS = {
    "knn": {"model.k": [1, 3, 5, 8, 10, 12, 15, 20, 50, 100]},
    "svm": {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1]},
    "softmax": {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1]},
}
