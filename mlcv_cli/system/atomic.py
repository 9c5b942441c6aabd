"""Atomic file writes: a crash leaves either the old complete file or the new one.

Every file mlcv writes goes through here: it is written to a temporary name in the
destination directory, flushed and fsynced, then renamed into place.
"""

import contextlib
import errno
import functools
import hashlib
import json
import os
import tempfile

import numpy as np

from ..errors import MlcvError


def describe_os_error(path, exc):
    """An OSError met writing ``path`` as an MlcvError: the reason, and what to do about it."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        hint = "free some disk space or choose another directory"
    elif exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOTDIR, errno.EEXIST):
        hint = "choose a writable directory (--data-dir / output.dir) or fix its permissions"
    else:
        hint = "check the path and try again"
    return MlcvError(f"could not write {path}: {reason}; {hint}")


# A write to NAME goes through .NAME.<random>.tmp in the same directory.
_TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(name):
    return "." + name + "."


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    OSErrors (disk full, permission denied) become an MlcvError naming the path.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(os.path.basename(path)), suffix=_TEMPORARY_SUFFIX, dir=directory)
        os.fchmod(fd, _file_mode())  # mkstemp makes 0600; results should be readable like any file
    except OSError as exc:
        raise describe_os_error(path, exc) from exc
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise describe_os_error(path, exc) from exc
    except BaseException:
        remove_quietly(tmp)
        raise
    _fsync_dir(directory)


@functools.lru_cache(maxsize=None)
def _file_mode():
    """0666 minus the umask, read once, on the first write (not at import)."""
    try:  # Linux reports the umask without changing it
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


def remove_temporaries(directory, name=None):
    """Delete the temporary files that writers killed mid-write left in ``directory`` (those
    of ``name`` only, when given). Call it only where no live writer can be at work (holding
    the directory's lock): a live writer's temporary looks the same."""
    prefix = "." if name is None else _temporary_prefix(name)
    try:
        names = os.listdir(directory)
    except OSError:  # no directory, or an unreadable one: nothing we could remove
        return
    for entry in names:
        if not (entry.startswith(prefix) and entry.endswith(_TEMPORARY_SUFFIX)):
            continue
        middle = entry[len(prefix):-len(_TEMPORARY_SUFFIX)]
        # mkstemp's random part has no dot: .NAME.bak.<random>.tmp belongs to NAME.bak, not NAME
        if middle and (name is None or "." not in middle):
            remove_quietly(os.path.join(directory, entry))


def remove_quietly(path):
    """Delete a file if it is there; errors are ignored (best-effort clean-up)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path, data):
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_text(path, text):
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path, array):
    """Write one array as .npy (memory-mappable, no pickles)."""

    with atomic_open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def save_npz(path, arrays):
    """Write a dict of arrays as an uncompressed .npz (no pickles)."""

    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)


def append_line(path, line):
    """Append one line to an append-only log (jobs.jsonl) and fsync it.

    Not atomic by design: a crash can leave a torn last line, which readers skip.
    OSErrors (disk full, permission denied) become an MlcvError naming the path.
    """
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line if line.endswith("\n") else line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise describe_os_error(path, exc) from exc


def file_digest(path, algorithm="sha256", chunk=1 << 20):
    """Hex digest of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
