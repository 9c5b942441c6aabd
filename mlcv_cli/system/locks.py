"""OS file locks (fcntl.flock) on the directories several mlcv processes share.

The kernel drops a flock when its holder dies, so a killed process never leaves a stale
lock. Locks are re-entrant within a process (train inside cv --refit takes the same lock).
"""

# An exclusive holder removes its lock file before letting go, so nothing is left behind;
# a waiter that locked the removed file notices (the path no longer names its inode) and
# tries again on the new one.

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
import time
import weakref

from ..errors import MlcvError
from .files import read_small
from .output import printable

_held = {}  # lock file path -> [fd, shared, count]
_guard = threading.Lock()


class LockBusy(MlcvError):
    """Another live process holds the lock (``pid`` when known)."""

    def __init__(self, message, pid=None):
        super().__init__(message)
        self.pid = pid


def holder_pid(lock_path):
    """The pid the last exclusive holder wrote into the lock file, or None."""
    try:
        text = read_small(lock_path, 64).decode("ascii", errors="replace").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def _open(path, shared):
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if shared and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            try:  # a reader in a read-only directory: lock the file if it exists
                return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                return None  # nobody can write there either, so there is nothing to guard against
        raise MlcvError(f"cannot create the lock file {path}: {exc.strerror}; check that the directory is writable") from None


@contextlib.contextmanager
def hold(lock_path, *, shared=False, wait=True, busy=None, on_wait=None, timeout=None, remove=True):
    """Hold ``lock_path`` (created if missing) exclusively, or ``shared`` with other readers.

    ``wait=False`` raises LockBusy at once (``busy(pid)`` gives its message) when another
    process holds it; with ``wait`` it blocks, calling ``on_wait(pid)`` once first, and
    raises LockBusy after ``timeout`` seconds if one is given. An exclusive holder writes
    its pid into the file so that others can name it, and (``remove``) deletes the file on
    release. Shared holders never delete it, so shared locks suit a file that stays.
    """
    key = os.path.abspath(os.fspath(lock_path))
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            if entry[1] and not shared:
                raise RuntimeError(f"{key}: exclusive lock asked for while this process holds it shared")
            entry[2] += 1
    if entry is not None:
        try:
            yield
        finally:
            _release(key)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        fd = _open(key, shared)
        if fd is None:
            yield
            return
        try:
            waited = _acquire(fd, key, shared, wait, busy, None if waited else on_wait, deadline) or waited
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, key):
            break
        os.close(fd)  # the holder removed the file while we waited on it: lock the new one
    try:
        if not shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(fd)
        raise
    with _guard:
        _held[key] = [fd, shared, 1, remove and not shared]
    try:
        yield
    finally:
        _release(key)


def _same_file(fd, path):
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _acquire(fd, key, shared, wait, busy, on_wait, deadline):
    """Lock ``fd``; True when it had to wait."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        pid = holder_pid(key)
    if not wait:
        raise LockBusy(busy(pid) if busy else f"{key} is locked by another mlcv process (pid {pid})", pid)
    if on_wait is not None:
        on_wait(pid)
    while True:  # polling keeps Ctrl-C and the timeout working while we wait
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if deadline is not None and time.monotonic() > deadline:
                pid = holder_pid(key)
                raise LockBusy(busy(pid) if busy else f"{key} is still locked by another mlcv process (pid {pid})", pid) from None
            time.sleep(0.05)


def _release(key):
    with _guard:
        entry = _held[key]
        entry[2] -= 1
        if entry[2]:
            return
        del _held[key]
    if entry[3]:
        with contextlib.suppress(OSError):
            os.unlink(key)  # still holding it: nobody else can be inside
    os.close(entry[0])


def held_here(lock_path):
    """True when this process already holds ``lock_path`` (a nested hold is re-entrant)."""
    with _guard:
        return os.path.abspath(os.fspath(lock_path)) in _held


def is_locked(lock_path):
    """True when some process (this one included) holds ``lock_path`` exclusively."""
    key = os.path.abspath(os.fspath(lock_path))
    with _guard:
        if key in _held and not _held[key][1]:
            return True
    return _refused(key, fcntl.LOCK_SH)


def in_use(lock_path):
    """True when some process holds ``lock_path`` at all, shared or exclusively (``is_locked``
    sees exclusive holders only). False when the file does not exist."""
    key = os.path.abspath(os.fspath(lock_path))
    with _guard:
        if key in _held:
            return True
    return _refused(key, fcntl.LOCK_EX)


def _refused(key, mode):
    """True when another process's lock on ``key`` refuses a ``mode`` lock now (False: no such file)."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put in its place must not block the caller
    except OSError:
        return False
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def hold_shared_while(obj, path):
    """A shared lock on ``path`` (an existing file) for as long as ``obj`` lives (e.g. a
    memory-mapped array of the file): ``in_use(path)`` is True meanwhile. Best effort: False
    when the file cannot be opened or locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    weakref.finalize(obj, os.close, fd)
    return True


def say_waiting(what):
    """An ``on_wait`` that tells the user on stderr why nothing happens for a while."""

    def on_wait(pid):
        who = f"mlcv process {pid}" if pid else "another mlcv process"
        with contextlib.suppress(OSError, ValueError):

            print(printable(f"waiting for {who} to finish {what} ..."), file=sys.stderr, flush=True)

    return on_wait
