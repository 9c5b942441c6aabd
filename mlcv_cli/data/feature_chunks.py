"""Encoded feature rows kept chunk by chunk while a long encoding runs, so that an interrupted
run goes on where it stopped instead of starting over.

DATA_DIR/features/<key>.part/ holds part.json (which images, which fitted chain, the shape and
the rows per chunk), written first, then one <start>.npy per finished chunk of rows, each
written atomically: a killed writer leaves a temporary file (removed by the next writer), never
a short chunk, and never anything that looks like a complete cache entry. The chunks are the
same whoever encodes them (the chunk grid depends only on the shape), and an image's features
do not depend on the images encoded beside it, so rows kept from an interrupted run are the
rows an uninterrupted run computes. A process encoding into a part directory holds its .lock
shared, so pruning the cache leaves it alone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import MlcvError
from ..system import atomic, locks, signals
from ..system.progress import Pieces

SUFFIX = ".part"
MANIFEST = "part.json"
LOCK_FILE = ".lock"
CHUNK_ROWS = 1024
"""Rows per chunk: at most this much work is lost to an interrupt (20 s for 1,600 centroids with
mirror on 2 cores, 3 s on 16), and a chunk boundary costs one file write of a few MB."""
CHUNK_BYTES = 64 << 20


def chunk_rows(D):
    """Rows per chunk for features of dimension D (fewer for very wide features)."""
    return max(1, min(CHUNK_ROWS, CHUNK_BYTES // (4 * max(int(D), 1))))


class Parts:
    """The part directory of one cache entry: the rows of ``images_fp`` under the chain ``chain_fp``,
    float32 (N, D), kept in chunks of ``chunk_rows(D)`` rows."""

    def __init__(self, directory, key, images_fp, chain_fp, shape):
        self.path = Path(directory) / f"{key}{SUFFIX}"
        N, D = (int(v) for v in shape)
        self.shape = (N, D)
        self.rows = chunk_rows(D)
        self.manifest = {"format": "mlcv-feature-parts", "version": 1, "images": images_fp, "chain": chain_fp,
                         "shape": [N, D], "dtype": "float32", "chunk_rows": self.rows}

    def starts(self):
        return range(0, self.shape[0], self.rows)

    def stop(self, start):
        return min(self.shape[0], start + self.rows)

    def chunk_path(self, start):
        return self.path / f"{start:010d}.npy"

    def problem(self):
        """Why the part directory cannot be used (damaged, or written for other rows), None when it
        can, or when there is none."""
        if not self.path.exists():
            return None
        try:
            found = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None  # made, but no chunk finished yet: the manifest comes with the first
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return f"{self.path.name}/{MANIFEST} is unreadable ({exc})"
        if found != self.manifest:
            return f"{self.path.name} was written for other rows"
        return None

    def read(self, start):
        """The kept chunk at ``start`` (a copy), or None when it is not there or not whole."""
        try:
            block = np.load(self.chunk_path(start), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if block.dtype != np.float32 or block.shape != (self.stop(start) - start, self.shape[1]):
            return None
        return block

    def kept(self):
        """Starts of the chunks kept so far (their files exist; ``read`` checks each)."""
        return [s for s in self.starts() if self.chunk_path(s).is_file()]

    def write(self, start, block):
        """Keep one finished chunk; call with the cache's lock held (see FeatureStore). MlcvError
        when it cannot be written. A Ctrl-C meanwhile takes effect once the chunk is kept."""
        with signals.deferred():
            if not (self.path / MANIFEST).exists():
                try:
                    self.path.mkdir(exist_ok=True)
                except OSError as exc:
                    raise atomic.describe_os_error(self.path, exc) from None
                atomic.write_json(self.path / MANIFEST, self.manifest)
            atomic.save_npy(self.chunk_path(start), block)

    @contextlib.contextmanager
    def in_use(self):
        """Hold the part directory shared while encoding into it (best effort: a directory that
        cannot be made or written is encoded without keeping chunks)."""
        with contextlib.ExitStack() as held:
            with contextlib.suppress(OSError, MlcvError):
                self.path.mkdir(parents=True, exist_ok=True)
                held.enter_context(locks.hold(self.path / LOCK_FILE, shared=True))
            yield

    def remove(self):
        """Delete the part directory (call with the cache's lock held, once the entry is complete)."""
        remove_tree(self.path)


def encode_in_chunks(parts, encode, images, progress, keep):
    """(rows, kept): ``encode(images[start:stop], progress)`` float32 (N, D) a chunk of ``parts`` at a
    time, with one progress bar for the whole; chunks ``parts`` holds are read instead (``kept``
    rows), before the work and again just before each chunk (a process encoding the same images
    may have done it); each chunk encoded here goes to ``keep(start, block)``, until one returns
    False (the cache cannot be written: the rest is encoded without keeping it)."""
    N, D = parts.shape
    X = np.empty((N, D), np.float32)
    todo = []
    for start in parts.starts():
        block = parts.read(start)
        if block is None:
            todo.append(start)
        else:
            X[start:parts.stop(start)] = block
    kept = N - sum(parts.stop(s) - s for s in todo)
    pieces, keeping = Pieces(progress, N, done=kept), True
    with parts.in_use():
        try:
            for start in todo:
                stop = parts.stop(start)
                block = parts.read(start)
                if block is None:
                    block = encode(images[start:stop], pieces.piece(stop - start))
                    keeping = keeping and keep(start, block)
                X[start:stop] = block
        finally:
            pieces.close()
    return X, kept


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(directory):
    """The temporaries killed writers left inside part directories (call with the cache's lock held)."""
    for path in Path(directory).glob(f"*{SUFFIX}"):
        if path.is_dir():
            atomic.remove_temporaries(path)
