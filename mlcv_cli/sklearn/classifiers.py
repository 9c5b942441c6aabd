"""mlcv's classifiers as scikit-learn estimators: KNNClassifier, and one class per model type that
trains in steps, made from the model registry (LinearSVMClassifier, SoftmaxClassifier,
MLPClassifier, ...): its hyperparameters and defaults are those `mlcv train --model NAME` resolves."""

from __future__ import annotations

import inspect
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import config as config_mod
from ..core.knn import KNearestNeighbor
from ..models import registry
from .arrays import encode_labels, flatten_images
from .selection import seed_for


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
        X, y = validate_data(self, flatten_images(X), y, dtype="numeric")
        codes = encode_labels(self, y)
        mm = self.max_memory_mb
        if isinstance(mm, bool) or not isinstance(mm, numbers.Real) or not np.isfinite(mm) or mm <= 0:
            raise ValueError(f"max_memory_mb must be a number > 0; found {mm!r}.")
        core = KNearestNeighbor(k=self.k, metric=self.metric, max_memory=max(1, int(mm * 2**20)), n_jobs=self.n_jobs)
        self.model_ = core.fit(X, codes, num_classes=len(self.classes_))
        return self

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, flatten_images(X), dtype="numeric", reset=False)

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


class GradientClassifier(ClassifierMixin, BaseEstimator):
    """The fit/predict every stepwise model's wrapper shares; a subclass made by ``wrapper_for``
    fixes the model type (``model_type``) and the core estimator with its defaults (``template``)."""

    model_type = None
    template = None

    def fit(self, X, y, cv_fold=None):
        """Train on X (N, D) and labels y (N,) of any type scikit-learn classifies. Returns self.

        cv_fold: (N,) each row's fold, only read when random_state is an MlcvCV.
        Raises mlcv_cli.core.training.TrainingDiverged (an ArithmeticError) when the loss
        becomes NaN or infinite; lower lr.
        """
        X, y = validate_data(self, flatten_images(X), y, dtype="numeric")
        codes = encode_labels(self, y)
        if cv_fold is not None and np.shape(cv_fold) != (X.shape[0],):
            raise ValueError(f"cv_fold must have shape ({X.shape[0]},), one fold per row of X; found {np.shape(cv_fold)}.")
        seed = seed_for(self.random_state, self, cv_fold)
        params = {**self.template.get_params(), **{k: v for k, v in self.get_params().items() if k != "random_state"}, "seed": seed}
        self.model_ = type(self.template)(**params).fit(X, codes, num_classes=len(self.classes_))
        self.n_iter_ = self.model_.n_iter_
        self.loss_history_ = self.model_.loss_history_
        self.seed_ = seed
        return self

    @property
    def coef_(self):
        """Weights (C, D) of a linear model: a transposed view of the core's W_ (D, C), not a copy."""
        check_is_fitted(self)
        if not hasattr(self.model_, "W_"):
            raise AttributeError(f"a {self.model_type} model has no coef_ (it is not linear)")
        return self.model_.W_.T

    @property
    def intercept_(self):
        """Biases (C,) of a linear model."""
        check_is_fitted(self)
        if not hasattr(self.model_, "b_"):
            raise AttributeError(f"a {self.model_type} model has no intercept_ (it is not linear)")
        return self.model_.b_

    def _checked(self, X):
        check_is_fitted(self)
        return validate_data(self, flatten_images(X), dtype="numeric", reset=False)

    def decision_function(self, X):
        """Class scores: (N, C); for two classes (N,), the second class's score minus the first's."""
        X = self._checked(X)
        scores = self.model_.decision_function(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict(self, X):
        """Highest-scoring class of each example: (N,) of classes_'s type (ties to the first class)."""
        X = self._checked(X)
        return self.classes_[self.model_.predict(X)]

    def predict_proba(self, X):
        """Softmax of the scores: (N, C), rows sum to 1 (calibrated probabilities only for a softmax output)."""
        X = self._checked(X)
        return self.model_.predict_proba(X)


_DOC = """{summary}

    Parameters: every hyperparameter of the core model ({core}) that the model type reads, named
    as the config keys (model.reg, ..., train.optimizer, train.lr, ...) with the defaults
    `mlcv train --model {name}` resolves; dtype is the arithmetic precision; random_state is the
    config's seed (an int, the default 0, is used as that seed exactly, so a fit equals
    `mlcv train` with the same seed), None (a fresh seed), a numpy RandomState or Generator (a
    seed drawn from it), or an MlcvCV (the seed `mlcv cv` gives the matching (grid point, fold) job).

    Attributes: classes_ (C,), n_features_in_, n_iter_, loss_history_, seed_ (the seed used),
    model_ (the fitted core model); coef_ (C, D) and intercept_ (C,) for a linear model.

    Memory: the core trains on a C-contiguous copy of X in dtype (4 bytes per value for
    float32) unless X is already one; the wrapper adds only the (N,) label codes.
"""


def wrapper_for(model_type):
    """A GradientClassifier subclass for a registered model type that trains in steps.

    Its __init__ takes the core estimator's hyperparameters that the type reads (a parameter
    whose model.*/train.* key the type does not use is left out), plus dtype and random_state,
    with the defaults `mlcv train --model NAME` resolves.
    """
    template = model_type.build(config_mod.resolve(model_type=model_type.name))
    used = config_mod.KEYS_USED_BY[model_type.name]
    keys = config_mod.KEYS

    def reads(param):
        return param not in ("loss", "seed") and (f"model.{param}" in used or f"train.{param}" in used
                                                   or (f"model.{param}" not in keys and f"train.{param}" not in keys))

    defaults = {name: value for name, value in template.get_params().items() if reads(name)}
    signature = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=value)
        for name, value in {**defaults, "random_state": 0}.items()])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    name = model_type.sklearn_name
    cls = type(name, (GradientClassifier,), {
        "__init__": __init__, "__module__": __name__, "__qualname__": name, "model_type": model_type.name, "template": template,
        "__doc__": _DOC.format(summary=model_type.summary[0].upper() + model_type.summary[1:] + ".", core=type(template).__name__,
                               name=model_type.name),
    })
    return cls


WRAPPERS = {t.sklearn_name: wrapper_for(t) for t in registry.types() if t.iterative and t.sklearn_name}
globals().update(WRAPPERS)  # picklable by name: mlcv_cli.sklearn.classifiers.<Name>
