"""The Dataset record and its on-disk cache (four .npy files plus a manifest.json).

The manifest is written last and is the "complete" marker: a cache directory without a
valid manifest, or whose files disagree with it, is not trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..system import locks
from ..system.atomic import describe_os_error, file_digest, remove_quietly, remove_temporaries, save_npy, write_json
from ..system.files import open_regular, read_small

MANIFEST = "manifest.json"
CACHE_FORMAT = "mlcv-dataset-cache"
CACHE_VERSION = 1
ARRAYS = ("train_x", "train_y", "test_x", "test_y")
# Array files carry a generation token; caches written before it (train_x.npy) still load.
_ARRAY_FILE = re.compile(r"^(train|test)_[xy](-[0-9a-f]{8})?\.npy$")
_MANIFEST_LIMIT = 16 << 20  # class names and a few entries: far less, even for thousands of classes
# A reader retries when an import replaced the cache under it; this bounds the retries.
_LOAD_TRIES = 20


@dataclass
class Dataset:
    """Images and labels of one dataset.

    train_x: uint8 ndarray of shape (N, H, W, C), C = 3 (colour) or 1 (grayscale); train_y: int64 ndarray of shape (N,)
    with values in [0, C); test_x/test_y likewise with M examples, or None when the
    dataset has no test split. ``classes`` are the C class names (label i is classes[i]).
    """

    name: str
    classes: list[str]
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    source: str
    # What the loader left out and the user should hear about (nested or empty folders).
    notes: list = field(default_factory=list)


@contextlib.contextmanager
def import_lock(directory):
    """Held for a whole import into the cache ``directory``: one importer at a time, others wait.

    The lock file lives beside the directory (``.NAME.import.lock``) and is removed on
    release, so a failed import leaves nothing behind. Re-entrant within a process.
    """
    directory = Path(directory)
    made = [p for p in (directory.parent, *directory.parent.parents) if not p.exists()]
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise describe_os_error(directory, exc) from None
    try:
        with locks.hold(_import_lock_path(directory), on_wait=locks.say_waiting(f"importing into {directory}")):
            yield
    finally:
        for parent in made:  # an import that wrote nothing leaves no empty data dir behind
            try:
                parent.rmdir()
            except OSError:
                break


def _import_lock_path(directory):
    return directory.parent / f".{directory.name}.import.lock"


def save_cache(directory, dataset, extra=None):
    """Write ``dataset`` to ``directory`` as .npy files, then manifest.json last.

    The arrays get fresh file names (``train_x-<token>.npy``) and the manifest that names
    them is renamed into place last, so a crash at any moment leaves the previous cache
    complete and trusted; the previous generation's files are removed afterwards.
    ``extra`` (JSON-serialisable dict) is stored in the manifest too. Returns the manifest.
    """
    directory = Path(directory)
    with import_lock(directory):
        return _save_cache(directory, dataset, extra)


def _save_cache(directory, dataset, extra):
    problem = arrays_problem({key: getattr(dataset, key) for key in ARRAYS})
    if problem:  # a loader's mistake, caught before it becomes a cache every later run trusts
        raise DataError(f"cannot cache {dataset.name}: {problem}")
    token = secrets.token_hex(4)
    arrays = {}
    written = []
    try:
        for key in ARRAYS:
            array = getattr(dataset, key)
            if array is None:
                continue
            path = directory / f"{key}-{token}.npy"
            written.append(path)
            save_npy(path, array)
            arrays[key] = {
                "file": path.name,
                "shape": list(array.shape),
                "dtype": str(np.dtype(array.dtype)),
                "bytes": path.stat().st_size,
                "sha256": file_digest(path, "sha256"),
            }
        manifest = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "name": dataset.name,
            "classes": list(dataset.classes),
            "source": dataset.source,
            "arrays": arrays,
        }
        for key, value in (extra or {}).items():
            manifest.setdefault(key, value)
        write_json(directory / MANIFEST, manifest)
    except BaseException:
        for path in written:
            remove_quietly(path)
        raise
    # Holding the import lock, no other live process writes here: array files the manifest
    # does not name and temporary files are the previous generation or a killed import's.
    # A reader that opened the previous generation keeps its memory maps (the inode lives
    # on); one that had not yet opened it retries with the new manifest (load_cache).
    keep = {info["file"] for info in arrays.values()}
    for path in directory.iterdir():
        if _ARRAY_FILE.match(path.name) and path.name not in keep:
            remove_quietly(path)
    remove_temporaries(directory)
    return manifest


def read_manifest(directory, *, verify=False):
    """Return the cache's manifest if the cache is complete and consistent, else None.

    Checks the manifest's format, that every listed file exists with the recorded size
    and, with ``verify``, the recorded sha256 (slow: reads every byte).
    """
    try:
        return _retrying(Path(directory), lambda: _check_cache(Path(directory), verify))
    except DataError:
        return None


def load_cache(directory, *, mmap=True, fix="delete it and import the data again", verify=False):
    """Load a cache written by save_cache as a Dataset, memory-mapped by default.

    Raises DataError (ending with ``fix``) when the cache is missing, incomplete or damaged.
    Without ``verify`` this only reads headers, so it takes milliseconds at any size.
    """
    directory = Path(directory)
    return _retrying(directory, lambda: _load_cache(directory, mmap, fix, verify))


def _retrying(directory, load):
    """Run ``load``; when it fails because an import replaced the cache meanwhile (the
    manifest is a new file), run it again, so a reader gets the old or the new import whole."""
    for _ in range(_LOAD_TRIES):
        before = _manifest_id(directory)
        try:
            return load()
        except DataError:
            if _manifest_id(directory) == before:
                raise
    return load()


def _manifest_id(directory):
    try:
        st = (directory / MANIFEST).stat()
        return st.st_ino, st.st_dev, st.st_mtime_ns
    except OSError:
        return None


def load_npy(path, mmap=False):
    """One .npy array file, read without pickles (memory-mapped with ``mmap``). Its header is
    checked against the file before anything is allocated; ValueError says what is wrong in
    words of its own (a zero-filled file is "not a .npy file", not numpy's allow_pickle advice)."""
    with open_regular(path) as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise ValueError("not a .npy array file (no NumPy header: the file is damaged or was overwritten)")
        fh.seek(0)
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"a .npy file of format {version[0]}.{version[1]}, which mlcv does not write")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fh)
        if dtype.hasobject:
            raise ValueError("it holds Python objects, which mlcv never loads")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = os.fstat(fh.fileno()).st_size - fh.tell()
        if declared != held:
            raise ValueError(f"its header declares {declared:,} bytes of data, the file holds {held:,}")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def arrays_problem(arrays: dict, n_classes=None):
    """What makes {"train_x": ..., "train_y": ..., "test_x": ..., "test_y": ...} unusable as a
    Dataset's arrays (uint8 images (N, H, W, 1 or 3), one integer label per image, in
    [0, n_classes) unless n_classes is None), or None."""
    shapes = {}
    for split in ("train", "test"):
        x, y = arrays.get(f"{split}_x"), arrays.get(f"{split}_y")
        if x is None and y is None:
            continue
        if x is None or y is None:
            return f"{split} images without labels or labels without images"
        if x.dtype != np.uint8:
            return f"the {split} images are {x.dtype}, expected uint8"
        if x.ndim != 4 or x.shape[3] not in (1, 3) or min(x.shape[1:3]) < 1:
            return f"the {split} images have shape {tuple(x.shape)}, expected (N, height, width, 1 or 3)"
        if y.dtype.kind not in "iu":
            return f"the {split} labels are {y.dtype}, expected integers"
        if y.ndim != 1 or len(y) != len(x):
            return f"{y.size:,} {split} labels ({'x'.join(map(str, y.shape))}) for {len(x):,} {split} images"
        if n_classes is not None and y.size and (int(y.min()) < 0 or int(y.max()) >= n_classes):
            return f"{split} labels outside 0..{n_classes - 1} ({n_classes} classes)"
        shapes[split] = tuple(x.shape[1:])
    if "train" not in shapes or not len(arrays["train_y"]):
        return "no training images"
    if shapes.get("test", shapes["train"]) != shapes["train"]:
        return f"test images of shape {shapes['test']} beside training images of shape {shapes['train']}"
    return None


def _load_cache(directory, mmap, fix, verify):
    manifest = _check_cache(directory, verify, fix)
    loaded = {}
    for key, info in manifest["arrays"].items():
        path = directory / info["file"]
        try:
            array = load_npy(path, mmap=mmap)
        except (OSError, ValueError) as exc:
            raise DataError(f"cache file {path} is damaged ({exc}); {fix}") from None
        if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
            raise DataError(
                f"cache file {path} holds {array.dtype} {tuple(array.shape)}, but the manifest "
                f"says {info['dtype']} {tuple(info['shape'])}; {fix}"
            )
        loaded[key] = array
    n_classes = len(manifest["classes"])
    # The manifest can agree with arrays no import wrote (edited, or made to match): what a
    # reader relies on is checked on the arrays themselves.
    problem = arrays_problem(loaded, n_classes)
    if problem and "labels outside" in problem:
        raise DataError(f"cache {directory} has {problem}; {fix}")
    if problem:
        raise DataError(f"cache {directory} is not a usable dataset: {problem}; {fix}")
    return Dataset(
        name=manifest["name"],
        classes=list(manifest["classes"]),
        train_x=loaded["train_x"],
        train_y=loaded["train_y"],
        test_x=loaded.get("test_x"),
        test_y=loaded.get("test_y"),
        source=manifest.get("source", str(directory)),
    )


def _check_cache(directory, verify, fix="delete it and import the data again"):
    path = directory / MANIFEST
    if not path.is_file():
        if locks.is_locked(_import_lock_path(directory)):
            pid = locks.holder_pid(_import_lock_path(directory))
            raise DataError(f"the first import into {directory} is still running (mlcv process {pid}); wait for it to finish")
        if directory.is_dir() and any(directory.iterdir()):
            raise DataError(f"cache {directory} is incomplete (no {MANIFEST}: an import was interrupted); {fix}")
        raise DataError(f"no dataset cache in {directory}; {fix}")
    try:
        manifest = json.loads(read_small(path, _MANIFEST_LIMIT))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"cache manifest {path} is unreadable ({exc}); {fix}") from exc
    problem = _manifest_problem(manifest)
    if problem:
        raise DataError(f"cache manifest {path} is not valid ({problem}); {fix}")
    for info in manifest["arrays"].values():
        file = directory / info["file"]
        try:
            size = file.stat().st_size
        except OSError:
            raise DataError(f"cache file {file} is missing; {fix}") from None
        if size != info["bytes"]:
            raise DataError(f"cache file {file} is {size} bytes, the manifest says {info['bytes']}; {fix}")
        if verify and file_digest(file, "sha256") != info["sha256"]:
            raise DataError(f"cache file {file} does not match its checksum in {MANIFEST}; {fix}")
    return manifest


def _manifest_problem(manifest):
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        return f"expected format {CACHE_FORMAT!r}"
    if manifest.get("version") != CACHE_VERSION:
        return f"expected version {CACHE_VERSION}, found {manifest.get('version')!r}"
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "no class names"
    if not isinstance(manifest.get("name"), str):
        return "no dataset name"
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict) or "train_x" not in arrays or "train_y" not in arrays:
        return "no training arrays"
    if ("test_x" in arrays) != ("test_y" in arrays):
        return "test images without labels or labels without images"
    for key, info in arrays.items():
        if key not in ARRAYS:
            return f"unknown array {key!r}"
        if not isinstance(info, dict) or not _ARRAY_FILE.match(str(info.get("file"))) or info["file"].split("-")[0].split(".")[0] != key:
            return f"bad entry for {key}"
        if not isinstance(info.get("shape"), list) or not isinstance(info.get("bytes"), int):
            return f"bad entry for {key}"
        if not isinstance(info.get("dtype"), str) or not isinstance(info.get("sha256"), str):
            return f"bad entry for {key}"
    return None
