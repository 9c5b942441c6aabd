"""MNIST and Fashion-MNIST: the four official gzipped IDX files, downloaded, verified, parsed, cached.

An IDX file is a 4-byte magic (two zero bytes, the type 0x08 for unsigned bytes, the
number of dimensions), one big-endian uint32 per dimension, then the values row-major.
Every header is checked against the gzip trailer's length before anything is allocated.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset, file_digest, import_lock, load_cache, read_manifest, save_cache
from .download import fetch, known_file_limit

FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
UBYTE = 0x08
MAX_IMAGES = 10_000_000
MAX_SIDE = 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset is published and what its files must hash to."""

    name: str
    title: str
    mirrors: tuple  # folders holding the official file names, tried in this order
    md5: dict
    classes: tuple
    sizes: dict
    """Bytes of each official file: a download is capped near them (download.known_file_limit)."""

    @property
    def url(self):
        return self.mirrors[0]


MNIST = IdxSource(
    name="mnist",
    title="MNIST",
    # The original site stopped serving reliably (PyTorch and TensorFlow moved to copies of the same
    # files); it is tried last. Every copy must match the published MD5s below.
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://yann.lecun.com/exdb/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    classes=tuple(str(d) for d in range(10)),
    sizes={"train-images-idx3-ubyte.gz": 9_912_422, "train-labels-idx1-ubyte.gz": 28_881,
           "t10k-images-idx3-ubyte.gz": 1_648_877, "t10k-labels-idx1-ubyte.gz": 4_542},
)
FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    # The label names published with the dataset (label i is classes[i]).
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    sizes={"train-images-idx3-ubyte.gz": 26_421_880, "train-labels-idx1-ubyte.gz": 29_515,
           "t10k-images-idx3-ubyte.gz": 4_422_102, "t10k-labels-idx1-ubyte.gz": 5_148},
)
SOURCES = {s.name: s for s in (MNIST, FASHION_MNIST)}


# -- parsing --------------------------------------------------------------------------


def read_idx(path, ndim, *, what="IDX file"):
    """Decode one gzipped IDX file of unsigned bytes with ``ndim`` dimensions.

    Checks, before allocating: the gzip magic, the IDX magic (type and dimension count),
    each dimension's range, and that the data the header declares is exactly what the
    gzip trailer says the file holds. Returns a uint8 ndarray of the declared shape.
    """
    path = Path(path)
    fix = f"delete {path} and download it again, or check that it is the official {path.name}"
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
            if head != _GZIP_MAGIC:
                raise DataError(f"{path} is not a gzip file (it starts with {head!r}); the official {what} files are gzipped; {fix}")
            raw.seek(0, 2)
            if raw.tell() < 18:
                raise DataError(f"{path} is only {raw.tell()} bytes: too short for a gzip file; {fix}")
            raw.seek(-4, 2)
            # ISIZE: the uncompressed length modulo 2**32 (RFC 1952), read without decompressing.
            stored = struct.unpack("<I", raw.read(4))[0]
        with gzip.open(path, "rb") as fh:
            magic = _read_exact(fh, 4, path, "the IDX magic number")
            if magic[:2] != b"\0\0" or magic[2] != UBYTE or magic[3] != ndim:
                raise DataError(
                    f"{path} has IDX magic {magic.hex()}, expected 000008{ndim:02x} (unsigned bytes, {ndim} dimension"
                    f"{'s' if ndim > 1 else ''}); {fix}"
                )
            dims = struct.unpack(f">{ndim}I", _read_exact(fh, 4 * ndim, path, "the IDX dimensions"))
            _check_dims(path, dims, fix)
            count = int(np.prod(dims, dtype=np.int64))
            header = 4 + 4 * ndim
            if (header + count) % 2**32 != stored:
                raise DataError(
                    f"{path}: its header declares {'x'.join(map(str, dims))} = {count:,} bytes of data, but the file holds "
                    f"{stored - header:,} (the gzip trailer's length): it is truncated or damaged; {fix}"
                )
            data = np.empty(count, np.uint8)
            view = memoryview(data)
            filled = 0
            while filled < count:
                n = fh.readinto(view[filled : filled + (1 << 22)])
                if not n:
                    raise DataError(f"{path} ended after {filled:,} of {count:,} data bytes; {fix}")
                filled += n
            if fh.read(1):
                raise DataError(f"{path} holds more data than its header declares ({count:,} bytes); {fix}")
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is damaged ({exc}); {fix}") from None
    return data.reshape(dims)


def _read_exact(fh, n, path, what):
    data = fh.read(n)
    if len(data) != n:
        raise DataError(f"{path} ended inside {what} ({len(data)} of {n} bytes); it is truncated or not an IDX file")
    return data


def _check_dims(path, dims, fix):
    if not 1 <= dims[0] <= MAX_IMAGES:
        raise DataError(f"{path} declares {dims[0]:,} items, expected 1 to {MAX_IMAGES:,}; {fix}")
    for d in dims[1:]:
        if not 1 <= d <= MAX_SIDE:
            raise DataError(f"{path} declares an image side of {d}, expected 1 to {MAX_SIDE}; {fix}")


def parse_files(folder, source: IdxSource) -> Dataset:
    """The four official files in ``folder`` -> a Dataset of (N, H, W, 1) uint8 images."""
    folder = Path(folder)
    arrays = {}
    for key, name in FILES.items():
        arrays[key] = read_idx(folder / name, 3 if key.endswith("_x") else 1, what=source.title)
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(x) != len(y):
            raise DataError(
                f"{folder}: {FILES[split + '_x']} holds {len(x):,} images but {FILES[split + '_y']} {len(y):,} labels; "
                "the files come from different datasets or versions"
            )
        if y.size and int(y.max()) >= len(source.classes):
            raise DataError(f"{folder / FILES[split + '_y']} has label {int(y.max())}, expected 0..{len(source.classes) - 1}")
    if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:]:
        raise DataError(f"{folder}: training images are {arrays['train_x'].shape[1:]} but test images {arrays['test_x'].shape[1:]}")
    return Dataset(
        name=source.name,
        classes=list(source.classes),
        train_x=arrays["train_x"][..., None],  # one channel: (N, H, W, 1), no copy
        train_y=arrays["train_y"].astype(np.int64),
        test_x=arrays["test_x"][..., None],
        test_y=arrays["test_y"].astype(np.int64),
        source=str(folder),
    )


# -- download, cache, load ----------------------------------------------------------------


def prepare_idx(source: IdxSource, data_dir, *, url=None, archive=None, md5=None, verify=True, force=False, progress=True):
    """Make sure ``data_dir/NAME`` holds a complete cache of an IDX dataset.

    ``url``: the folder (ending in /) under which the four official file names are found
    (default: the source's mirrors, each file from the first that serves it with its published
    MD5); ``archive``: a local folder holding them (or one of them); ``md5``: {file name: hex}
    replacing published checksums (a mirror serving other files); ``verify=False`` skips
    checksums. Returns ``dict(status, path, verified)``; status is cached, downloaded or imported.
    """
    data_dir = Path(data_dir)
    cache = data_dir / source.name
    # The lock covers the download too: two processes never append to one .part file.
    with import_lock(cache):
        return _prepare_idx(source, cache, url, archive, md5, verify, force, progress)


def _prepare_idx(source, cache, url, archive, md5, verify, force, progress):
    expected = {**source.md5, **(md5 or {})}
    if not force:
        manifest = read_manifest(cache, verify=True)
        if manifest is not None:
            return {"status": "cached", "path": str(cache), "verified": bool(manifest.get("verified", True))}
    if archive is not None:
        folder = Path(archive)
        if folder.is_file():
            folder = folder.parent
        if not folder.is_dir():
            raise DataError(f"--archive {archive} does not exist; give the folder holding the four {source.title} .gz files")
        missing = [n for n in FILES.values() if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{folder} lacks {', '.join(missing)}; --archive takes the folder holding the four official {source.title} files")
        if verify:
            for name in FILES.values():
                _check_md5(folder / name, expected[name], f"{folder / name}")
        status = "imported"
    else:
        folder = cache / "download"
        bases = [url] if url else list(source.mirrors)
        bases = [b if b.endswith("/") else b + "/" for b in bases]
        for name in FILES.values():
            dest = folder / name
            if not force and dest.is_file() and (not verify or file_digest(dest, "md5") == expected[name]):
                continue
            official = verify and expected[name] == source.md5[name]
            _fetch_from_mirrors(bases, name, dest, expected[name] if verify else None, progress, force,
                                known_file_limit(source.sizes[name], official))
        status = "downloaded"
    dataset = parse_files(folder, source)
    save_cache(cache, dataset, extra={"files_md5": {n: file_digest(folder / n, "md5") for n in FILES.values()}, "verified": verify})
    return {"status": status, "path": str(cache), "verified": verify}


def _fetch_from_mirrors(bases, name, dest, md5, progress, force, max_bytes):
    """``name`` from the first of ``bases`` that serves it (with ``md5`` when given); one error
    naming every mirror's failure when none does."""
    failures = []
    for i, base in enumerate(bases):
        try:
            return fetch(base + name, dest, md5, progress=progress, resume=not force and i == 0, max_bytes=max_bytes)
        except DataError as exc:
            if len(bases) == 1:
                raise
            failures.append(f"{base}: {exc}")
    raise DataError(f"could not download {name} from any of its {len(bases)} mirrors ({'; '.join(failures)}); "
                    "check the network, or give --url BASE/ (a mirror) or --archive FOLDER (local copies)")


def _check_md5(path, md5, what):
    found = file_digest(path, "md5")
    if found != md5.lower():
        raise DataError(
            f"{what} has md5 {found}, expected {md5.lower()}; it is not the official file. For a mirror that "
            f"publishes other files give --md5 {Path(path).name}=HEX, or --no-verify to skip the check"
        )


def load_idx(source: IdxSource, data_dir, mmap=True):
    cache = Path(data_dir) / source.name
    if not (cache / "manifest.json").is_file():
        raise DataError(f"{source.title} is not in {cache}; run `mlcv download {source.name}`")
    return load_cache(cache, mmap=mmap, fix=f"run `mlcv download {source.name} --force` to rebuild it")
