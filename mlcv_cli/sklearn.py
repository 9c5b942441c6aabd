"""mlcv's models as scikit-learn estimators (the optional extra ``mlcv[sklearn]``).

The only module of mlcv that imports scikit-learn. Shapes: N examples, D features, C classes.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np

try:
    from sklearn.base import (BaseEstimator, ClassifierMixin, ClassNamePrefixFeaturesOutMixin, OneToOneFeatureMixin,
                              TransformerMixin)
    from sklearn.model_selection import BaseCrossValidator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data
except ImportError as exc:  # the CLI never imports this module; only a user's script does
    raise ImportError(
        f"mlcv_cli.sklearn needs scikit-learn >= 1.6 ({exc}); install it with: pip install 'mlcv[sklearn]'"
    ) from exc

from . import config as config_mod
from .models import modelfile
from .models import registry
from .models.build import estimator_from_file
from .workflow.saved import config_of_model, feature_store_of, locate_model
from .core.features._common import DEFAULT_MAX_MEMORY
from .core.features.chain import FeatureChain, StepError
from .core.features.color_hist import ColorHistogram as CoreColorHistogram
from .core.features.hog import HOG as CoreHOG
from .core.features.kmeans import KMeansFeatures as CoreKMeansFeatures
from .core.features.pixels import Pixels as CorePixels
from .core.knn import KNearestNeighbor
from .core.linear import LinearClassifier
from .core.model_selection import job_seed, parameter_grid, stratified_kfold

__all__ = ["KNNClassifier", "LinearSVMClassifier", "SoftmaxClassifier", "Pixels", "HOGFeatures", "ColorHistogramFeatures",
           "KMeansFeatures", "Features", "MlcvCV", "load"]


def _flatten_images(X):
    # mlcv's images are (N, H, W, 3); a reshape of a C-ordered array is a view, not a copy.
    return X.reshape(X.shape[0], -1) if isinstance(X, np.ndarray) and X.ndim > 2 else X


def _encode_labels(estimator, y):
    """classes_ (C,) sorted, and y as codes 0..C-1 (N,) int64."""
    check_classification_targets(y)
    estimator.classes_, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64)


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """Exact k-nearest-neighbour classifier (mlcv_cli.core.knn.KNearestNeighbor).

    Parameters (the config keys model.k, model.metric, model.max_memory_mb)
    ----------
    k : int, neighbours that vote (>= 1).
    metric : "l2" or "l1".
    max_memory_mb : number, MiB the distance temporaries may use; the search is chunked to it.
    n_jobs : threads for the L1 search and the L2 selection (None: every core).

    Attributes: classes_ (C,), n_features_in_, model_ (the fitted core model).

    X is (N, D) rows or images (N, H, W, C), flattened without a copy.

    Memory: uint8 rows (raw pixels) are searched as given, without a copy when C-contiguous;
    any other dtype is kept as a float32 copy plus a centred float32 copy (8 bytes per
    training value). The wrapper adds only the (M,) label codes; prediction uses
    max_memory_mb of temporaries whatever N is.
    """

    def __init__(self, k=1, metric="l2", max_memory_mb=512, n_jobs=None):
        self.k = k
        self.metric = metric
        self.max_memory_mb = max_memory_mb
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Memorise X (N, D) and labels y (N,) of any type scikit-learn classifies. Returns self."""
        X, y = validate_data(self, _flatten_images(X), y, dtype="numeric")
        codes = _encode_labels(self, y)
        mm = self.max_memory_mb
        if isinstance(mm, bool) or not isinstance(mm, numbers.Real) or not np.isfinite(mm) or mm <= 0:
            raise ValueError(f"max_memory_mb must be a number > 0; found {mm!r}.")
        core = KNearestNeighbor(k=self.k, metric=self.metric, max_memory=max(1, int(mm * 2**20)), n_jobs=self.n_jobs)
        self.model_ = core.fit(X, codes, num_classes=len(self.classes_))
        return self

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, _flatten_images(X), dtype="numeric", reset=False)

    def predict(self, X):
        """Majority label of the k nearest training examples: (N,) of classes_'s type.

        A vote tie goes to the smallest label in classes_ (sorted order).
        """
        X = self._checked(X)
        return self.classes_[self.model_.predict(X)]

    def predict_proba(self, X):
        """Vote fractions (N, C) float64: the share of the k neighbours in each class."""
        X = self._checked(X)
        return self.model_.vote_counts(X) / float(self.model_.k)

    def kneighbors(self, X, k=None):
        """(distances (N, k) float64, indices (N, k) int64 into the training set), nearest first."""
        X = self._checked(X)
        return self.model_.kneighbors(X, k)


class _LinearClassifierBase(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the linear wrappers; subclasses fix the loss and the defaults."""

    _loss = None

    def fit(self, X, y, cv_fold=None):
        """Train on X (N, D) and labels y (N,) of any type scikit-learn classifies. Returns self.

        cv_fold: (N,) each row's fold, only read when random_state is an MlcvCV.
        Raises mlcv_cli.core.linear.TrainingDiverged (an ArithmeticError) when the loss
        becomes NaN or infinite; lower lr.
        """
        X, y = validate_data(self, _flatten_images(X), y, dtype="numeric")
        codes = _encode_labels(self, y)
        params = {name: value for name, value in self.get_params().items() if name != "random_state"}
        if self._loss == "softmax":
            params.update(delta=1.0, squared_hinge=False)  # unused by the softmax loss
        if cv_fold is not None and np.shape(cv_fold) != (X.shape[0],):
            raise ValueError(f"cv_fold must have shape ({X.shape[0]},), one fold per row of X; found {np.shape(cv_fold)}.")
        seed = _seed(self.random_state, self, cv_fold)
        self.model_ = LinearClassifier(loss=self._loss, seed=seed, **params).fit(X, codes, num_classes=len(self.classes_))
        self.n_iter_ = self.model_.n_iter_
        self.loss_history_ = self.model_.loss_history_
        self.seed_ = seed
        return self

    @property
    def coef_(self):
        """Weights (C, D): a transposed view of the core's W_ (D, C), not a copy."""
        check_is_fitted(self)
        return self.model_.W_.T

    @property
    def intercept_(self):
        """Biases (C,)."""
        check_is_fitted(self)
        return self.model_.b_

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, _flatten_images(X), dtype="numeric", reset=False)

    def decision_function(self, X):
        """Class scores X @ W + b: (N, C); for two classes (N,), the second class's score minus the first's."""
        X = self._checked(X)
        scores = self.model_.decision_function(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X):
        """Highest-scoring class of each example: (N,) of classes_'s type (ties to the first class)."""
        X = self._checked(X)
        return self.classes_[self.model_.predict(X)]

    def predict_proba(self, X):
        """Softmax of the scores: (N, C), rows sum to 1 (calibrated probabilities only for softmax)."""
        X = self._checked(X)
        return self.model_.predict_proba(X)


_LINEAR_DOC = """

    Parameters: every hyperparameter of mlcv_cli.core.linear.LinearClassifier, named as the
    config keys (model.reg, model.penalty, ..., train.optimizer, train.lr, ...) with the
    defaults `mlcv train --model {model}` resolves; dtype is the arithmetic precision;
    random_state is the config's seed (an int, the default 0, is used as that seed exactly,
    so a fit equals `mlcv train` with the same seed), None (a fresh seed), a
    numpy RandomState or Generator (a seed drawn from it), or an MlcvCV (the seed `mlcv cv`
    gives the matching (grid point, fold) job).

    Attributes: classes_ (C,), n_features_in_, coef_ (C, D), intercept_ (C,), n_iter_,
    loss_history_, seed_ (the seed used), model_ (the fitted core classifier).

    Memory: the core trains on a C-contiguous copy of X in dtype (4 bytes per value for
    float32) unless X is already one; the wrapper adds only the (N,) label codes.
"""


class LinearSVMClassifier(_LinearClassifierBase):
    _loss = "svm"

    def __init__(self, reg=3e-3, penalty="l2", l1_ratio=0.5, delta=1.0, squared_hinge=False, optimizer="momentum",
                 lr=3e-3, lr_decay=0.85, batch_size=200, epochs=20, momentum=0.9, decay_rate=0.99, beta1=0.9,
                 beta2=0.999, eps=1e-8, init_scale=1e-3, random_search_tries=1000, dtype="float32", random_state=0):
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.delta = delta
        self.squared_hinge = squared_hinge
        self.optimizer = optimizer
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.momentum = momentum
        self.decay_rate = decay_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.init_scale = init_scale
        self.random_search_tries = random_search_tries
        self.dtype = dtype
        self.random_state = random_state


LinearSVMClassifier.__doc__ = "Multiclass SVM (hinge loss) trained by minibatch gradient descent." + _LINEAR_DOC.format(model="svm")


class SoftmaxClassifier(_LinearClassifierBase):
    _loss = "softmax"

    def __init__(self, reg=1e-3, penalty="l2", l1_ratio=0.5, optimizer="momentum", lr=1e-2, lr_decay=0.9,
                 batch_size=200, epochs=20, momentum=0.9, decay_rate=0.99, beta1=0.9, beta2=0.999, eps=1e-8,
                 init_scale=1e-3, random_search_tries=1000, dtype="float32", random_state=0):
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.optimizer = optimizer
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.momentum = momentum
        self.decay_rate = decay_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.init_scale = init_scale
        self.random_search_tries = random_search_tries
        self.dtype = dtype
        self.random_state = random_state


SoftmaxClassifier.__doc__ = "Softmax (cross-entropy) classifier trained by minibatch gradient descent." + _LINEAR_DOC.format(model="softmax")


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
        X = validate_data(self, _flatten_images(X), dtype="numeric")
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
        X = validate_data(self, _flatten_images(X), dtype="numeric", reset=False)
        return self.extractor_.transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The output is float32 whatever comes in (mlcv's models train in float32), so only
        # float32 input keeps its dtype; the default tag (float64) would promise otherwise.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


# -- image features ----------------------------------------------------------------------


def _as_images(estimator, X, reset):
    """X (N, H, W, C) images or (N, H*W*C) rows of pixel values 0..255 -> uint8 images.

    Validation is scikit-learn's on the flattened rows (a view), so its messages and
    n_features_in_ apply; a dtype other than uint8 is converted (a copy) after checking that
    every value is an integer in 0..255.
    """
    shape = tuple(X.shape[1:]) if isinstance(X, np.ndarray) and X.ndim == 4 else None
    rows = validate_data(estimator, _flatten_images(X), dtype="numeric", reset=reset)
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


# -- randomness ---------------------------------------------------------------------------


def _seed(random_state, estimator, cv_fold=None):
    """The core's integer seed for one fit."""
    if isinstance(random_state, MlcvCV):
        return random_state.seed_for(estimator, cv_fold)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be an integer >= 0 (the seed); found {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**32))
    raise ValueError(
        f"random_state must be None, an integer >= 0, a numpy RandomState or Generator, or an MlcvCV; found {random_state!r}."
    )


class MlcvCV(BaseCrossValidator):
    """The folds and per-job seeds of `mlcv cv`, for scikit-learn's model selection.

    `mlcv cv` seeds every (grid point, fold) job on its own, while GridSearchCV fits every
    clone with one random_state; this object gives each fit mlcv's seed instead. As
    ``cv=`` it yields mlcv's stratified, seeded folds (core.model_selection.stratified_kfold
    of the labels y); as a linear estimator's ``random_state`` it picks the seed of the job
    whose grid point matches the estimator's parameters and whose fold is the one missing
    from the ``cv_fold`` fit parameter (each row's fold, which ``fit_params`` supplies). A fit
    on every fold (GridSearchCV's refit) gets the run's seed, as `mlcv cv --refit` does.

    grid: the cv grid as mlcv writes it ({"train.lr": [...], "model.reg": [...]}, keys in
    the same order); n_folds and seed: cv.folds and the config's seed.
    """

    def __init__(self, grid, n_folds=5, seed=0):
        self.grid = grid
        self.n_folds = n_folds
        self.seed = seed

    def split(self, X, y, groups=None):
        """(train indices, validation indices) of each fold, as `mlcv cv` makes them from y (N,)."""
        if y is None:
            raise ValueError("MlcvCV stratifies by class: pass the labels y.")
        yield from stratified_kfold(np.asarray(y), self.n_folds, seed=self.seed)

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_folds

    def fold_ids(self, y):
        """The validation fold of each row: (N,) int64."""
        ids = np.empty(len(y), np.int64)
        for f, (_, val) in enumerate(self.split(None, y)):
            ids[val] = f
        return ids

    def param_grid(self, step=None):
        """The grid with the estimator's parameter names, prefixed by "step__" inside a Pipeline."""
        prefix = f"{step}__" if step else ""
        return {prefix + key.rsplit(".", 1)[-1]: list(values) for key, values in self.grid.items()}

    def fit_params(self, y, step=None):
        """The fit parameters for GridSearchCV.fit(X, y, **...): cv_fold, prefixed inside a Pipeline."""
        return {(f"{step}__" if step else "") + "cv_fold": self.fold_ids(y)}

    def seed_for(self, estimator, cv_fold):
        """The seed of the job whose grid point matches the estimator and whose fold is absent from cv_fold."""
        if cv_fold is None:
            raise ValueError(
                "random_state is an MlcvCV but fit got no cv_fold; call fit(X, y, **mlcv_cv.fit_params(y, step)) "
                "(GridSearchCV passes it on to every fold's fit)"
            )
        params = estimator.get_params()
        names = {key: key.rsplit(".", 1)[-1] for key in self.grid}
        unknown = [key for key, name in names.items() if name not in params]
        if unknown:
            raise ValueError(f"MlcvCV grid keys {', '.join(unknown)} are not parameters of {type(estimator).__name__}.")
        points = [i for i, p in enumerate(parameter_grid(self.grid)) if all(params[names[k]] == v for k, v in p.items())]
        if len(points) != 1:
            raise ValueError(f"{type(estimator).__name__}'s parameters match {len(points)} points of the MlcvCV grid; expected one.")
        missing = np.setdiff1d(np.arange(self.n_folds), np.asarray(cv_fold))
        if missing.size == 0:
            return int(self.seed)
        if missing.size != 1:
            raise ValueError(f"cv_fold lacks folds {missing.tolist()}; a fold's training part lacks exactly one.")
        return job_seed(self.seed, points[0], int(missing[0]))


# -- trained runs -------------------------------------------------------------------------

def _params_from_config(cls, cfg):
    """The wrapper's hyperparameters from a run's config: each parameter takes the model.* or train.*
    key of its name (random_state: the run's seed); the others keep their defaults."""
    flat = config_mod.flatten_config(cfg)
    keys = {key.rsplit(".", 1)[-1]: key for key in flat if key.startswith(("model.", "train."))}
    params = {name: flat[keys[name]] for name in cls().get_params() if name in keys and name != "dtype"}
    if "random_state" in cls().get_params():
        params["random_state"] = cfg.seed
    return params


def load(run_dir):
    """A fitted Pipeline([("features", Features), (model type, classifier)]) from a run of `mlcv train`.

    For kNN on plain pixels the first step is ("pixels", raw rows), as mlcv searches them.

    run_dir: a run directory (or a cv run with a refit, or a model.npz), as `mlcv predict`
    takes it. Its predictions on images (N, H, W, 3) uint8 equal `mlcv predict`'s: the same
    model file, fitted feature chain and core model. classes_ holds the class names; the
    hyperparameters are the run's config. The training data are not needed.
    """
    path, warning = locate_model(Path(run_dir))
    if warning:
        warnings.warn(warning, stacklevel=2)
    mf = modelfile.load(path)
    cfg = config_of_model(mf, path, None)
    core = estimator_from_file(mf, feature_store_of(mf))
    if registry.get(mf.model_type).searches_pixels(mf.chain):
        # mlcv's kNN searches the raw uint8 pixels of a plain pixel chain (a shift and a
        # positive scale change no neighbour), so the queries go in as raw rows too.
        features, D = FunctionTransformer(_flatten_images), mf.chain.output_dim(mf.chain.image_shape_)
        return _fitted_pipeline(mf, cfg, core, ("pixels", features), D)
    spec = mf.chain.spec()
    features = Features(steps=[(step.pop("type"), step) for step in spec["steps"]], standardize=spec["standardize"])
    features.extractor_, features.image_shape_ = mf.chain, tuple(mf.chain.image_shape_)
    features.n_features_in_ = int(np.prod(features.image_shape_))
    features._n_features_out = D = mf.chain.output_dim(features.image_shape_)
    return _fitted_pipeline(mf, cfg, core, ("features", features), D)


def _fitted_pipeline(mf, cfg, core, first_step, D):
    cls = globals()[registry.get(mf.model_type).sklearn_name]
    clf = cls(**_params_from_config(cls, cfg))
    if "random_state" in clf.get_params():
        clf.seed_ = cfg.seed
    clf.model_ = core
    clf.classes_ = np.array(mf.classes)
    clf.n_features_in_ = D
    return Pipeline([first_step, (mf.model_type, clf)])
