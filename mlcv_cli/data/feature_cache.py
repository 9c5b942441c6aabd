"""Features computed once: fitted chains and encoded feature matrices cached in the data dir.

Under DATA_DIR/features/: ``chain-<key>.npz`` is a chain fitted on some training images
(key: those images' fingerprint and the chain's parameters), ``<key>.npy`` the features of
some images under a fitted chain (key: the images' and the fitted chain's fingerprints),
memory-mapped when read, with ``<key>.json`` beside it, written last, as the
"complete" marker. A cache entry that is damaged, incomplete or made for other images or
another extractor is detected (checksum, fingerprints, shapes) and rebuilt, never used.
Plain-pixel chains are not cached: computing them is as fast as reading them back.

Work in progress is kept too, so an interrupted run loses at most one chunk of rows:
``steps-<key>.npz`` is a chain whose extractors are fitted (the k-means dictionary), written
before the long encoding starts, and ``<key>.part/`` the finished chunks of an encoding (see
feature_chunks.py); both are removed once the complete entries are written. A hit sets the
entry's modification time (``.json``, ``chain-*.npz``): that is its last use, which
``mlcv cache prune`` goes by.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..core.features.chain import FeatureChain
from ..errors import MlcvError
from ..system import atomic, locks
from ..system.files import open_regular, read_small
from .base import load_npy
from .feature_chunks import Parts, encode_in_chunks, remove_leftovers as remove_part_leftovers

FORMAT = "mlcv-feature-cache"
VERSION = 1
_HASH_ROWS_BYTES = 32 << 20
_MANIFEST_LIMIT = 1 << 20  # a manifest is a few hundred bytes; a FIFO or a device is never read
# Writers hold it exclusively, readers shared; it stays (shared holders never remove it).
LOCK_FILE = ".lock"


def images_fingerprint(images) -> str:
    """sha256 hex of an image array's shape, dtype and bytes (read in chunks, so memmaps work)."""
    h = hashlib.sha256(f"{images.dtype.str}|{tuple(images.shape)}|".encode())
    if len(images):
        rows = max(1, _HASH_ROWS_BYTES // max(1, images[0].nbytes))
        for start in range(0, len(images), rows):
            h.update(np.ascontiguousarray(images[start : start + rows]).data)
    return h.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class FeatureStore:
    """Fit chains and compute features through the cache in ``directory`` (None: no cache).

    ``events`` records what happened ("hit", "miss", "rebuilt: <reason>") per request, so
    a caller can report that work was saved, or why it was not.
    """

    def __init__(self, directory):
        self.directory = Path(directory) if directory is not None else None
        self.events = []
        # str(path) -> (sha256, file identity) of the feature files whose bytes are the ones this
        # process uses: read from them after their checksum held, or written by it from its array.
        self.verified = {}

    def _note(self, what, outcome, seconds):
        self.events.append({"what": what, "cache": outcome, "seconds": round(seconds, 3)})

    # -- fitted chains ----------------------------------------------------------------------

    def fit(self, chain: FeatureChain, images, progress=None, what="train"):
        """(fitted chain, features of ``images``): fitted on ``images``, or both read from the cache."""
        t0 = time.perf_counter()
        if chain.pixels_only or self.directory is None:
            X = chain.fit_transform(images, progress)
            self._note(f"fit+{what}", "off", time.perf_counter() - t0)
            return chain, X
        images_fp = images_fingerprint(images)
        key = _key(images_fp, json.dumps(chain.spec(), sort_keys=True))
        path = self.directory / f"chain-{key}.npz"
        fitted, problem = _read_chain(path, chain.spec(), images_fp)
        damaged = None
        if fitted is not None:
            # On the very images it was fitted on, a chain's standardised features have mean 0 and
            # variance at most 1: a cached state that does not give them is damaged, and refitted.
            try:
                X = self.transform(fitted, images, progress, what, images_fp=images_fp)
                problem = standardisation_problem(X) if fitted.mean_ is not None else None
            except NonFiniteFeatures as exc:
                problem = exc.reason
            if problem is None:
                touch(path)
                self._note("fit", "hit", time.perf_counter() - t0)
                return fitted, X
            problem = f"{path.name} is damaged (on the images it was fitted on it gives {problem})"
            damaged = fitted.fingerprint()
        steps_path = self.directory / f"steps-{key}.npz"
        steps = self._fitted_steps(chain, images, images_fp, steps_path, progress)
        X, parts = self._encoded(steps, images, images_fp, progress, what, raw=True)
        X = _finite(steps.fit_standardization(X), what)
        # Through its stored form, so this chain's fingerprint is the one a loaded model has.
        chain = FeatureChain.from_state(steps.spec(), steps.state())
        self._note("fit", "rebuilt: " + problem if problem else "miss", time.perf_counter() - t0)
        t1 = time.perf_counter()
        # The features first: killed before the chain is written, the next run finds the fitted
        # steps and every chunk kept, and writes the chain without encoding anything again.
        if self._save_features(chain, images_fp, X) and self._write(lambda: _save_chain(path, chain, images_fp),
                                                                     present=lambda: _chain_present(path, chain.spec(), images_fp, damaged)):
            self._tidy(parts.remove, lambda: atomic.remove_quietly(steps_path))
        self._note(what, "written", time.perf_counter() - t1)
        return chain, X

    def _fitted_steps(self, chain, images, images_fp, path, progress):
        """``chain`` with its extractors fitted on ``images`` (not its standardisation): kept in the
        cache as soon as they are fitted, and read from there by a run that was interrupted later."""
        steps, _ = _read_chain(path, chain.spec(), images_fp, steps_only=True)
        if steps is not None:
            self._note("fit", "resumed: the fitted extractors were kept by an interrupted run", 0.0)
            return steps
        chain.fit_steps(images, progress)
        steps = FeatureChain.from_state(chain.spec(), chain.state(), steps_only=True)
        self._write(lambda: _save_chain(path, steps, images_fp),
                    present=lambda: _read_chain(path, chain.spec(), images_fp, steps_only=True)[0] is not None)
        return steps

    def _encoded(self, chain, images, images_fp, progress, what, raw):
        """(features of ``images`` under ``chain``, raw: before its standardisation; their Parts),
        encoded a chunk at a time: each finished chunk is kept, and chunks kept by an interrupted
        run (or by a process encoding the same images now) are read instead of encoded."""
        chain_fp = chain.fingerprint()
        parts = Parts(self.directory, _key(images_fp, chain_fp), images_fp, chain_fp,
                      (len(images), chain.output_dim(chain.image_shape_)))
        problem = parts.problem()
        if problem:
            self._tidy(parts.remove)
            self._note(what, f"rebuilt: {problem}", 0.0)

        def keep(start, block):
            return self._write(lambda: parts.write(start, block), present=lambda: parts.read(start) is not None)

        X, kept = encode_in_chunks(parts, chain.encode if raw else chain.transform, images, progress, keep)
        if kept:
            self._note(what, f"resumed: {kept} of {len(images)} rows were kept by an interrupted run", 0.0)
        return X, parts

    # -- features ----------------------------------------------------------------------------

    def transform(self, chain: FeatureChain, images, progress=None, what="images", images_fp=None):
        """Features (N, D) of ``images`` under the fitted ``chain``: read-only memmap on a cache hit."""
        t0 = time.perf_counter()
        if chain.pixels_only or self.directory is None or len(images) == 0:
            X = chain.transform(images, progress)
            if not chain.pixels_only:  # scaled bytes minus a checked mean are finite: no second pass over pixels
                _finite(X, what)
            self._note(what, "off", time.perf_counter() - t0)
            return X
        images_fp = images_fp or images_fingerprint(images)
        chain_fp = chain.fingerprint()
        X, problem = self._read_features(images_fp, chain_fp, len(images), chain.output_dim(chain.image_shape_))
        if X is not None and nonfinite_rows(X):
            X, problem = None, f"{self.features_path(images_fp, chain_fp).name} holds NaN or infinite values"
        if X is not None:
            touch(self.features_path(images_fp, chain_fp).with_suffix(".json"))
            self._note(what, "hit", time.perf_counter() - t0)
            return X
        X, parts = self._encoded(chain, images, images_fp, progress, what, raw=False)
        _finite(X, what)
        self._note(what, "rebuilt: " + problem if problem else "miss", time.perf_counter() - t0)
        if self._save_features(chain, images_fp, X, chain_fp):
            self._tidy(parts.remove)
        return X

    def features_path(self, images_fp, chain_fp) -> Path:
        return self.directory / f"{_key(images_fp, chain_fp)}.npy"

    def _save_features(self, chain, images_fp, X, chain_fp=None):
        """Write the complete entry (True when it is there now)."""
        chain_fp = chain_fp or chain.fingerprint()
        path = self.features_path(images_fp, chain_fp)

        def write():
            atomic.save_npy(path, X)
            digest = atomic.file_digest(path)
            atomic.write_json(path.with_suffix(".json"), {
                "format": FORMAT, "version": VERSION, "images": images_fp, "chain": chain_fp,
                "shape": list(X.shape), "dtype": str(X.dtype), "bytes": path.stat().st_size,
                "sha256": digest,
            })
            self.verified[str(path)] = (digest, file_identity(path))
            written.append(path)

        n, d = X.shape
        written = []
        there = self._write(write, present=lambda: self._read_features(images_fp, chain_fp, n, d)[0] is not None)
        if not written:  # another process's entry, or none: its bytes need not be X's
            self.verified.pop(str(path), None)
        return there

    def _read_features(self, images_fp, chain_fp, n, d):
        """(memmap, None) on a valid entry; (None, reason) when it is damaged or foreign; (None, None) when absent."""
        path = self.features_path(images_fp, chain_fp)
        manifest_path = path.with_suffix(".json")
        if not manifest_path.exists() and not path.exists():
            return None, None
        with contextlib.ExitStack() as held:
            # Shared: a writer never swaps the pair between the checksum and the memory map.
            with contextlib.suppress(MlcvError):  # the lock file cannot be made: read without it
                held.enter_context(locks.hold(self.directory / LOCK_FILE, shared=True))
            return self._checked_features(path, manifest_path, images_fp, chain_fp, n, d)

    def _checked_features(self, path, manifest_path, images_fp, chain_fp, n, d):
        try:
            manifest = json.loads(read_small(manifest_path, _MANIFEST_LIMIT))
            expected = {"format": FORMAT, "version": VERSION, "images": images_fp, "chain": chain_fp,
                        "shape": [n, d], "dtype": "float32"}
            wrong = [k for k, v in expected.items() if not isinstance(manifest, dict) or manifest.get(k) != v]
            if wrong:
                return None, f"{manifest_path.name} is for other {'images' if wrong == ['images'] else 'data or another extractor'} ({', '.join(wrong)})"
            if path.stat().st_size != manifest.get("bytes"):
                return None, f"{path.name} has {path.stat().st_size} bytes, expected {manifest.get('bytes')}"
            identity = file_identity(path)
            if atomic.file_digest(path) != manifest.get("sha256"):
                return None, f"{path.name} does not match its checksum"
            X = load_npy(path, mmap=True)
            locks.hold_shared_while(X, path)  # `mlcv cache prune` leaves an entry alone while it is mapped
            if file_identity(path) != identity:
                return None, f"{path.name} was replaced while it was read"
        except FileNotFoundError as exc:
            return None, f"{Path(exc.filename).name if exc.filename else 'a file'} is missing"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return None, f"{path.name} is unreadable ({exc})"
        if X.shape != (n, d) or X.dtype != np.float32:
            return None, f"{path.name} holds {X.dtype} {X.shape}, expected float32 {(n, d)}"
        self.verified[str(path)] = (manifest["sha256"], identity)
        return X, None

    def _write(self, write, present):
        """Write one entry holding the cache's lock, unless another process wrote it meanwhile
        (``present()``); True when it is there now. A cache that cannot be written (disk full,
        read-only data dir) costs time, not the run."""
        try:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise atomic.describe_os_error(self.directory, exc) from None
            with locks.hold(self.directory / LOCK_FILE, remove=False):
                _remove_leftovers(self.directory)
                if not present():
                    write()
            return True
        except MlcvError as exc:
            self.events.append({"what": "cache write", "cache": f"failed: {exc}", "seconds": 0.0})
            return False

    def _tidy(self, *removals):
        """Remove work in progress that a complete entry replaced (best effort, holding the lock)."""
        with contextlib.suppress(MlcvError, OSError):
            with locks.hold(self.directory / LOCK_FILE, remove=False):
                for remove in removals:
                    remove()


def touch(path):
    """Record a cache entry's use in its modification time (a read-only cache keeps its own)."""
    with contextlib.suppress(OSError):
        os.utime(path)


class NonFiniteFeatures(MlcvError):
    """A fitted chain gave NaN or infinite features: its state is damaged (``reason`` says how much)."""

    def __init__(self, what, bad, n):
        self.reason = f"NaN or infinite features for {bad:,} of {n:,} images"
        super().__init__(f"the fitted feature extractor gives {self.reason} ({what}): its fitted state is damaged (a model "
                         "file or feature cache entry was changed); retrain the model")


def _rows_per_block(X):
    return max(1, (32 << 20) // (8 * max(1, X.shape[1])))


def nonfinite_rows(X) -> int:
    """How many rows of X (N, D) hold a NaN or an infinity (read in blocks: memmaps welcome)."""
    step = _rows_per_block(X)
    return int(sum((~np.isfinite(X[s : s + step])).any(axis=1).sum() for s in range(0, len(X), step)))


def _finite(X, what):
    bad = nonfinite_rows(X)
    if bad:
        raise NonFiniteFeatures(what, bad, len(X))
    return X


def standardisation_problem(X):
    """Why X (N, D), a standardising chain's features of the images it was fitted on, cannot be
    that (per-feature mean about 0, variance at most 1), or None."""
    n, d = X.shape
    if n < 2:
        return None
    total, squares = np.zeros(d), np.zeros(d)
    step = _rows_per_block(X)
    for s in range(0, n, step):
        block = np.asarray(X[s : s + step], np.float64)
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    mean = total / n
    var = squares / n - mean * mean
    if not (np.isfinite(mean).all() and np.isfinite(var).all()):
        return "features too large to be standardised"
    if np.abs(mean).max() > 0.1 or var.max() > 1.1:
        return f"features that are not standardised (a mean of {np.abs(mean).max():.3g}, a variance of {var.max():.3g})"
    return None


def _chain_present(path, spec, images_fp, damaged):
    """Whether another process wrote the chain entry meanwhile (not the damaged one we refitted)."""
    chain = _read_chain(path, spec, images_fp)[0]
    return chain is not None and (damaged is None or chain.fingerprint() != damaged)


def _remove_leftovers(directory):
    """Files a killed writer left: temporaries, and features whose manifest never came.

    Only called holding the cache's lock, so no live process is writing any of them."""
    atomic.remove_temporaries(directory)
    remove_part_leftovers(directory)
    for path in directory.iterdir():
        if path.name.endswith(".npy") and not path.with_suffix(".json").exists():
            atomic.remove_quietly(path)


def _save_chain(path, chain, images_fp):
    atomic.save_npz(path, {
        "format": np.array(FORMAT), "version": np.array(VERSION), "images": np.array(images_fp),
        "spec": np.array(json.dumps(chain.spec(), sort_keys=True)),
        **{"state." + name: value for name, value in chain.state().items()},
    })


def _read_chain(path, spec, images_fp, steps_only=False):
    """(fitted chain, None), or (None, reason) when the entry is damaged or foreign, (None, None) when absent.

    ``steps_only``: a chain fitted up to its standardisation (``steps-<key>.npz``)."""
    if not path.exists():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
        if str(data.get("format")) != FORMAT or int(data.get("version", -1)) != VERSION:
            return None, f"{path.name} is not a feature cache of this version"
        if str(data.get("images")) != images_fp or json.loads(str(data.get("spec"))) != json.loads(json.dumps(spec, sort_keys=True)):
            return None, f"{path.name} was fitted on other images or with other parameters"
        state = {name[len("state."):]: value for name, value in data.items() if name.startswith("state.")}
        return FeatureChain.from_state(spec, state, steps_only=steps_only), None
    except (OSError, ValueError, TypeError, EOFError, KeyError) as exc:
        return None, f"{path.name} is damaged ({str(exc)[:200]})"
    except Exception as exc:  # zipfile.BadZipFile and friends: never trust a broken entry
        return None, f"{path.name} is damaged ({type(exc).__name__})"


# -- cross-validation -------------------------------------------------------------------------


def file_identity(path):
    """(device, inode, size, modification time) of a file: changes when it is replaced or written."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class EncodedFeatures:
    """The cv images' features, one matrix per feature setting (a chain spec, as JSON).

    Pickled (to local worker processes or a Dask cluster) as cache paths that the worker
    memory-maps, so the features cross the process boundary as a file name, not gigabytes.
    A path travels only when the file's bytes are the ones this process uses (its checksum
    held when read, or this process wrote it), with that checksum and the file's identity: a
    worker maps the file it opened only when either still holds, and refuses it otherwise. Any
    other matrix (the cache entry was damaged and could not be rewritten, another process
    wrote it, no cache) travels as the array itself.
    """

    def __init__(self):
        self.paths = {}
        self.arrays = {}
        self.fitted = {}  # setting -> the fitted chain's fingerprint (stays in this process)

    def add(self, setting, X, path, fitted=None, verified=None):
        """``verified``: (sha256, file identity) when ``path`` holds exactly X's bytes (FeatureStore.verified)."""
        self.arrays[setting] = X
        self.fitted[setting] = fitted
        self.paths[setting] = (str(path), *verified, tuple(X.shape)) if path is not None and verified else None

    def get(self, setting):
        if setting not in self.arrays:
            self.arrays[setting] = _map_verified(*self.paths[setting])
        return self.arrays[setting]

    def __getstate__(self):
        return {"paths": self.paths, "arrays": {k: v for k, v in self.arrays.items() if self.paths.get(k) is None}}

    def __setstate__(self, state):
        self.paths, self.arrays, self.fitted = state["paths"], state["arrays"], {}


def _map_verified(path, digest, identity, shape):
    """The float32 (N, D) matrix in ``path``, memory-mapped from the very file that was checked:
    its identity is the recorded one, or its bytes hash to ``digest``; MlcvError otherwise."""
    fix = "run the cross-validation again (the features are encoded anew when their cache entry is damaged)"
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != tuple(identity):
                h = hashlib.sha256()
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
                if h.hexdigest() != digest:
                    raise MlcvError(f"the cached features {path} changed after this cross-validation checked them "
                                    f"(another process wrote or damaged them); {fix}")
                fh.seek(0)
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            found, fortran, dtype = reader(fh)
            if tuple(found) != tuple(shape) or dtype != np.float32 or fortran:
                raise MlcvError(f"the cached features {path} hold {dtype} {tuple(found)}, expected float32 {tuple(shape)}; {fix}")
            return np.memmap(fh, dtype=np.float32, mode="r", offset=fh.tell(), shape=tuple(shape))
    except OSError as exc:
        raise MlcvError(f"cannot read the cached features {path} ({exc.strerror or exc}); {fix}") from None
    except ValueError as exc:
        raise MlcvError(f"the cached features {path} are damaged ({exc}); {fix}") from None
