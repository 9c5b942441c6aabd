"""Image folders laid out ROOT/<split>/<class>/<image>, as a directory or a .zip file.

``train`` is required; ``test`` (else ``val``) is the test split. Class names are the
train split's folder names, sorted. Hidden files, ``__MACOSX`` and non-image files are
ignored; a zip is read in place and refused if any member name escapes it.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import BadNameError, DataError, UsageError
from .archives import path_problem
from .base import MANIFEST, Dataset, import_lock, load_cache, save_cache
from .images import IMAGE_EXTENSIONS, describe_bad, is_image_name, read_images

TRAIN = "train"
TEST_SPLITS = ("test", "val")
FOLDERS_DIR = "folders"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# A zip member bigger than this is not a small image; refusing it keeps a zip bomb out of memory.
MAX_MEMBER_BYTES = 64 << 20


def load_folder(path, size=32, skip_bad=False, progress=False):
    """Decode an image folder (directory or .zip) into a Dataset.

    Returns ``(dataset, skipped)``: images uint8 (N, size, size, 3), labels int64 (N,),
    and ``skipped``, the ``(path, reason)`` of unreadable files (only with ``skip_bad``;
    otherwise any unreadable file raises one DataError naming them).
    """
    path = Path(path)
    if path.is_dir():
        listing = _DirListing(path)
    elif path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{path} is neither a directory nor a .zip file; give a folder laid out as "
                "train/<class>/<image> (optionally test/ or val/) or a zip of one"
            )
        listing = _ZipListing(path)
    else:
        raise DataError(f"image folder {path} does not exist; check the path")
    with listing:
        return _load(listing, path, size, skip_bad, progress)


def import_folder(path, data_dir, name, size=32, skip_bad=False, progress=True):
    """Decode an image folder and cache it as ``data_dir/folders/<name>/`` (npy + manifest).

    Returns ``dict(path, n_train, n_test, classes, skipped, replaced)``; ``replaced`` says
    that an earlier import of the same name was there.
    """
    cache = imported_path(data_dir, name)
    with import_lock(cache):  # a second import of the same name waits for this one
        replaced = (cache / MANIFEST).is_file()
        dataset, skipped = load_folder(path, size=size, skip_bad=skip_bad, progress=progress)
        dataset.name = name
        save_cache(cache, dataset, extra={"image_size": size, "skipped": len(skipped)})
    return {
        "path": str(cache),
        "n_train": int(len(dataset.train_y)),
        "n_test": int(len(dataset.test_y)) if dataset.test_y is not None else 0,
        "classes": list(dataset.classes),
        "skipped": skipped,
        "replaced": replaced,
        "notes": list(dataset.notes),
    }


def load_imported(data_dir, name, mmap=True):
    """Load a dataset cached by import_folder (memory-mapped by default)."""
    cache = imported_path(data_dir, name)
    if not cache.is_dir():
        parent = cache.parent
        known = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        have = f"imported datasets: {', '.join(known)}" if known else "no datasets are imported"
        raise DataError(
            f"no imported dataset {name!r} in {parent} ({have}); import it first "
            f"(mlcv download folder PATH --name {name})"
        )
    return load_cache(cache, mmap=mmap, fix=f"import it again (mlcv download folder PATH --name {name})")


def imported_path(data_dir, name):
    """Where import_folder caches dataset ``name``; refuses names that are not plain identifiers."""
    if not isinstance(name, str) or not _NAME.match(name) or set(name) == {"."}:
        raise BadNameError(
            f"dataset name {name!r} is not allowed; use letters, digits, '_', '.' and '-' only "
            "(for example cats_vs_dogs)"
        )
    return Path(data_dir) / FOLDERS_DIR / name


IMPORTED_PREFIX = "imported:"


def folder_source(spec, data_dir):
    """What ``data.path`` names: ("folder", Path) for an image folder/.zip, ("imported", NAME) for
    a dataset imported into ``data_dir``.

    A path (it has a slash: ``./pets``, ``a/b.zip``, ``/abs``) is always a folder, ``imported:NAME``
    always an import; a bare name is whichever of the two exists, and a UsageError (exit 2) naming
    both when both do, so a folder in the working directory never silently wins over an import.
    """
    spec = str(spec)
    if spec.startswith(IMPORTED_PREFIX):
        name = spec[len(IMPORTED_PREFIX):]
        imported_path(data_dir, name)  # a bad name is refused here
        return "imported", name
    if "/" in spec or os.sep in spec or Path(spec).is_absolute():
        return "folder", Path(spec)
    local = Path(spec).exists()
    cache = None
    if _NAME.match(spec) and set(spec) != {"."}:
        cache = imported_path(data_dir, spec)
    if local and cache is not None and cache.is_dir():
        raise UsageError(
            f"data.path {spec!r} names both the folder {Path(spec).resolve()} and the dataset imported as {spec!r} "
            f"into {cache.parent}; say which: data.path=./{spec} for the folder, or data.path={IMPORTED_PREFIX}{spec} "
            "for the imported dataset"
        )
    if local or cache is None:
        return "folder", Path(spec)
    return "imported", spec


def _load(listing, path, size, skip_bad, progress):
    splits = _find_splits(listing, path)
    notes = _left_out(listing, splits)
    train = splits[TRAIN]
    classes = sorted(train)
    test_name = next((s for s in TEST_SPLITS if s in splits), None)
    if test_name:
        extra = sorted(set(splits[test_name]) - set(classes))
        if extra:
            raise DataError(
                f"{path}: the {test_name} split has classes the train split lacks: {', '.join(extra)} "
                f"(train classes: {', '.join(classes)}); add them to train/ or remove them from {test_name}/"
            )

    # Decode both splits before complaining, so one error lists every unreadable file.
    train_x, train_y, skipped = _decode(listing, train, classes, size, progress, TRAIN)
    test_x = test_y = None
    if test_name:
        test_x, test_y, bad = _decode(listing, splits[test_name], classes, size, progress, test_name)
        skipped += bad
    if skipped and not skip_bad:
        raise DataError(f"{path}: " + describe_bad(skipped))
    if not len(train_y):
        raise DataError(f"{path}: none of the train images could be read ({len(skipped)} skipped); check the files")
    dataset = Dataset(
        name=path.stem if path.is_file() else path.name,
        classes=classes,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        source=str(path),
        notes=notes,
    )
    return dataset, skipped


def _decode(listing, split, classes, size, progress, what):
    items = sorted((file, classes.index(cls)) for cls, files in split.items() for file in files)
    names = [file for file, _ in items]
    labels = np.array([label for _, label in items], dtype=np.int64)
    shown = [listing.display(n) for n in names]
    images, ok, bad = read_images(shown, size, skip_bad=True, read=listing.read, progress=progress, what=what)
    ok = set(ok)
    keep = np.fromiter((s in ok for s in shown), dtype=bool, count=len(shown))
    return images, labels[keep], bad


def _find_splits(listing, path):
    """Map split -> class -> [relative file names] for images at depth split/class/file."""
    files = listing.files()
    root = _common_root(files)
    splits = {}
    for rel in files:
        parts = rel.split("/")[len(root):]
        if len(parts) != 3 or not is_image_name(parts[2]):
            continue
        split, cls, _ = parts
        if split in (TRAIN,) + TEST_SPLITS:
            splits.setdefault(split, {}).setdefault(cls, []).append(rel)
    if TRAIN not in splits:
        top = listing.top()
        found = ", ".join(top[:8]) + (", ..." if len(top) > 8 else "") if top else "nothing"
        raise DataError(
            f"{path} has no train/<class>/<image> files (found: {found}); lay it out as "
            f"train/<class>/<image> with images named {'/'.join(IMAGE_EXTENSIONS)}, optionally with test/ or val/"
        )
    return splits


def _left_out(listing, splits):
    """Notes on images the split/class/image layout leaves out: in subfolders, or class folders with none."""
    files = listing.files()
    root = _common_root(files)
    nested = {}
    for rel in files:
        parts = rel.split("/")[len(root):]
        if len(parts) > 3 and parts[0] in splits and is_image_name(parts[-1]):
            key = "/".join(parts[:2])
            nested[key] = nested.get(key, 0) + 1
    notes = [f"{n} image{'s' if n > 1 else ''} in subfolders of {key}/ left out (only {key}/IMAGE is read); "
             f"move {'them' if n > 1 else 'it'} up into {key}/" for key, n in sorted(nested.items())]
    for rel in listing.class_dirs():
        parts = rel.split("/")[len(root):]
        if len(parts) == 2 and parts[0] in splits and parts[1] not in splits[parts[0]]:
            notes.append(f"{'/'.join(parts)}/ holds no images; class {parts[1]!r} is left out of {parts[0]}")
    return notes


def _common_root(files):
    """[] or [wrapper]: a zip of a folder often holds everything under one top directory."""
    tops = {rel.split("/")[0] for rel in files}
    if len(tops) == 1:
        (top,) = tops
        if top not in (TRAIN,) + TEST_SPLITS and any(rel.split("/")[1:2] == [TRAIN] for rel in files):
            return [top]
    return []


def _visible(parts):
    return all(p and not p.startswith(".") and p != "__MACOSX" for p in parts)


class _DirListing:
    def __init__(self, root):
        self.root = root

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def files(self):
        found = []
        real_root = os.path.realpath(self.root)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            rel_dir = Path(dirpath).relative_to(self.root)
            depth = len(rel_dir.parts)
            dirnames[:] = [d for d in dirnames if _visible([d])] if depth < 3 else []
            for name in dirnames + [f for f in filenames if _visible([f])]:
                self._check_inside(Path(dirpath) / name, real_root)
            for f in filenames:
                if _visible([f]):
                    found.append(PurePosixPath(*rel_dir.parts, f).as_posix())
        return found

    def class_dirs(self):
        """Every visible folder two or three levels down (split/class, or wrapper/split/class)."""
        found = []
        for dirpath, dirnames, _ in os.walk(self.root, followlinks=True):
            rel_dir = Path(dirpath).relative_to(self.root)
            if len(rel_dir.parts) in (2, 3) and _visible(rel_dir.parts):
                found.append(PurePosixPath(*rel_dir.parts).as_posix())
            dirnames[:] = [d for d in dirnames if _visible([d])] if len(rel_dir.parts) < 3 else []
        return found

    def _check_inside(self, path, real_root):
        # A link may point anywhere on disk; its pixels would end up in the cache and in kNN model files.
        if path.is_symlink():
            target = os.path.realpath(path)
            if os.path.commonpath([target, real_root]) != real_root:
                raise DataError(
                    f"refusing {self.root}: {path} is a link to {target}, outside the folder; "
                    "copy those images into the folder or remove the link"
                )

    def display(self, rel):
        return str(self.root / rel)

    def top(self):
        try:
            return sorted(p.name for p in self.root.iterdir() if _visible([p.name]))
        except OSError:
            return []

    read = None


_UTF8_FLAG = 0x800


def _member_name(info):
    """A zip member's name; decoded as UTF-8 when it is valid UTF-8 even without the UTF-8 flag.

    Info-ZIP on Linux writes UTF-8 names without setting the flag, and zipfile then decodes
    them as cp437 (grün becomes gr├╝n); real cp437 names rarely form valid UTF-8.
    """
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


class _ZipListing:
    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DataError(f"{path} is not a readable zip file ({exc}); check the file") from exc
        self._infos = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()
        return False

    def files(self):
        found, seen = [], set()
        for info in self.zip.infolist():
            name = _member_name(info)
            parts = name.replace("\\", "/").split("/")
            problem = path_problem(name)
            if problem:
                raise DataError(
                    f"refusing {self.path}: member {name!r} points outside the archive ({problem}); "
                    "re-create the zip from inside the folder"
                )
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(
                    f"refusing {self.path}: member {name!r} is a symbolic link; "
                    "re-create the zip without links (zip without --symlinks)"
                )
            if info.is_dir() or not _visible(parts):
                continue
            rel = "/".join(parts)
            if rel in seen:  # both would be read as one name: one image imported twice, one lost
                raise DataError(
                    f"refusing {self.path}: member {name!r} appears twice; re-create the zip "
                    "(zip -r) so that every file is stored once"
                )
            seen.add(rel)
            self._infos[rel] = info
            found.append(rel)
        return found

    def class_dirs(self):
        """Every folder named in the zip (as an entry or as a member's parent), two or three levels down."""
        dirs = set()
        for info in self.zip.infolist():
            parts = _member_name(info).replace("\\", "/").rstrip("/").split("/")
            if not info.is_dir():
                parts = parts[:-1]
            for depth in (2, 3):
                if len(parts) >= depth and _visible(parts[:depth]):
                    dirs.add("/".join(parts[:depth]))
        return sorted(dirs)

    def display(self, rel):
        return f"{self.path}:{rel}"

    def top(self):
        return sorted({rel.split("/")[0] for rel in self._infos})

    def read(self, display):
        rel = display[len(str(self.path)) + 1:]
        info = self._infos[rel]
        if info.file_size > MAX_MEMBER_BYTES:
            raise DataError(
                f"{display} is {info.file_size:,} bytes uncompressed (at most {MAX_MEMBER_BYTES:,} "
                "expected for an image)"
            )
        return self.zip.read(info)
