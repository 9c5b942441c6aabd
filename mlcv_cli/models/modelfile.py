"""model.npz: the learned arrays, class names and fitted feature chain of one model.

Read with ``np.load(..., allow_pickle=False)``; a file that is not an mlcv model, holds
pickled objects, comes from an incompatible version or has arrays of the wrong shape
is refused with a ModelFileError, never unpickled.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.features.chain import FeatureChain
from ..errors import ModelFileError
from ..system import atomic
from . import registry

FORMAT = "mlcv-model"
# 1: pixels only ('scale' and 'mean' entries); 2: the fitted feature chain ('features_spec'
# and 'features.*' entries). Both are read.
FORMAT_VERSION = 2
_READS = (1, 2)
_CHAIN_PREFIX = "features."


@dataclass
class ModelFile:
    model_type: str
    classes: list
    image_size: int
    chain: FeatureChain  # fitted: uint8 images -> the features the model was trained on
    config_yaml: str
    arrays: dict  # what the model type stores (models/<family>.py: arrays, check_arrays)

    @property
    def channels(self) -> int:
        """1 for a grayscale model (MNIST), 3 for colour: the chain was fitted on (H, W, channels) images."""
        return int(self.chain.image_shape_[2])


def save(path, mf: ModelFile):
    arrays = {
        "mlcv_format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "model_type": np.array(mf.model_type),
        "classes": np.array(list(mf.classes), dtype=np.str_),
        "image_size": np.array(mf.image_size),
        "features_spec": np.array(json.dumps(mf.chain.spec(), sort_keys=True)),
        **{_CHAIN_PREFIX + name: value for name, value in mf.chain.state().items()},
        "config_yaml": np.array(mf.config_yaml),
        **mf.arrays,
    }
    atomic.save_npz(path, arrays)


def _legacy_chain(path, data, image_size):
    """The pixels chain of a format-1 file (scale and mean entries)."""
    D = image_size * image_size * 3
    mean = data.get("mean")
    scale = data.get("scale")
    if mean is None or mean.ndim != 1 or mean.shape[0] not in (0, D) or scale is None or scale.ndim != 0:
        raise ModelFileError(f"{path}: preprocessing arrays have the wrong shape (mean should be ({D},) or empty)")
    if mean.dtype.kind != "f" or not np.isfinite(mean).all():
        raise ModelFileError(f"{path}: the mean image must be finite numbers; the file is damaged")
    if scale.dtype.kind not in "fiu" or not (np.isfinite(scale) and scale > 0):
        raise ModelFileError(f"{path}: the pixel scale must be a finite number > 0; the file is damaged")
    spec = {"steps": [{"type": "pixels", "scale": float(scale), "subtract_mean": bool(mean.size)}], "standardize": "auto"}
    return FeatureChain.from_state(spec, {"image_shape": np.array([image_size, image_size, 3]), "0.mean": mean})


def _stored_chain(path, data, image_size):
    """The fitted feature chain of a format-2 file, every array checked."""
    raw = data.get("features_spec")
    if raw is None or raw.dtype.kind != "U" or raw.ndim != 0:
        raise ModelFileError(f"{path}: entry 'features_spec' is missing or not text; the file is not a valid mlcv model")
    try:
        spec = json.loads(str(raw))
    except ValueError:
        raise ModelFileError(f"{path}: entry 'features_spec' is not valid JSON; the file is damaged") from None
    arrays = {name[len(_CHAIN_PREFIX):]: value for name, value in data.items() if name.startswith(_CHAIN_PREFIX)}
    try:
        chain = FeatureChain.from_state(spec, arrays)
    except ImportError as exc:
        raise ModelFileError(f"{path}: this mlcv cannot load the model's feature extractor ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: entry '{_CHAIN_PREFIX}{exc}'; the file is damaged or was written by another mlcv") from None
    if chain.image_shape_[:2] != (image_size, image_size) or chain.image_shape_[2] not in (1, 3):
        raise ModelFileError(
            f"{path}: entry 'features.image_shape' is {chain.image_shape_}, expected ({image_size}, {image_size}, 1 or 3)"
        )
    return chain


def check_declared_sizes(path):
    """Refuse a member whose .npy header declares more bytes than the member holds.

    np.load allocates what the header says before reading, so a 1 kB file could ask
    for terabytes; checking the header against the zip's size first keeps it honest.
    """
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if not dtype.hasobject and declared > info.file_size:
                raise ModelFileError(
                    f"{path}: entry {info.filename!r} declares {declared:,} bytes of data but holds "
                    f"{info.file_size:,}; the file is damaged or not an mlcv model"
                )


def load(path) -> ModelFile:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; give a run directory or its model.npz")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not an mlcv model (expected a .npz written by `mlcv train`)")
    try:
        check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if "mlcv_format" not in names:
                raise ModelFileError(f"{path} is not an mlcv model (no mlcv_format entry); train one with `mlcv train`")
            data = {name: npz[name] for name in names}
    except ModelFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(f"{path} holds pickled objects, which mlcv never loads; use a model written by `mlcv train`") from None
        raise ModelFileError(f"{path} is damaged or not an mlcv model ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} is damaged or not an mlcv model ({exc})") from None
    except MemoryError:
        raise ModelFileError(f"{path} holds arrays too large for this machine's memory; it is not a model mlcv wrote") from None

    def text(name):
        value = data.get(name)
        if value is None or value.dtype.kind != "U" or value.ndim != 0:
            raise ModelFileError(f"{path}: entry {name!r} is missing or not text; the file is not a valid mlcv model")
        return str(value)

    def integer(name):
        value = data.get(name)
        if value is None or value.dtype.kind not in "iu" or value.ndim != 0:
            raise ModelFileError(f"{path}: entry {name!r} is missing or not an integer; the file is not a valid mlcv model")
        return int(value)

    if text("mlcv_format") != FORMAT:
        raise ModelFileError(f"{path} is not an mlcv model (format {text('mlcv_format')!r})")
    version = integer("format_version")
    if version not in _READS:
        raise ModelFileError(
            f"{path} was written in model format {version}, this mlcv reads formats {' and '.join(map(str, _READS))}; retrain it with this version"
        )
    model_type = text("model_type")
    if model_type not in registry.names():
        raise ModelFileError(f"{path}: unknown model type {model_type!r} (expected {', '.join(registry.names())})")
    classes = data.get("classes")
    if classes is None or classes.dtype.kind != "U" or classes.ndim != 1 or len(classes) < 1:
        raise ModelFileError(f"{path}: 'classes' must be a list of class names")
    image_size = integer("image_size")
    if not 1 <= image_size <= 4096:
        raise ModelFileError(f"{path}: image_size {image_size} is out of range")
    chain = _legacy_chain(path, data, image_size) if version == 1 else _stored_chain(path, data, image_size)
    pixels_dim = image_size * image_size * chain.image_shape_[2]  # one channel for grayscale models
    D, C = chain.output_dim(chain.image_shape_), len(classes)
    arrays = registry.get(model_type).check_arrays(path, data, D, C, pixels_dim)
    return ModelFile(
        model_type=model_type,
        classes=[str(c) for c in classes],
        image_size=image_size,
        chain=chain,
        config_yaml=text("config_yaml") if "config_yaml" in data else "",
        arrays=arrays,
    )
