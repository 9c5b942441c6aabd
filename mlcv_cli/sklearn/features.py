"""mlcv's feature extractors as scikit-learn transformers: Pixels, HOGFeatures, ColorHistogramFeatures,
KMeansFeatures, and Features (a whole chain, as a config's features section makes it)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from ..core.features._common import DEFAULT_MAX_MEMORY
from ..core.features.chain import FeatureChain, StepError
from ..core.features.color_hist import ColorHistogram as CoreColorHistogram
from ..core.features.hog import HOG as CoreHOG
from ..core.features.kmeans import KMeansFeatures as CoreKMeansFeatures
from ..core.features.pixels import Pixels as CorePixels
from .arrays import flatten_images


class Pixels(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """mlcv's pixel preprocessing: rows (N, D) float32 = X * scale - mean training row * scale.

    Parameters (the config keys preprocess.scale, preprocess.subtract_mean)
    ----------
    scale : number > 0, every value is multiplied by it (1/255 maps pixels to [0, 1]).
    subtract_mean : bool, subtract the mean training row (the mean image), fitted in float64.

    X is (N, D), or images (N, H, W, 3) as mlcv's datasets give them (flattened, without a
    copy). Attributes: mean_ (D,) float32 (already scaled; empty when subtract_mean is False),
    n_features_in_. Memory: the output (N, D) float32 is the only large array made.
    """

    def __init__(self, scale=1.0, subtract_mean=True):
        self.scale = scale
        self.subtract_mean = subtract_mean

    def fit(self, X, y=None):
        """Fit the mean row of X (N, D) or (N, H, W, 3); y is ignored. Returns self."""
        X = validate_data(self, flatten_images(X), dtype="numeric")
        s = self.scale
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not np.isfinite(s) or s <= 0:
            raise ValueError(f"scale must be a finite number > 0; found {s!r}.")
        if not isinstance(self.subtract_mean, (bool, np.bool_)):
            raise ValueError(f"subtract_mean must be True or False; found {self.subtract_mean!r}.")
        self.extractor_ = CorePixels(float(s), bool(self.subtract_mean)).fit(X)
        self.mean_ = self.extractor_.mean_
        return self

    def transform(self, X):
        """float32 rows (N, D) of X (N, D) or (N, H, W, 3)."""
        check_is_fitted(self)
        X = validate_data(self, flatten_images(X), dtype="numeric", reset=False)
        return self.extractor_.transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The output is float32 whatever comes in (mlcv's models train in float32), so only
        # float32 input keeps its dtype; the default tag (float64) would promise otherwise.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _as_images(estimator, X, reset):
    """X (N, H, W, C) images or (N, H*W*C) rows of pixel values 0..255 -> uint8 images.

    Validation is scikit-learn's on the flattened rows (a view), so its messages and
    n_features_in_ apply; a dtype other than uint8 is converted (a copy) after checking that
    every value is an integer in 0..255.
    """
    shape = tuple(X.shape[1:]) if isinstance(X, np.ndarray) and X.ndim == 4 else None
    rows = validate_data(estimator, flatten_images(X), dtype="numeric", reset=reset)
    check_non_negative(rows, type(estimator).__name__)
    if reset:
        given = estimator.image_shape
        if given is not None:
            given = tuple(int(v) for v in given)
            if len(given) != 3 or np.prod(given) != rows.shape[1] or (shape is not None and shape != given):
                raise ValueError(f"image_shape {given} does not fit X of shape {np.shape(X)}; give (H, W, C) with H*W*C features.")
        shape = shape or given
        if shape is None:
            raise ValueError(
                f"X has {rows.shape[1]} features per row but no image shape: pass images (N, H, W, C) "
                "or set image_shape=(H, W, C)."
            )
        estimator.image_shape_ = shape
    elif shape is not None and shape != estimator.image_shape_:
        raise ValueError(f"X holds images of shape {shape}, but {type(estimator).__name__} was fitted on {estimator.image_shape_}.")
    if rows.dtype != np.uint8:
        if rows.size and (rows.max() > 255 or not np.array_equal(rows, np.round(rows))):
            raise ValueError("X must hold pixel values: integers 0..255 (uint8 images as mlcv reads them).")
        rows = rows.astype(np.uint8)
    return rows.reshape((rows.shape[0],) + tuple(estimator.image_shape_))


class _ImageFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """fit/transform around one of core.features' extractors; subclasses name it and its parameters."""

    _core = None

    def _core_params(self):
        params = {k: v for k, v in self.get_params().items() if k not in ("image_shape", "random_state")}
        if "random_state" in self.get_params():
            params["seed"] = self.random_state
        return params

    def fit(self, X, y=None):
        """Fit on images X (N, H, W, C) or rows (N, H*W*C) with image_shape; y is ignored. Returns self."""
        images = _as_images(self, X, reset=True)
        self.extractor_ = self._build().fit(images)
        self._n_features_out = self.extractor_.output_dim(self.image_shape_)
        return self

    def transform(self, X):
        """float32 features (N, D_out) of images shaped like the fitted ones."""
        check_is_fitted(self)
        return self.extractor_.transform(_as_images(self, X, reset=False))

    def _build(self):
        return self._core(**self._core_params())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Image extractors need images (N, H, W, C) of pixel values 0..255 (rows only with an
        # image_shape), while scikit-learn's estimator checks feed tabular floats of 1 to 10
        # columns: none of those checks can apply. These are the tags scikit-learn's own
        # image transformer (feature_extraction.image.PatchExtractor) declares for that, so
        # check_estimator says "Can't test estimator" instead of failing; tests/test_sklearn.py
        # runs the same contract (clone, pickle, idempotence, subsets, messages) on images.
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []  # the output is float32 whatever comes in
        return tags


class HOGFeatures(_ImageFeatures):
    """Histograms of oriented gradients (core.features.hog.HOG) as a transformer; nothing is learned.

    Parameters: orientations, cell_size, block_size, block_norm, signed, max_memory as in the
    core (and the config's features.N keys); image_shape (H, W, C) when X comes as rows.
    """

    _core = CoreHOG

    def __init__(self, orientations=9, cell_size=4, block_size=2, block_norm="L2-Hys", signed=False,
                 max_memory=DEFAULT_MAX_MEMORY, image_shape=None):
        self.orientations = orientations
        self.cell_size = cell_size
        self.block_size = block_size
        self.block_norm = block_norm
        self.signed = signed
        self.max_memory = max_memory
        self.image_shape = image_shape


class ColorHistogramFeatures(_ImageFeatures):
    """Hue histograms (core.features.color_hist.ColorHistogram) as a transformer; needs colour images."""

    _core = CoreColorHistogram

    def __init__(self, bins=10, max_memory=DEFAULT_MAX_MEMORY, image_shape=None):
        self.bins = bins
        self.max_memory = max_memory
        self.image_shape = image_shape


class KMeansFeatures(_ImageFeatures):
    """k-means patch features (core.features.kmeans.KMeansFeatures) as a transformer.

    Parameters as in the core, except random_state for its seed (an integer); image_shape
    (H, W, C) when X comes as rows. Memory: fit holds the float32 patch sample
    (num_patches x patch_size**2 x C x 4 bytes) besides max_memory of temporaries.
    """

    _core = CoreKMeansFeatures

    def __init__(self, num_centroids=1600, patch_size=6, stride=1, contrast_eps=10.0, whiten=True, whiten_eps=0.1,
                 num_patches=400_000, iterations=10, encoder="triangle", alpha=0.5, pooling="quadrants",
                 max_memory=DEFAULT_MAX_MEMORY, random_state=0, image_shape=None, mirror=False):
        self.num_centroids = num_centroids
        self.patch_size = patch_size
        self.stride = stride
        self.contrast_eps = contrast_eps
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.num_patches = num_patches
        self.iterations = iterations
        self.encoder = encoder
        self.alpha = alpha
        self.pooling = pooling
        self.mirror = mirror
        self.max_memory = max_memory
        self.random_state = random_state
        self.image_shape = image_shape


class Features(_ImageFeatures):
    """mlcv's feature chain (core.features.chain.FeatureChain): the config's ``features`` list as one transformer.

    steps: a list of (type, params) with type pixels, hog, color_hist or kmeans, applied in
    order and concatenated; standardize: True, False or "auto" (standardise unless every step
    is pixels), as in the config. image_shape (H, W, C) when X comes as rows.
    """

    def __init__(self, steps=(("pixels", {}),), standardize="auto", image_shape=None):
        self.steps = steps
        self.standardize = standardize
        self.image_shape = image_shape

    def _build(self):
        return FeatureChain([(name, dict(params)) for name, params in self.steps], self.standardize)

    def fit(self, X, y=None):
        images = _as_images(self, X, reset=True)
        self.extractor_ = self._build()
        try:
            self.extractor_.fit(images)
        except StepError as exc:
            raise ValueError(f"steps[{exc}") from None
        self._n_features_out = self.extractor_.output_dim(self.image_shape_)
        return self
