"""CIFAR-10 from its official binary archive: download, verify, parse (no pickle), cache.

The tar is read in place (nothing is extracted to disk) after every member has been
checked, and the six batch files are decoded with numpy.frombuffer.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .archives import tar_member_problem
from .base import Dataset, file_digest, import_lock, load_cache, read_manifest, save_cache
from .download import fetch, known_file_limit

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
SIZE = 170_052_171
"""Bytes of the official archive: a download is capped near it (download.known_file_limit)."""
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

ARCHIVE_NAME = "cifar-10-binary.tar.gz"
CACHE_NAME = "cifar10"
FOLDER = "cifar-10-batches-bin"
TRAIN_MEMBERS = tuple(f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6))
TEST_MEMBERS = (f"{FOLDER}/test_batch.bin",)
RECORDS_PER_BATCH = 10000
SIDE = 32
RECORD_BYTES = 1 + 3 * SIDE * SIDE  # label byte, then R, G and B planes of 32x32, row-major

# Members we do not read (batches.meta.txt, readme.html) are still checked; they are tiny.
MAX_OTHER_MEMBER = 1 << 20
MAX_MEMBERS = 1000

_FIX_ARCHIVE = "delete it and download again (mlcv download cifar10 --force)"


def prepare_cifar10(data_dir, *, url=URL, archive=None, md5=MD5, force=False, progress=True,
                    records_per_batch=RECORDS_PER_BATCH):
    """Make sure ``data_dir/cifar10`` holds a complete, verified CIFAR-10 cache.

    Returns ``dict(status=..., path=..., archive=...)`` where status is "cached" (nothing
    to do), "downloaded" (fetched from ``url``) or "imported" (parsed from the local
    ``archive``, or from a verified archive an earlier download left in ``data_dir``).
    ``md5=None`` skips the archive checksum (only for mirrors that publish none). The
    downloaded archive is kept next to the cache. ``records_per_batch`` exists for tests.
    """
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_NAME
    # The lock covers the download too: two processes never write one archive or cache,
    # and the second finds the first one's cache complete.
    with import_lock(cache):
        return _prepare(data_dir, cache, url, archive, md5, force, progress, records_per_batch)


def _prepare(data_dir, cache, url, archive, md5, force, progress, records_per_batch):
    if not force and read_manifest(cache, verify=True) is not None:
        return {"status": "cached", "path": str(cache), "archive": None}

    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise DataError(f"archive {archive} does not exist; check the path given to --archive")
        found = _checked_md5(archive, md5, f"archive {archive}", "check that it is cifar-10-binary.tar.gz, "
                             "or pass --md5 with its checksum")
        status = "imported"
    else:
        archive = data_dir / ARCHIVE_NAME
        found = file_digest(archive, "md5") if not force and archive.is_file() else None
        if found is not None and (not md5 or found == md5.lower()):
            status = "imported"
        else:
            fetch(url, archive, md5, progress=progress, resume=not force,
                  max_bytes=known_file_limit(SIZE, official=bool(md5) and md5.lower() == MD5))
            status = "downloaded"
            found = md5.lower() if md5 else file_digest(archive, "md5")  # fetch verified it

    dataset = parse_archive(archive, records_per_batch=records_per_batch)
    save_cache(cache, dataset, extra={"archive_md5": found, "records_per_batch": records_per_batch})
    return {"status": status, "path": str(cache), "archive": str(archive)}


def load_cifar10(data_dir, mmap=True):
    """Load the CIFAR-10 cache made by prepare_cifar10 (memory-mapped by default)."""
    cache = Path(data_dir) / CACHE_NAME
    if not (cache / "manifest.json").is_file() and not any(_iterdir(cache)):
        raise DataError(
            f"CIFAR-10 is not in {cache}; run `mlcv download cifar10` (or set data.dataset: sample)"
        )
    return load_cache(cache, mmap=mmap, fix="run `mlcv download cifar10` to rebuild it")


def _iterdir(path):
    try:
        return list(path.iterdir())
    except OSError:
        return []


def _checked_md5(path, md5, what, fix):
    try:
        found = file_digest(path, "md5")
    except OSError as exc:
        raise DataError(f"could not read {what}: {exc.strerror or exc}") from exc
    if md5 and found != md5.lower():
        raise DataError(f"{what} has md5 {found}, expected {md5.lower()}; {fix}")
    return found


def parse_archive(path, *, records_per_batch=RECORDS_PER_BATCH):
    """Decode the official binary tar (.tar.gz) into a Dataset without extracting it.

    Every member is checked first (no absolute paths, ``..``, links or devices, no
    oversized members, each batch exactly ``records_per_batch`` records); only then
    are the six batch files read.
    """
    batch_bytes = records_per_batch * RECORD_BYTES
    wanted = TRAIN_MEMBERS + TEST_MEMBERS
    try:
        with tarfile.open(path, "r:*") as tar:
            members = _checked_members(tar, path, wanted, batch_bytes, records_per_batch)
            train = [_read_batch(tar, members[name], path, records_per_batch) for name in TRAIN_MEMBERS]
            test = [_read_batch(tar, members[name], path, records_per_batch) for name in TEST_MEMBERS]
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"archive {path} is damaged or not a tar file ({exc}); {_FIX_ARCHIVE}") from exc
    train_x, train_y = _concat(train)
    test_x, test_y = _concat(test)
    return Dataset(
        name="cifar10",
        classes=list(CLASSES),
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        source=str(path),
    )


def _checked_members(tar, path, wanted, batch_bytes, records):
    found = {}
    count = 0
    while True:
        member = tar.next()
        if member is None:
            break
        count += 1
        if count > MAX_MEMBERS:
            raise DataError(f"archive {path} has more than {MAX_MEMBERS} members; it is not CIFAR-10 ({_FIX_ARCHIVE})")
        name = member.name
        problem = tar_member_problem(member)
        if problem:
            raise DataError(f"refusing archive {path}: member {name!r} {problem}; {_FIX_ARCHIVE}")
        key = name[2:] if name.startswith("./") else name
        if key in wanted:
            if not member.isfile():
                raise DataError(f"refusing archive {path}: {name!r} is not a regular file; {_FIX_ARCHIVE}")
            if key in found:
                raise DataError(f"refusing archive {path}: {name!r} appears twice; {_FIX_ARCHIVE}")
            if member.size != batch_bytes:
                raise DataError(
                    f"archive member {name!r} in {path} is {member.size:,} bytes, expected {batch_bytes:,} "
                    f"({records:,} records of {RECORD_BYTES} bytes); {_FIX_ARCHIVE}"
                )
            found[key] = member
        elif member.isfile() and member.size > MAX_OTHER_MEMBER:
            raise DataError(
                f"refusing archive {path}: unexpected member {name!r} is {member.size:,} bytes "
                f"(at most {MAX_OTHER_MEMBER:,} expected); {_FIX_ARCHIVE}"
            )
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataError(
            f"archive {path} lacks {', '.join(missing)}; expected the CIFAR-10 binary version "
            f"(cifar-10-binary.tar.gz, not the python or matlab one); {_FIX_ARCHIVE}"
        )
    return found


def _read_batch(tar, member, path, records):
    fh = tar.extractfile(member)
    data = fh.read(member.size) if fh is not None else b""
    if len(data) != member.size:
        raise DataError(
            f"archive member {member.name!r} in {path} ended after {len(data):,} of {member.size:,} bytes; "
            f"{_FIX_ARCHIVE}"
        )
    images, labels = decode_batch(data, records)
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise DataError(
            f"archive member {member.name!r} in {path} has label {int(labels.max())}, expected 0..9; {_FIX_ARCHIVE}"
        )
    return images, labels


def decode_batch(data, records):
    """Decode ``records`` CIFAR-10 binary records.

    Each record is 1 label byte then 3072 pixel bytes: the R, G and B planes, each 32x32
    row-major. Returns images uint8 of shape (records, 32, 32, 3) and labels int64 (records,).
    """
    raw = np.frombuffer(data, dtype=np.uint8, count=records * RECORD_BYTES).reshape(records, RECORD_BYTES)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(records, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def encode_batch(images, labels):
    """Inverse of decode_batch: images (N, 32, 32, 3) uint8 and labels (N,) to record bytes."""
    images = np.asarray(images, dtype=np.uint8)
    n = images.shape[0]
    raw = np.empty((n, RECORD_BYTES), dtype=np.uint8)
    raw[:, 0] = np.asarray(labels, dtype=np.uint8)
    raw[:, 1:] = images.transpose(0, 3, 1, 2).reshape(n, -1)
    return raw.tobytes()


def _concat(batches):
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return images, labels
