"""HTTP(S) download with a progress bar, resume (Range requests), md5 check and atomic rename.

Bytes go to ``DEST.part``; only a complete, verified file is renamed to ``DEST``, so a
file at ``DEST`` is always whole. A failed download keeps the ``.part`` for resuming, with
every byte that arrived in it. A download never runs without end: it is capped at the most
bytes the file can have, and given up when fewer than a minimum number of bytes arrive in a
time window (a server trickling a few bytes every few seconds never trips a read timeout).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from tqdm import tqdm

from .. import __version__
from ..errors import DataError
from ..system.atomic import file_digest
from ..system.output import printable

CHUNK = 1 << 20
# Bytes are read as they arrive (at most CHUNK at a time), so a stall or a cut keeps them all.
DEFAULT_MAX_BYTES = 2 << 30
"""The cap of a file whose size nothing tells: more than anything mlcv downloads."""
MIN_RATE = 1024
"""Bytes per second, averaged over RATE_WINDOW, below which a download is given up."""
RATE_WINDOW = 60.0
# Environment overrides (tests, and users on a slow link): MLCV_DOWNLOAD_MIN_RATE (bytes/s), MLCV_DOWNLOAD_WINDOW (s).
_SCHEMES = ("http", "https", "ftp", "file")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIABLE_TOTAL = re.compile(r"bytes\s+\*/(\d+)")


class _Restart(Exception):
    """The server cannot continue the partial file: start again from byte 0."""


def known_file_limit(size, official):
    """The most bytes to accept for a file whose official copy has ``size`` bytes: a little over
    it for the official file, eight times it for a mirror's own (repacked or uncompressed) copy."""
    return size + size // 100 + (64 << 10) if official else 8 * size + (1 << 20)


def fetch(url, dest, md5=None, *, progress=True, resume=True, timeout=30, max_bytes=None, min_rate=None, window=None):
    """Download ``url`` to ``dest`` and return ``dest``.

    Streams into ``dest + ".part"``, continuing an existing ``.part`` with an HTTP Range
    request when ``resume`` (a server that ignores Range is handled by starting over).
    With ``md5`` (hex) the finished file must match it or it is deleted. A file longer
    than ``max_bytes`` (default DEFAULT_MAX_BYTES) is refused and deleted; a download that
    receives fewer than ``min_rate`` bytes a second over ``window`` seconds is given up
    (what arrived is kept for resuming). Every failure (unreachable host, HTTP error, too
    slow, too large, disk full, checksum) raises DataError.
    """
    dest = os.fspath(dest)
    part = dest + ".part"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise DataError(
            f"cannot download {url!r}: expected an http(s):// URL, found scheme {scheme or 'none'!r}; "
            "check the URL (or pass a local file with --archive)"
        )
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(directory, exist_ok=True)
        if not resume:
            _unlink(part)
    except OSError as exc:
        raise DataError(f"could not prepare {dest}: {exc.strerror or exc}; choose a writable --data-dir") from exc

    limits = _Limits(max_bytes, min_rate, window, timeout)
    try:
        _download(url, part, progress, limits, allow_resume=resume)
    except _Restart:
        _unlink(part)
        _download(url, part, progress, limits, allow_resume=False)

    if md5:
        try:
            found = file_digest(part, "md5")
        except OSError as exc:
            raise DataError(f"could not read {part}: {exc.strerror or exc}; check the directory") from exc
        if found.lower() != md5.lower():
            _unlink(part)
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {md5.lower()}, found {found} "
                "(the download was deleted); run again with --force to download afresh, pass --md5 "
                "with the checksum a mirror publishes, or check the URL"
            )
    try:
        _fsync(part)
        os.replace(part, dest)
    except OSError as exc:
        raise DataError(f"could not move {part} to {dest}: {exc.strerror or exc}; check the directory") from exc
    return dest


class _Limits:
    """How large a file may be, and how slowly it may arrive."""

    def __init__(self, max_bytes, min_rate, window, timeout):
        self.max_bytes = int(max_bytes) if max_bytes is not None else DEFAULT_MAX_BYTES
        self.min_rate = float(min_rate if min_rate is not None else _env_number("MLCV_DOWNLOAD_MIN_RATE", MIN_RATE))
        self.window = float(window if window is not None else _env_number("MLCV_DOWNLOAD_WINDOW", RATE_WINDOW))
        # A read that waits longer than the window has already received too little in it.
        self.timeout = min(timeout, self.window) if self.window > 0 else timeout

    def too_large(self, size):
        return size is not None and size > self.max_bytes


def _open_within(request, limits):
    """urlopen, with the reply's status line and headers due within the rate window: a server that
    trickles its headers a byte at a time never trips a read timeout either."""
    connections = []

    def watched(cls):
        def connect(*args, **kwargs):
            connections.append(cls(*args, **kwargs))
            return connections[-1]

        return connect

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

    fired = []

    def cut():
        fired.append(True)
        for conn in connections:
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(limits.window, cut) if limits.window > 0 else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    late = DataError(f"could not download {request.full_url}: the server sent no complete reply within {limits.window:g} s; "
                     "check the URL and your connection, or try a mirror (--url)")
    try:
        response = urllib.request.build_opener(HTTP, HTTPS).open(request, timeout=limits.timeout)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
        if fired:
            raise late from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if fired:
        response.close()
        raise late
    return response


def _env_number(name, default):
    text = os.environ.get(name)
    try:
        value = float(text) if text else default
    except ValueError:
        value = default
    return value if value >= 0 else default


def _download(url, part, progress, limits, allow_resume):
    offset = os.path.getsize(part) if allow_resume and os.path.exists(part) else 0
    if limits.too_large(offset):
        raise _Restart()  # a .part longer than the file can be is not the start of it
    headers = {"User-Agent": f"mlcv/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _open_within(request, limits)
    except urllib.error.HTTPError as exc:
        with contextlib.closing(exc):
            if exc.code == 416 and offset:
                # The .part is already as long as the file, or longer (the file changed).
                match = _UNSATISFIABLE_TOTAL.search(exc.headers.get("Content-Range", "") or "")
                if match and int(match.group(1)) == offset:
                    return
                raise _Restart() from None
            raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}; check the URL") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise DataError(f"could not download {url}: {_reason(exc)}; check the URL and your connection") from None

    with contextlib.closing(response):
        status = getattr(response, "status", None) or 200
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", "") or "")
            if not match or int(match.group(1)) != offset:
                raise _Restart()
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:
            offset = 0  # a 200 reply (Range ignored) carries the whole file
            total = length
        if limits.too_large(total):
            raise DataError(
                f"{url} offers {total:,} bytes, more than the {limits.max_bytes:,} the file can have; nothing was "
                "downloaded: check the URL"
            )
        _stream(response, url, part, offset, total, progress, limits)


def _stream(response, url, part, offset, total, progress, limits):

    received = offset
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=printable(os.path.basename(part)[: -len(".part")]) or "download",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    try:
        out = open(part, "ab" if offset else "wb")
    except OSError as exc:
        bar.close()
        raise DataError(
            f"could not save the download of {url} to {part}: {exc.strerror or exc}; choose a writable --data-dir"
        ) from exc
    # read1 returns what has arrived (read(n) waits for n bytes, and loses them all to a timeout).
    read = getattr(response, "read1", None) or response.read
    window_start, window_bytes = time.monotonic(), 0
    with bar, out:
        while True:
            try:
                block = read(CHUNK)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # Network failure: keep what arrived, so the next run resumes.
                raise DataError(
                    f"download of {url} stopped after {received:,} bytes: {_reason(exc)}; "
                    "run the same command again to resume"
                ) from None
            if not block:
                break
            if received + len(block) > limits.max_bytes:
                with contextlib.suppress(OSError):
                    out.close()
                _unlink(part)
                raise DataError(
                    f"{url} sent more than the {limits.max_bytes:,} bytes the file can have; the download was "
                    "deleted: check the URL"
                )
            try:
                out.write(block)
                out.flush()  # on disk as it arrives: a process killed now resumes from here
            except OSError as exc:
                with contextlib.suppress(OSError):
                    out.close()
                _unlink(part)
                raise DataError(
                    f"could not save the download of {url} to {part}: {exc.strerror or exc}; free some "
                    "disk space or choose another --data-dir"
                ) from None
            received += len(block)
            bar.update(len(block))
            window_bytes += len(block)
            elapsed = time.monotonic() - window_start
            if limits.window > 0 and elapsed >= limits.window:
                if window_bytes < limits.min_rate * elapsed:
                    raise DataError(
                        f"download of {url} is too slow ({window_bytes:,} bytes in the last {elapsed:.0f} s, less than "
                        f"{limits.min_rate:,.0f} bytes/s); stopped after {received:,} bytes, which are kept: run the "
                        "same command again to resume, or try a mirror (--url)"
                    )
                window_start, window_bytes = time.monotonic(), 0
        try:
            out.flush()
        except OSError as exc:
            _unlink(part)
            raise DataError(
                f"could not save the download of {url} to {part}: {exc.strerror or exc}; free some disk space"
            ) from None
    if total is not None and received < total:
        raise DataError(
            f"download of {url} stopped after {received:,} of {total:,} bytes (the connection closed); "
            "run the same command again to resume"
        )


def _reason(exc):
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed early"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync(path):
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _unlink(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
