"""CIFAR-100 from its official binary archive: coarse and fine labels, names from the archive.

Each record is 1 coarse label byte, 1 fine label byte, then 3072 pixel bytes (R, G and B
planes of 32x32, row-major); train.bin holds 50,000 records and test.bin 10,000. The
cache keeps the fine labels as the dataset's labels and the coarse ones beside them.
"""

from __future__ import annotations

import secrets
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..system.atomic import remove_quietly, save_npy
from .archives import tar_member_problem
from .base import Dataset, file_digest, import_lock, load_cache, load_npy, read_manifest, save_cache
from .download import fetch, known_file_limit

URL = "https://www.cs.toronto.edu/~kriz/"
ARCHIVE_NAME = "cifar-100-binary.tar.gz"
MD5 = "03b5dce01913d631647c71ecec9e9cb8"
SIZE = 175_000_000
"""More than the official archive's bytes (the site says 161 MB; the exact count is not recorded
here): a download is capped near it (download.known_file_limit)."""
CACHE_NAME = "cifar100"
FOLDER = "cifar-100-binary"
MEMBERS = {"train": f"{FOLDER}/train.bin", "test": f"{FOLDER}/test.bin"}
NAME_MEMBERS = {"coarse": f"{FOLDER}/coarse_label_names.txt", "fine": f"{FOLDER}/fine_label_names.txt"}
RECORDS = {"train": 50000, "test": 10000}
N_CLASSES = {"coarse": 20, "fine": 100}
SIDE = 32
RECORD_BYTES = 2 + 3 * SIDE * SIDE
MAX_NAMES_BYTES = 1 << 16
MAX_MEMBERS = 100
LABELS = ("fine", "coarse")

_FIX = "delete it and download again (mlcv download cifar100 --force)"


def prepare_cifar100(data_dir, *, url=None, archive=None, md5=MD5, force=False, progress=True, records=None):
    """Make sure ``data_dir/cifar100`` holds a complete CIFAR-100 cache.

    ``url``: the folder holding cifar-100-binary.tar.gz (or the archive's full URL);
    ``archive``: a local copy (or the folder holding it); ``md5=None`` skips the check.
    ``records`` ({"train": n, "test": m}) exists for tests. Returns ``dict(status, path, verified)``.
    """
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_NAME
    # The lock covers the download and the coarse-label files too: the clean-up at the end
    # removes only what no other live process can be writing.
    with import_lock(cache):
        return _prepare(data_dir, cache, url, archive, md5, force, progress, records or RECORDS)


def _prepare(data_dir, cache, url, archive, md5, force, progress, records):
    if not force:
        manifest = read_manifest(cache, verify=True)
        if manifest is not None and _coarse_ok(cache, manifest):
            return {"status": "cached", "path": str(cache), "verified": bool(manifest.get("verified", True))}
    if archive is not None:
        archive = Path(archive)
        if archive.is_dir():
            archive = archive / ARCHIVE_NAME
        if not archive.is_file():
            raise DataError(f"archive {archive} does not exist; give cifar-100-binary.tar.gz (or its folder) to --archive")
        if md5:
            found = file_digest(archive, "md5")
            if found != md5.lower():
                raise DataError(
                    f"archive {archive} has md5 {found}, expected {md5.lower()}; it is not the official {ARCHIVE_NAME}. "
                    "Give --md5 HEX for a repacked archive, or --no-verify to skip the check"
                )
        status = "imported"
    else:
        archive = data_dir / ARCHIVE_NAME
        full = url or URL
        if not full.endswith((".tar.gz", ".tgz", ".tar")):
            full = (full if full.endswith("/") else full + "/") + ARCHIVE_NAME
        if force or not archive.is_file() or (md5 and file_digest(archive, "md5") != md5.lower()):
            fetch(full, archive, md5, progress=progress, resume=not force,
                  max_bytes=known_file_limit(SIZE, official=bool(md5) and md5.lower() == MD5))
        status = "downloaded"
    dataset, coarse, coarse_names = parse_archive(archive, records=records)
    token = secrets.token_hex(4)
    coarse_files = {}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for split, labels in coarse.items():
            path = cache / f"coarse_{split}_y-{token}.npy"
            save_npy(path, labels)
            coarse_files[split] = {"file": path.name, "bytes": path.stat().st_size, "sha256": file_digest(path, "sha256")}
        save_cache(cache, dataset, extra={"archive_md5": file_digest(archive, "md5"), "verified": bool(md5),
                                          "coarse": {"classes": coarse_names, "arrays": coarse_files}, "records": records})
    except BaseException:
        for info in coarse_files.values():
            remove_quietly(cache / info["file"])
        raise
    keep = {info["file"] for info in coarse_files.values()}
    for path in cache.glob("coarse_*_y-*.npy"):
        if path.name not in keep:
            remove_quietly(path)
    return {"status": status, "path": str(cache), "verified": bool(md5)}


def _coarse_ok(cache, manifest):
    coarse = manifest.get("coarse")
    if not isinstance(coarse, dict) or not isinstance(coarse.get("arrays"), dict):
        return False
    for info in coarse["arrays"].values():
        try:
            if (cache / info["file"]).stat().st_size != info["bytes"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def parse_archive(path, *, records=None):
    """The official binary tar -> (Dataset with fine labels, {split: coarse labels}, coarse names).

    Members are checked (paths, types, exact sizes) before the two data files are read.
    """
    records = records or RECORDS
    try:
        with tarfile.open(path, "r:*") as tar:
            members = _checked_members(tar, path, records)
            names = {kind: _read_names(tar, members[m], path, kind) for kind, m in NAME_MEMBERS.items()}
            splits = {split: _read_split(tar, members[m], path, records[split]) for split, m in MEMBERS.items()}
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"archive {path} is damaged or not a tar file ({exc}); {_FIX}") from None
    dataset = Dataset(
        name="cifar100",
        classes=names["fine"],
        train_x=splits["train"][0],
        train_y=splits["train"][2],
        test_x=splits["test"][0],
        test_y=splits["test"][2],
        source=str(path),
    )
    return dataset, {s: v[1] for s, v in splits.items()}, names["coarse"]


def _checked_members(tar, path, records):
    wanted = {m: records[s] * RECORD_BYTES for s, m in MEMBERS.items()}
    wanted.update({m: None for m in NAME_MEMBERS.values()})
    found, count = {}, 0
    for member in iter(tar.next, None):
        count += 1
        if count > MAX_MEMBERS:
            raise DataError(f"archive {path} has more than {MAX_MEMBERS} members; it is not CIFAR-100 ({_FIX})")
        problem = tar_member_problem(member)
        if problem:
            raise DataError(f"refusing archive {path}: member {member.name!r} {problem}; {_FIX}")
        key = member.name[2:] if member.name.startswith("./") else member.name
        if key not in wanted:
            continue
        if not member.isfile() or key in found:
            raise DataError(f"refusing archive {path}: {member.name!r} is not a regular file or appears twice; {_FIX}")
        size = wanted[key]
        if size is not None and member.size != size:
            raise DataError(
                f"archive member {member.name!r} in {path} is {member.size:,} bytes, expected {size:,} "
                f"({size // RECORD_BYTES:,} records of {RECORD_BYTES} bytes); {_FIX}"
            )
        if size is None and member.size > MAX_NAMES_BYTES:
            raise DataError(f"archive member {member.name!r} in {path} is {member.size:,} bytes, too large for a list of names; {_FIX}")
        found[key] = member
    missing = [m for m in wanted if m not in found]
    if missing:
        raise DataError(
            f"archive {path} lacks {', '.join(missing)}; expected the CIFAR-100 binary version "
            f"({ARCHIVE_NAME}, not the python or matlab one); {_FIX}"
        )
    return found


def _read_member(tar, member, path):
    fh = tar.extractfile(member)
    data = fh.read(member.size) if fh is not None else b""
    if len(data) != member.size:
        raise DataError(f"archive member {member.name!r} in {path} ended after {len(data):,} of {member.size:,} bytes; {_FIX}")
    return data


def _read_names(tar, member, path, kind):
    try:
        text = _read_member(tar, member, path).decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"archive member {member.name!r} in {path} is not plain text; {_FIX}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != N_CLASSES[kind] or len(set(names)) != len(names):
        raise DataError(
            f"archive member {member.name!r} in {path} lists {len(names)} names ({len(set(names))} distinct), "
            f"expected {N_CLASSES[kind]} distinct names; {_FIX}"
        )
    return names


def _read_split(tar, member, path, records):
    data = _read_member(tar, member, path)
    images, coarse, fine = decode_records(data, records)
    for labels, kind in ((coarse, "coarse"), (fine, "fine")):
        if labels.size and int(labels.max()) >= N_CLASSES[kind]:
            raise DataError(
                f"archive member {member.name!r} in {path} has {kind} label {int(labels.max())}, expected 0..{N_CLASSES[kind] - 1}; {_FIX}"
            )
    return images, coarse, fine


def decode_records(data, records):
    """``records`` CIFAR-100 records -> images uint8 (N, 32, 32, 3), coarse and fine labels int64 (N,)."""
    raw = np.frombuffer(data, dtype=np.uint8, count=records * RECORD_BYTES).reshape(records, RECORD_BYTES)
    coarse = raw[:, 0].astype(np.int64)
    fine = raw[:, 1].astype(np.int64)
    images = np.ascontiguousarray(raw[:, 2:].reshape(records, 3, SIDE, SIDE).transpose(0, 2, 3, 1))
    return images, coarse, fine


def encode_records(images, coarse, fine):
    """Inverse of decode_records (tests and benchmarks build archives with it)."""
    images = np.asarray(images, np.uint8)
    n = len(images)
    raw = np.empty((n, RECORD_BYTES), np.uint8)
    raw[:, 0] = coarse
    raw[:, 1] = fine
    raw[:, 2:] = images.transpose(0, 3, 1, 2).reshape(n, -1)
    return raw.tobytes()


def load_cifar100(data_dir, labels="fine", mmap=True):
    """The CIFAR-100 cache, labelled with the 100 fine classes or the 20 coarse superclasses."""
    if labels not in LABELS:
        raise ConfigError(f"data.labels: expected fine or coarse, found {labels!r}")
    cache = Path(data_dir) / CACHE_NAME
    fix = "run `mlcv download cifar100 --force` to rebuild it"
    if not (cache / "manifest.json").is_file():
        raise DataError(f"CIFAR-100 is not in {cache}; run `mlcv download cifar100`")
    ds = load_cache(cache, mmap=mmap, fix=fix)
    if labels == "fine":
        return ds
    manifest = read_manifest(cache) or {}
    coarse = manifest.get("coarse")
    if not _coarse_ok(cache, manifest) or not isinstance(coarse.get("classes"), list) or len(coarse["classes"]) != N_CLASSES["coarse"]:
        raise DataError(f"the CIFAR-100 cache in {cache} has no valid coarse labels; {fix}")
    arrays = {}
    for split, y in (("train", ds.train_y), ("test", ds.test_y)):
        info = coarse["arrays"].get(split)
        try:
            a = load_npy(cache / info["file"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"the CIFAR-100 coarse labels in {cache} are damaged ({exc}); {fix}") from None
        if a.shape != y.shape or a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() >= N_CLASSES["coarse"])):
            raise DataError(f"the CIFAR-100 coarse {split} labels in {cache} do not fit the images; {fix}")
        arrays[split] = a.astype(np.int64)
    return Dataset(name="cifar100-coarse", classes=[str(c) for c in coarse["classes"]], train_x=ds.train_x, train_y=arrays["train"],
                   test_x=ds.test_x, test_y=arrays["test"], source=ds.source)
