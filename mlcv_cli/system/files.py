"""Reading small files that anyone may have replaced (run files, configs, manifests): bounded in
size, never blocking, and only ever from a regular file.

A link to /dev/zero read whole fills the memory; a FIFO blocks the reader until someone writes
to it. ``read_small`` opens without blocking, looks at what it opened (not at the name, which
may change in between) and reads at most ``limit`` bytes, so neither can happen to a caller.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def open_regular(path):
    """``path`` opened for binary reading, without blocking, when it is a regular file; the errors of read_small."""
    fd = _open_regular_fd(path)
    return os.fdopen(fd, "rb")


def _open_regular_fd(path):
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small(path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (links to one are followed), at most ``limit`` of them.

    Raises FileNotFoundError when it does not exist, IsADirectoryError for a directory, and an
    OSError whose strerror says why for anything else: not a regular file (a FIFO, a device),
    larger than ``limit`` bytes, unreadable.
    """
    fd = _open_regular_fd(path)
    try:
        chunks, size = [], 0
        while size <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - size))
            if not block:
                break
            chunks.append(block)
            size += len(block)
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes, more than such a file ever holds", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_small_text(path, limit: int) -> str:
    """``read_small`` decoded as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_small(path, limit).decode("utf-8")
