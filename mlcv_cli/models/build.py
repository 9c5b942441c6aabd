"""Building estimators from a config, and rebuilding fitted ones from a model file, by asking the
registry for the model type."""

from __future__ import annotations

from ..data.feature_cache import FeatureStore
from . import registry
from .modelfile import ModelFile


def build_estimator(cfg):
    """A new, unfitted core estimator for the resolved config ``cfg``."""
    return registry.get(cfg.model.type).build(cfg)


def searches_pixels(model_type: str, chain) -> bool:
    """True when the model type uses the raw uint8 pixel rows instead of the chain's features
    (see KNNModel.searches_pixels)."""
    return registry.get(model_type).searches_pixels(chain)


def model_rows(mf: ModelFile, images, store=None, progress=None, what="images"):
    """The rows (N, D) a saved model sees for uint8 images (N, H, W, C), C the model's channels."""
    if searches_pixels(mf.model_type, mf.chain):
        return images.reshape(len(images), -1)
    return (store or FeatureStore(None)).transform(mf.chain, images, progress, what)


def estimator_from_file(mf: ModelFile, store=None):
    """Rebuild a fitted estimator from a loaded model file (stored images' features through ``store``'s cache)."""

    def rows(flat_images):
        images = flat_images.reshape(-1, mf.image_size, mf.image_size, mf.channels)
        return model_rows(mf, images, store, what=f"{mf.model_type} training images")

    return registry.get(mf.model_type).from_arrays(mf.arrays, len(mf.classes), rows, mf.config_yaml)
