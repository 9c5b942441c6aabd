"""Features computed once: fitted chains and encoded feature matrices cached in the data dir.

Under DATA_DIR/features/: ``chain-<key>.npz`` is a chain fitted on some training images
(key: those images' fingerprint and the chain's parameters), ``<key>.npy`` the features of
some images under a fitted chain (key: the images' and the fitted chain's fingerprints),
memory-mapped when read, with ``<key>.json`` beside it, written last, as the
"complete" marker. A cache entry that is damaged, incomplete or made for other images or
another extractor is detected (checksum, fingerprints, shapes) and rebuilt, never used.
Plain-pixel chains are not cached: computing them is as fast as reading them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..core.features.chain import FeatureChain
from ..errors import MlcvError
from ..system import atomic, locks

FORMAT = "mlcv-feature-cache"
VERSION = 1
_HASH_ROWS_BYTES = 32 << 20
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
        path = self.directory / f"chain-{_key(images_fp, json.dumps(chain.spec(), sort_keys=True))}.npz"
        fitted, problem = _read_chain(path, chain.spec(), images_fp)
        if fitted is not None:
            self._note("fit", "hit", time.perf_counter() - t0)
            return fitted, self.transform(fitted, images, progress, what, images_fp=images_fp)
        X = chain.fit_transform(images, progress)
        # Through its stored form, so this chain's fingerprint is the one a loaded model has.
        chain = FeatureChain.from_state(chain.spec(), chain.state())
        self._note("fit", "rebuilt: " + problem if problem else "miss", time.perf_counter() - t0)
        self._write(lambda: atomic.save_npz(path, {
            "format": np.array(FORMAT), "version": np.array(VERSION), "images": np.array(images_fp),
            "spec": np.array(json.dumps(chain.spec(), sort_keys=True)),
            **{"state." + name: value for name, value in chain.state().items()},
        }), present=lambda: _read_chain(path, chain.spec(), images_fp)[0] is not None)
        t1 = time.perf_counter()
        self._save_features(chain, images_fp, X)
        self._note(what, "written", time.perf_counter() - t1)
        return chain, X

    # -- features ----------------------------------------------------------------------------

    def transform(self, chain: FeatureChain, images, progress=None, what="images", images_fp=None):
        """Features (N, D) of ``images`` under the fitted ``chain``: read-only memmap on a cache hit."""
        t0 = time.perf_counter()
        if chain.pixels_only or self.directory is None or len(images) == 0:
            X = chain.transform(images, progress)
            self._note(what, "off", time.perf_counter() - t0)
            return X
        images_fp = images_fp or images_fingerprint(images)
        chain_fp = chain.fingerprint()
        X, problem = self._read_features(images_fp, chain_fp, len(images), chain.output_dim(chain.image_shape_))
        if X is not None:
            self._note(what, "hit", time.perf_counter() - t0)
            return X
        X = chain.transform(images, progress)
        self._note(what, "rebuilt: " + problem if problem else "miss", time.perf_counter() - t0)
        self._save_features(chain, images_fp, X, chain_fp)
        return X

    def features_path(self, images_fp, chain_fp) -> Path:
        return self.directory / f"{_key(images_fp, chain_fp)}.npy"

    def _save_features(self, chain, images_fp, X, chain_fp=None):
        chain_fp = chain_fp or chain.fingerprint()
        path = self.features_path(images_fp, chain_fp)

        def write():
            atomic.save_npy(path, X)
            atomic.write_json(path.with_suffix(".json"), {
                "format": FORMAT, "version": VERSION, "images": images_fp, "chain": chain_fp,
                "shape": list(X.shape), "dtype": str(X.dtype), "bytes": path.stat().st_size,
                "sha256": atomic.file_digest(path),
            })

        n, d = X.shape
        self._write(write, present=lambda: self._read_features(images_fp, chain_fp, n, d)[0] is not None)

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
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            expected = {"format": FORMAT, "version": VERSION, "images": images_fp, "chain": chain_fp,
                        "shape": [n, d], "dtype": "float32"}
            wrong = [k for k, v in expected.items() if not isinstance(manifest, dict) or manifest.get(k) != v]
            if wrong:
                return None, f"{manifest_path.name} is for other {'images' if wrong == ['images'] else 'data or another extractor'} ({', '.join(wrong)})"
            if path.stat().st_size != manifest.get("bytes"):
                return None, f"{path.name} has {path.stat().st_size} bytes, expected {manifest.get('bytes')}"
            if atomic.file_digest(path) != manifest.get("sha256"):
                return None, f"{path.name} does not match its checksum"
            X = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            return None, f"{Path(exc.filename).name if exc.filename else 'a file'} is missing"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return None, f"{path.name} is unreadable ({exc})"
        if X.shape != (n, d) or X.dtype != np.float32:
            return None, f"{path.name} holds {X.dtype} {X.shape}, expected float32 {(n, d)}"
        return X, None

    def _write(self, write, present):
        """Write one entry holding the cache's lock, unless another process wrote it meanwhile
        (``present()``). A cache that cannot be written (disk full, read-only data dir) costs
        time, not the run."""
        try:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise atomic.describe_os_error(self.directory, exc) from None
            with locks.hold(self.directory / LOCK_FILE, remove=False):
                _remove_leftovers(self.directory)
                if not present():
                    write()
        except MlcvError as exc:
            self.events.append({"what": "cache write", "cache": f"failed: {exc}", "seconds": 0.0})


def _remove_leftovers(directory):
    """Files a killed writer left: temporaries, and features whose manifest never came.

    Only called holding the cache's lock, so no live process is writing any of them."""
    atomic.remove_temporaries(directory)
    for path in directory.iterdir():
        if path.name.endswith(".npy") and not path.with_suffix(".json").exists():
            atomic.remove_quietly(path)


def _read_chain(path, spec, images_fp):
    """(fitted chain, None), or (None, reason) when the entry is damaged or foreign, (None, None) when absent."""
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
        return FeatureChain.from_state(spec, state), None
    except (OSError, ValueError, TypeError, EOFError, KeyError) as exc:
        return None, f"{path.name} is damaged ({str(exc)[:200]})"
    except Exception as exc:  # zipfile.BadZipFile and friends: never trust a broken entry
        return None, f"{path.name} is damaged ({type(exc).__name__})"


# -- cross-validation -------------------------------------------------------------------------


class EncodedFeatures:
    """The cv images' features, one matrix per feature setting (a chain spec, as JSON).

    Pickled (to local worker processes or a Dask cluster) as cache paths that the worker
    memory-maps, so the features cross the process boundary as a file name, not gigabytes;
    a matrix that could not be cached travels as the array itself.
    """

    def __init__(self):
        self.paths = {}
        self.arrays = {}
        self.fitted = {}  # setting -> the fitted chain's fingerprint (stays in this process)

    def add(self, setting, X, path, fitted=None):
        self.arrays[setting] = X
        self.fitted[setting] = fitted
        self.paths[setting] = str(path) if path is not None and Path(path).exists() else None

    def get(self, setting):
        if setting not in self.arrays:
            self.arrays[setting] = np.load(self.paths[setting], mmap_mode="r", allow_pickle=False)
        return self.arrays[setting]

    def __getstate__(self):
        return {"paths": self.paths, "arrays": {k: v for k, v in self.arrays.items() if self.paths.get(k) is None}}

    def __setstate__(self, state):
        self.paths, self.arrays, self.fitted = state["paths"], state["arrays"], {}


