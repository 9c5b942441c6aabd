"""The memory a train or cv run will need beyond its loaded images, and what this machine can
give it: a run that cannot fit is refused, naming its largest parts, before it allocates them.
"""

from __future__ import annotations

import os
import re

from .. import config as config_mod
from ..errors import MlcvError

ENV = "MLCV_MAX_MEMORY"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise MlcvError(f"{ENV}: expected a size such as 4G, 512M or 1.5GB, found {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def fmt(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _meminfo_available():
    text = _read("/proc/meminfo")
    m = re.search(r"^MemAvailable:\s+(\d+) kB", text or "", re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


# (directory, limit file, usage file) of the cgroup v2 and v1 memory controllers; each has a memory.stat
_CGROUPS = (("/sys/fs/cgroup", "memory.max", "memory.current"),
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"))


def _cgroup_left():
    """Bytes left under this process's cgroup memory limit (v2 or v1), or None without one."""
    for directory, limit_file, usage_file in _CGROUPS:
        limit, usage = _read(os.path.join(directory, limit_file)), _read(os.path.join(directory, usage_file))
        if limit is None or usage is None or not limit.strip().isdigit() or not usage.strip().isdigit():
            continue
        limit, usage = int(limit), int(usage)
        if limit >= 2**60:  # "no limit" in cgroup v1
            continue
        # Page cache counts as usage but is given back on demand.
        stat = _read(os.path.join(directory, "memory.stat")) or ""
        m = re.search(r"^(?:total_)?inactive_file (\d+)", stat, re.MULTILINE)
        return max(0, limit - usage + (int(m.group(1)) if m else 0))
    return None


def _rlimit_left():
    """Bytes of address space left under `ulimit -v` (RLIMIT_AS), or None without one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    m = re.search(r"^VmSize:\s+(\d+) kB", _read("/proc/self/status") or "", re.MULTILINE)
    used = int(m.group(1)) * 1024 if m else 0
    return max(0, soft - used)


def available() -> tuple:
    """(bytes this process may still allocate, where that figure comes from)."""
    given = os.environ.get(ENV)
    if given:
        return parse_size(given), f"{ENV}={given}"
    found = [(n, what) for n, what in ((_meminfo_available(), "MemAvailable in /proc/meminfo"), (_cgroup_left(), "under the cgroup memory limit"),
                                       (_rlimit_left(), "under `ulimit -v`")) if n is not None]
    return min(found) if found else (None, "unknown")


def check(parts, what="this run"):
    """Refuse when the parts [(description, bytes, fix)] add up to more than is available."""
    need = sum(p[1] for p in parts)
    free, source = available()
    if free is None or need <= free:
        return
    largest = sorted(parts, key=lambda p: -p[1])
    shown = "; ".join(f"{desc}: {fmt(n)}" for desc, n, _ in largest[:3] if n)
    fixes = []
    for _, n, fix in largest:
        for piece in fix.split(" or "):
            if piece not in fixes and n >= need / 10:
                fixes.append(piece)
    raise MlcvError(
        f"{what} needs about {fmt(need)} of memory ({shown}) but only {fmt(free)} is available ({source}); "
        f"use {_either(fixes[:4])} (or set {ENV}=SIZE to allow more)"
    )


def _either(items):
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# -- estimates -----------------------------------------------------------------------------

_IMAGES_FIX = "fewer images (data.num_train)"


def fitting_parts(chain, image_shape):
    """What fitting the feature extractors holds: the k-means patch sample and the temporaries."""
    parts = []
    for i, (name, params) in enumerate(chain.steps):
        if name == "kmeans":
            d = params["patch_size"] ** 2 * image_shape[2]
            # float32 patches, and as much again while they are normalised and whitened
            parts.append((f"k-means patch sample {params['num_patches']:,} x {d}", params["num_patches"] * d * 4 * 2,
                          f"a smaller features.{i}.num_patches"))
    if not chain.pixels_only:
        parts.append(("feature temporaries", 256 * 2**20, "fewer feature steps"))
    return parts


def model_parts(cfg, n_train, D, C, raw_pixels, n_queries=2000):
    """What fitting (and scoring) the model holds besides its input rows."""
    if cfg.model.type == "knn":
        # float32 distances and int64 indices per (query, training row), up to max_memory_mb
        blocks = min(cfg.model.max_memory_mb * 2**20, n_queries * n_train * 21)
        parts = [("kNN distance blocks", blocks, "a smaller model.max_memory_mb")]
        if not raw_pixels:  # float32 rows are copied, then copied again centred
            parts.append((f"kNN training copies {n_train:,} x {D:,}", 2 * n_train * D * 4, _IMAGES_FIX))
        return parts
    weights = D * C * 4
    parts = [(f"weights, gradients and optimizer state {D:,} x {C}", 5 * weights, "smaller features"),
             (f"minibatch {cfg.train.batch_size:,} x {D:,}", 2 * min(cfg.train.batch_size, n_train) * D * 4,
              "a smaller train.batch_size")]
    if cfg.train.optimizer == "lbfgs":
        from ..core.linear import LBFGS_MEMORY

        parts.append(("L-BFGS history and full-batch scores", (D * C + C) * 8 * (2 * LBFGS_MEMORY + 6) + n_train * C * 8 * 4,
                      "train.optimizer other than lbfgs, or " + _IMAGES_FIX))
    return parts


def train_parts(cfg, chain, n_train, n_val, n_test, image_shape, num_classes, raw_pixels):
    """[(what, bytes, fix)] for `mlcv train` once its images are loaded and split."""
    D = chain.output_dim(image_shape)
    parts = []
    if not raw_pixels:
        rows = n_train + n_val + n_test  # the test features are made while the training ones are held
        parts.append((f"features {rows:,} x {D:,} float32", rows * D * 4, _IMAGES_FIX + ("" if chain.pixels_only else " or smaller features")))
    queries = min(2000, max(n_val, n_test))  # scored in chunks of 2,000
    return parts + fitting_parts(chain, image_shape) + model_parts(cfg, n_train, D, num_classes, raw_pixels, queries)


def cv_parts(cfg, points, n_images, folds, image_shape, num_classes, workers, images_bytes):
    """[(what, bytes, fix)] for `mlcv cv`: the encoded features of every setting (held at once),
    then ``workers`` jobs at a time, each with its fold's rows and model, and a copy of the images each."""
    from ..config.features import build_chain
    from ..models.build import knn_searches_pixels

    parts, seen, fitting, job_parts, pixels_only = [], set(), [], [], True
    n_train = n_images - n_images // folds
    for pcfg in _memory_settings(cfg, points):
        chain = build_chain(pcfg)
        D = chain.output_dim(image_shape)
        raw_pixels = knn_searches_pixels(pcfg.model.type, chain)
        pixels_only = pixels_only and chain.pixels_only
        spec = repr(chain.spec())
        if spec not in seen and not chain.pixels_only:
            seen.add(spec)
            parts.append((f"cv features {n_images:,} x {D:,} float32", n_images * D * 4, _IMAGES_FIX + " or smaller features"))
            fitting = max(fitting, fitting_parts(chain, image_shape), key=lambda ps: sum(p[1] for p in ps))
        # a fold's training and validation rows: copied as float32, or as uint8 for raw-pixel kNN
        rows = [("fold rows", n_images * D * (1 if raw_pixels else 4), _IMAGES_FIX)]
        this = rows + model_parts(pcfg, n_train, D, num_classes, raw_pixels, n_images - n_train)
        if sum(p[1] for p in this) > sum(p[1] for p in job_parts):
            job_parts = this
    per = f" (x {workers} workers)" if workers > 1 else ""
    parts += [(f"per job: {d}{per}", n * workers, f"fewer --jobs or {fix}" if workers > 1 else fix) for d, n, fix in job_parts]
    if workers > 1 and pixels_only:  # features go to workers as cache file names, images as arrays
        parts.append((f"a copy of the images in each of {workers} workers", workers * images_bytes, "fewer --jobs"))
    return parts + fitting


# The keys that change what a job holds; a grid over the others (lr, reg, k) costs the same.
_MEMORY_KEYS = ("model.max_memory_mb", "train.optimizer", "train.batch_size", "preprocess.subtract_mean")


def _memory_settings(cfg, points):
    """One config per distinct setting of what changes a job's memory among the grid ``points``."""
    distinct = {}
    for point in points:
        part = {k: v for k, v in point.items() if k.startswith("features.") or k in _MEMORY_KEYS}
        distinct.setdefault(repr(sorted(part.items())), part)
    return [config_mod.replace(cfg, part) for part in distinct.values()]
