"""How much memory a train or cv run will hold beyond its loaded images, part by part, so that a
run that cannot fit is refused before it allocates (system/memory.py checks the sum against
what the machine has). The model's own parts come from its model type."""

from __future__ import annotations

from .. import config as config_mod
from ..config.features import build_chain
from ..models import registry

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
    return registry.get(cfg.model.type).memory_parts(cfg, n_train, D, C, raw_pixels, n_queries)


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
    parts, seen, fitting, job_parts, pixels_only = [], set(), [], [], True
    n_train = n_images - n_images // folds
    for pcfg in _memory_settings(cfg, points):
        chain = build_chain(pcfg)
        D = chain.output_dim(image_shape)
        raw_pixels = registry.get(pcfg.model.type).searches_pixels(chain)
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
