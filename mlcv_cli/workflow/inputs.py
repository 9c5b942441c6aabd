"""The data a config names: the data dir, the dataset (checked against data.image_size), and
absolute data locations pinned into a run's config."""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path

from .. import config as config_mod
from .. import data
from ..config import Config
from ..data import registry as datasets
from ..data.channels import is_gray, to_gray
from ..data.folder import IMPORTED_PREFIX, folder_source, imported_path
from ..errors import ConfigError, DataError


def resolve_data_dir(given=None) -> Path:
    """The data dir: ``given`` (--data-dir or data.dir), else $MLCV_DATA_DIR, else ./data."""
    return Path(given or os.environ.get("MLCV_DATA_DIR") or "data")


def data_dir_for(cfg: Config) -> Path:
    return resolve_data_dir(cfg.data.dir)


def pin_data_location(cfg: Config) -> Config:
    """The config with absolute data locations, so a saved run works from any directory."""
    values = {"data.dir": str(data_dir_for(cfg).resolve())}
    if cfg.data.path and cfg.data.dataset == datasets.FOLDER:
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
    """The dataset named by the config: the shipped sample, a named one (data/registry.py), or an image folder."""
    kind = cfg.data.dataset
    if kind == datasets.SAMPLE:
        return data.load_sample(size=cfg.data.image_size)  # through the package: tests share one decoded sample
    if kind in datasets.DATASETS:
        return datasets.DATASETS[kind].load(data_dir_for(cfg), cfg.data.labels)  # load_dataset checks data.image_size
    kind, where = folder_source(cfg.data.path, data_dir_for(cfg))
    if kind == "folder" and where.exists():
        t0 = time.perf_counter()
        ds, _skipped = data.load_folder(where, size=cfg.data.image_size, skip_bad=cfg.data.skip_bad, progress=True)
        seconds = time.perf_counter() - t0
        if seconds >= IMPORT_HINT_S:
            ds.notes.append(import_hint(where, cfg.data.image_size, len(ds.train_y) + (0 if ds.test_y is None else len(ds.test_y)), seconds))
        return _folder_channels(ds, cfg.data.channels)
    if kind == "imported" and (where != cfg.data.path or imported_path(data_dir_for(cfg), where).exists()):
        return _folder_channels(data.load_imported(data_dir_for(cfg), where), cfg.data.channels)
    raise DataError(
        f"data.path {cfg.data.path!r} is neither an image folder/.zip nor a dataset imported into {data_dir_for(cfg)}; "
        "check the path or run `mlcv download folder PATH --name NAME`"
    )


IMPORT_HINT_S = 2.0  # decoding a folder for longer than this on every run is worth importing it once


def import_hint(where, size, n_images, seconds):
    """How to stop decoding an image folder on every run: import it once, use it by name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(where).stem).strip("-.") or "images"
    size_option = f" --size {size}" if size != 32 else ""
    return (f"decoding the {n_images:,} images of {where} took {seconds:.1f} s, and will again on every run; import the folder "
            f"once with `mlcv download folder {shlex.quote(str(where))} --name {name}{size_option}`, then use "
            f"--set data.path={name} (loads in about a second)")


def _folder_channels(ds, channels):
    """Image folders are read as colour; data.channels 1 (or null and every image gray) keeps one channel."""
    if channels == 1 or (channels is None and is_gray(ds.train_x) and (ds.test_x is None or is_gray(ds.test_x))):
        ds.train_x = to_gray(ds.train_x)
        ds.test_x = None if ds.test_x is None else to_gray(ds.test_x)
    return ds
