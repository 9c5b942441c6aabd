"""Terminal output that never costs work, and user text that is never taken for markup.

The `mlcv` entry point replaces stdout and stderr by guarded streams: a write that fails (a
closed descriptor, a broken pipe, a full device) loses only that text, the command goes on,
and at exit the loss is reported (see ``finish``). ``printable`` and ``console`` make file
names, class names and config values safe to show.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import signal
import sys

import click
from rich.console import Console

from . import atomic

# Exit status when the work succeeded but stdout could not take its output: a reader that went
# away (`| head -1`) gets the status of a process killed by SIGPIPE, as from any Unix tool;
# a closed stdout, a full device or an I/O error is a runtime failure.
EXIT_BROKEN_PIPE = 128 + 13
EXIT_OUTPUT_FAILED = 1
LOST_LOG = "output.log"
_KEEP_LOST = 1 << 20  # characters of lost text kept per stream for the run dir's output.log

_state = {"run_dir": None, "streams": {}}


# -- user text -----------------------------------------------------------------------------

# Control characters (C0, DEL, C1), the bidirectional overrides that reorder what a terminal
# shows and the Unicode line separators; each is written as a visible escape so a name cannot
# move the cursor, recolour the terminal, ring the bell or fake a line.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0x2028, 0x2029)})
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate(match):
    code = ord(match.group())
    # os.fsdecode keeps a byte of a non-UTF-8 file name as U+DC80..U+DCFF: show the byte.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(text) -> str:
    """``text`` as one line a terminal shows literally: control characters, bidi overrides and
    undecodable file-name bytes become backslash escapes (``\\x1b``, ``\\n``, ``\\xff``)."""
    text = str(text).translate(_ESCAPES)
    return _SURROGATE.sub(_surrogate, text) if _SURROGATE.search(text) else text


def console(**kwargs):
    """A rich Console for stdout that renders every string as one line of plain text (no markup,
    no emoji codes, control characters escaped, so a class name cannot split a table row):
    styles are given as ``style=``, never inside a string; several lines, as several prints."""

    class PlainTextConsole(Console):
        def render_str(self, text, **options):
            options.update(markup=False, emoji=False, highlight=False)
            return super().render_str(printable(text), **options)

    return PlainTextConsole(markup=False, emoji=False, highlight=False, **kwargs)


def echo(text="", err=False):
    """click.echo of a one-line message that may quote user text (a path, a class name)."""

    click.echo(printable(text), err=err)


def csv_writer(stream=None):
    """A csv.writer on ``stream`` (stdout): its fields exact when that is a file or a pipe (they
    are data), text made printable on a terminal. Whether it is a terminal is asked once."""

    stream = sys.stdout if stream is None else stream
    writer = csv.writer(stream, lineterminator="\n")
    return _PrintableCsvWriter(writer) if stream.isatty() else writer


class _PrintableCsvWriter:
    def __init__(self, writer):
        self.writer = writer

    def writerow(self, row):
        return self.writer.writerow([printable(v) if isinstance(v, str) else v for v in row])


# -- guarded streams -----------------------------------------------------------------------


class GuardedStream(io.TextIOBase):
    """A text stream over one file descriptor that never raises on write.

    Text is encoded and written at once (no buffer left to fail at exit); what the encoding
    lacks is written as a backslash escape rather than raising. The first failed
    write marks the stream dead with its reason; from then on text is kept (up to a bound)
    instead of written, so it can be saved into the run directory.
    """

    def __init__(self, fd, name, encoding="utf-8", dead=None):
        self.fd, self._name, self._encoding = fd, name, encoding
        self.dead = dead  # None while writable, else the reason (a short phrase)
        self.dead_errno = None
        self.lost, self.lost_chars = [], 0
        self._kept = 0

    # What click, rich and tqdm look at.
    encoding = property(lambda self: self._encoding)
    errors = property(lambda self: "surrogateescape")
    name = property(lambda self: f"<{self._name}>")

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def isatty(self):
        if self.dead:
            return False
        try:
            return os.isatty(self.fd)
        except OSError:
            return False

    @property
    def buffer(self):
        """The binary side, as on sys.stdout: click (8.2 and later) writes shell-completion
        scripts and any bytes message there. It shares this stream's guard and lost text."""
        return GuardedBuffer(self)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self._write_bytes(_encode(text, self._encoding), text)
        return len(text)

    def flush(self):
        pass

    def _write_bytes(self, data, text):
        if not self.dead:
            try:
                self._write_all(data)
            except OSError as exc:
                self.dead = _reason(exc)
                self.dead_errno = exc.errno
        if self.dead:
            self._keep(text)

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:  # a descriptor someone made non-blocking: wait until it takes more
                import select

                if not select.select([], [self.fd], [], 60)[1]:
                    raise OSError(errno.EAGAIN, "output blocked for 60 s") from None
                continue
            view = view[n:]

    def _keep(self, text):
        self.lost_chars += len(text)
        if self._kept < _KEEP_LOST:
            self.lost.append(text[: _KEEP_LOST - self._kept])
            self._kept += len(self.lost[-1])


class GuardedBuffer(io.RawIOBase):
    """The bytes view of a GuardedStream (its ``buffer``): a write goes to the same descriptor
    and never raises either; what could not be written is kept as text for output.log."""

    def __init__(self, text_stream):
        self.text_stream = text_stream

    def writable(self):
        return True

    def fileno(self):
        return self.text_stream.fd

    def isatty(self):
        return self.text_stream.isatty()

    def write(self, data):
        data = bytes(data)
        if data:
            self.text_stream._write_bytes(data, data.decode(self.text_stream.encoding, "surrogateescape"))
        return len(data)


def _encode(text, encoding):
    try:
        # A file name's undecodable bytes go out as the same bytes (CSV of paths stays exact).
        return text.encode(encoding, "surrogateescape")
    except UnicodeEncodeError:  # a character the locale's encoding lacks: shown, not fatal
        return text.encode(encoding, "backslashreplace")


def _reason(exc):
    if exc.errno == errno.EPIPE:
        return "broken pipe: its reader went away"
    if exc.errno == errno.EBADF:
        return "it is closed"
    return exc.strerror or str(exc)


def _open_fd(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def reserve_standard_fds():
    """Put /dev/null on any of descriptors 0, 1, 2 that is closed, so that no file mlcv opens
    later (a model, a journal) takes its number and receives text meant for a terminal."""
    for fd in (0, 1, 2):
        if not _open_fd(fd):
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:  # no /dev/null (a bare chroot): carry on as before
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def install():
    """Replace sys.stdout and sys.stderr by guarded streams (the `mlcv` entry point calls this)."""
    reserve_standard_fds()
    if hasattr(signal, "SIGPIPE"):
        # A broken pipe must arrive as an error to handle, never as a signal that kills the run.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        original = getattr(sys, f"__{name}__", None)
        # Python leaves sys.stdout None when descriptor 1 was closed at start: /dev/null sits
        # there now, so writes are treated as lost rather than silently discarded.
        dead = "it is closed" if original is None else None
        encoding = getattr(original, "encoding", None) or "utf-8"
        _flush_quietly(getattr(sys, name, None))
        stream = GuardedStream(fd, name, encoding, dead=dead)
        if dead:
            stream.dead_errno = errno.EBADF
        setattr(sys, name, stream)
        _state["streams"][name] = stream


def _flush_quietly(stream):
    try:
        if stream is not None:
            stream.flush()
    except (OSError, ValueError):
        pass


def note_run_dir(path):
    """The run directory this command made: where lost output is saved at exit."""
    if path:
        _state["run_dir"] = os.fspath(path)


def finish(code):
    """At exit: report output that could not be written and return the exit status to use.

    The command's own non-zero status wins. After a success, a stdout that could not take its
    output turns the status into EXIT_BROKEN_PIPE (its reader went away) or EXIT_OUTPUT_FAILED.
    Lost text of either stream goes into RUN_DIR/output.log when the command made a run.
    A stderr that failed changes nothing else: progress and notes are not the result.
    """
    out, err = _state["streams"].get("stdout"), _state["streams"].get("stderr")
    if out is None or err is None:
        return code
    lost_out = out.dead is not None and out.lost_chars > 0
    lost_err = err.dead is not None and err.lost_chars > 0
    run_dir = _state["run_dir"]
    saved = _save_lost(run_dir, out, err) if (lost_out or lost_err) and run_dir else None
    if lost_out:
        broken_pipe = out.dead_errno == errno.EPIPE
        if saved or not broken_pipe:
            where = f"; the run finished and is saved in {run_dir}" if run_dir else ""
            kept = f" (what was not printed is in {saved})" if saved else ""
            prefix = "Note" if broken_pipe else "Error"
            err.write(printable(f"{prefix}: could not write to stdout ({out.dead}){where}{kept}") + "\n")
        if code in (0, None):
            code = EXIT_BROKEN_PIPE if broken_pipe else EXIT_OUTPUT_FAILED
    return code


def _save_lost(run_dir, out, err):

    path = os.path.join(run_dir, LOST_LOG)
    parts = []
    for stream in (out, err):
        if stream.dead is not None and stream.lost_chars:
            text = "".join(stream.lost)
            dropped = stream.lost_chars - len(text)
            parts.append(f"--- {stream._name} could not be written ({stream.dead}); it would have shown:\n{text}"
                         + ("" if text.endswith("\n") else "\n")
                         + (f"--- ({dropped} more characters not kept)\n" if dropped else ""))
    try:
        if os.path.isdir(run_dir):
            atomic.write_text(path, "".join(parts))
            return path
    except Exception:  # noqa: BLE001 - the run is saved; failing to save its output log must not change that
        pass
    return None
