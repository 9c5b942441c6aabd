"""The data a config names: the data dir, the dataset (checked against data.image_size), and
absolute data locations pinned into a run's config."""

from __future__ import annotations

import os
from pathlib import Path

from .. import config as config_mod
from ..config import Config
from ..errors import ConfigError, DataError


def resolve_data_dir(given=None) -> Path:
    """The data dir: ``given`` (--data-dir or data.dir), else $MLCV_DATA_DIR, else ./data."""
    return Path(given or os.environ.get("MLCV_DATA_DIR") or "data")


def data_dir_for(cfg: Config) -> Path:
    return resolve_data_dir(cfg.data.dir)


def pin_data_location(cfg: Config) -> Config:
    """The config with absolute data locations, so a saved run works from any directory."""
    from ..data.folder import IMPORTED_PREFIX, folder_source

    values = {"data.dir": str(data_dir_for(cfg).resolve())}
    if cfg.data.path and cfg.data.dataset == "folder":
        # Pinned either way, so a folder made later beside a bare name changes nothing.
        kind, where = folder_source(cfg.data.path, data_dir_for(cfg))
        if kind == "folder" and where.exists():
            values["data.path"] = str(where.resolve())
        elif kind == "imported" and (data_dir_for(cfg) / "folders" / where).is_dir():
            values["data.path"] = IMPORTED_PREFIX + where
    return config_mod.replace(cfg, values)


def load_dataset(cfg: Config, progress=None):
    """The dataset named by the config, with images of data.image_size (checked)."""
    ds = _load_dataset(cfg)
    found = tuple(ds.train_x.shape[1:3])
    if found != (cfg.data.image_size, cfg.data.image_size):
        raise ConfigError(
            f"data.image_size: the {ds.name} images are {found[0]}x{found[1]} but data.image_size is "
            f"{cfg.data.image_size}; set --set data.image_size={found[0]} (or import the folder again with --size)"
        )
    return ds


def _load_dataset(cfg: Config):
    """The dataset named by the config: the shipped sample, CIFAR-10/100, (Fashion-)MNIST, or an image folder."""
    from .. import data as datasets

    kind = cfg.data.dataset
    if kind == "sample":
        return datasets.load_sample(size=cfg.data.image_size)
    if kind in config_mod.NATIVE_IMAGE_SIZE:
        return _load_named(kind, cfg)  # load_dataset checks data.image_size against the images
    from ..data.folder import folder_source, imported_path

    kind, where = folder_source(cfg.data.path, data_dir_for(cfg))
    if kind == "folder" and where.exists():
        ds, _skipped = datasets.load_folder(where, size=cfg.data.image_size, skip_bad=cfg.data.skip_bad)
        return _folder_channels(ds, cfg.data.channels)
    if kind == "imported" and (where != cfg.data.path or imported_path(data_dir_for(cfg), where).exists()):
        return _folder_channels(datasets.load_imported(data_dir_for(cfg), where), cfg.data.channels)
    raise DataError(
        f"data.path {cfg.data.path!r} is neither an image folder/.zip nor a dataset imported into {data_dir_for(cfg)}; "
        "check the path or run `mlcv download folder PATH --name NAME`"
    )


def _load_named(kind, cfg):
    from .. import data as datasets
    from ..data import cifar100, idx

    if kind == "cifar10":
        return datasets.load_cifar10(data_dir_for(cfg))
    if kind == "cifar100":
        return cifar100.load_cifar100(data_dir_for(cfg), labels=cfg.data.labels)
    return idx.load_idx(idx.SOURCES[kind], data_dir_for(cfg))


def _folder_channels(ds, channels):
    """Image folders are read as colour; data.channels 1 (or null and every image gray) keeps one channel."""
    from ..data.channels import is_gray, to_gray

    if channels == 1 or (channels is None and is_gray(ds.train_x) and (ds.test_x is None or is_gray(ds.test_x))):
        ds.train_x = to_gray(ds.train_x)
        ds.test_x = None if ds.test_x is None else to_gray(ds.test_x)
    return ds
