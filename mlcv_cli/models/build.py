"""Building estimators from a config, and rebuilding fitted ones from a model file."""

from __future__ import annotations

import numpy as np

from .. import config as config_mod
from ..config import Config
from ..core.knn import KNearestNeighbor
from ..core.linear import LinearClassifier
from ..data.feature_cache import FeatureStore
from ..errors import MlcvError
from .modelfile import ModelFile


def build_estimator(cfg: Config):
    m, t = cfg.model, cfg.train
    if m.type == "knn":
        return KNearestNeighbor(k=m.k, metric=m.metric, max_memory=m.max_memory_mb * 2**20)
    return LinearClassifier(
        loss=m.type,
        reg=m.reg,
        penalty=m.penalty,
        l1_ratio=m.l1_ratio,
        delta=m.delta,
        squared_hinge=m.squared_hinge,
        optimizer=t.optimizer,
        lr=t.lr,
        lr_decay=t.lr_decay,
        batch_size=t.batch_size,
        epochs=t.epochs,
        momentum=t.momentum,
        decay_rate=t.decay_rate,
        beta1=t.beta1,
        beta2=t.beta2,
        eps=t.eps,
        init_scale=t.init_scale,
        random_search_tries=t.random_search_tries,
        seed=cfg.seed,
    )


def knn_searches_pixels(model_type, chain):
    """True when a kNN model can search the raw uint8 pixels instead of the chain's features.

    Plain pixel steps without standardisation turn every image x into s * x - m: the same
    shift for every row and a positive scale, which change no distance ranking. The bytes
    give those same neighbours exactly (no float rounding), in a quarter of the memory, and
    L1 runs on the packed-byte kernel.
    """
    return model_type == "knn" and chain.pixels_only and not chain.standardizes


def knn_backend_note(uses_l1):
    """A one-line note when an L1 search fell back to the slower NumPy path, else None."""
    if not uses_l1:
        return None
    from ..core.knn import l1_backend

    backend, reason = l1_backend()
    if backend == "numba":
        return None
    return f"the compiled L1 kernel is unavailable ({reason}); used the NumPy search, which is several times slower"


def estimator_from_file(mf: ModelFile, store=None):
    """Rebuild a fitted estimator from a loaded model file (kNN features through ``store``'s cache)."""
    C = len(mf.classes)
    if mf.model_type == "knn":
        k = int(mf.arrays.get("k", 1))
        metric = str(mf.arrays.get("metric", "l2"))
        images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
        X = model_rows(mf, images, store, what="knn training images")
        est = KNearestNeighbor(k=k, metric=metric, max_memory=_saved_max_memory_mb(mf) * 2**20)
        return est.fit(X, mf.arrays["y_train"], num_classes=C)
    est = LinearClassifier(loss=mf.model_type)
    est.W_ = np.asarray(mf.arrays["W"], np.float32)
    est.b_ = np.asarray(mf.arrays["b"], np.float32)
    est.num_classes_ = C
    return est


def _saved_max_memory_mb(mf: ModelFile):
    """model.max_memory_mb of the run that wrote the model (the default if it cannot be read)."""
    try:
        return config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, "model config")).model.max_memory_mb
    except (MlcvError, AttributeError, TypeError):
        return config_mod.ModelConfig().max_memory_mb


def model_file_of(cfg, est, pre, splits) -> ModelFile:
    if cfg.model.type == "knn":
        arrays = {
            "X_train": splits.train_x.reshape(len(splits.train_x), -1),
            "y_train": splits.train_y,
            "k": np.array(cfg.model.k),
            "metric": np.array(cfg.model.metric),
        }
    else:
        arrays = {"W": est.W_.astype(np.float32), "b": est.b_.astype(np.float32)}
    return ModelFile(cfg.model.type, splits.classes, cfg.data.image_size, pre.chain, config_mod.to_yaml(cfg), arrays)


def model_rows(mf: ModelFile, images, store=None, progress=None, what="images"):
    """The rows (N, D) a saved model sees for uint8 images (N, H, W, C), C the model's channels."""
    if knn_searches_pixels(mf.model_type, mf.chain):
        return images.reshape(len(images), -1)
    return (store or FeatureStore(None)).transform(mf.chain, images, progress, what)
