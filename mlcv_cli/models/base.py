"""What a model type tells the rest of mlcv: the contract of the model-type registry.

A model type is one instance of a ModelType subclass, declared in its family's module in this
package (knn.py, linear.py, ...) and listed in that module's ``MODEL_TYPES``; registry.py finds
them. Everything else in mlcv (config checks, the CLI's --model choices, training, cv, model
files, memory estimates, predict, plots, the scikit-learn adapter) asks the type, never compares
its name. ``cfg`` below is a resolved Config; D is the feature dimension, C the number of classes.
"""

from __future__ import annotations

import numpy as np

from ..core.losses import softmax
from ..core.training import TrainingDiverged
from ..errors import ModelFileError
from ..system import threads

DIVERGED = "diverged"
"""How a cv_scores note starts when training diverged on that fold: cv never calls such a setting best."""


def key(default, kind, doc, **limits):
    """A config key a model type introduces: its default, type (int, float, str, bool), a one-line
    description, and limits (choices, low, high, low_open, high_open, nullable, pattern)."""
    spec = dict(default=default, kind=kind, doc=doc, choices=None, low=None, high=None, low_open=False, high_open=False,
                nullable=False, pattern=None)
    unknown = set(limits) - set(spec)
    if unknown:
        raise TypeError(f"unknown key limit(s): {', '.join(sorted(unknown))}")
    spec.update(limits)
    return spec


REG = key(1e-4, float, "regularization strength", low=0.0)
"""model.reg, declared alike by every family that penalises its weights."""
KEEP_BEST = key(False, bool, "keep the weights of the epoch with the best validation accuracy, not the last ones")
"""train.keep_best, declared alike by every family that trains in epochs."""


def finite_scores(values):
    """``values`` when every score is a finite number; a model whose weights overflow float32 is refused."""
    if not np.isfinite(values).all():
        raise ModelFileError(
            "the model's scores for these images are not finite numbers (its weights overflow float32); "
            "the model file is unusable: retrain it"
        )
    return values


def checked_weights(path, data, shapes):
    """The float arrays ``shapes`` ({name: shape}) names from a model file's entries, each checked."""
    missing = [name for name in shapes if name not in data]
    if missing:
        return None, missing
    for name, shape in shapes.items():
        a = data[name]
        if a.shape != tuple(shape) or a.dtype.kind != "f":
            raise ModelFileError(f"{path}: {name} must be floats of shape {tuple(shape)}; found {a.dtype} {a.shape}")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path}: the weights hold NaN or inf; the run that wrote them diverged")
    return {name: data[name] for name in shapes}, []


class ModelType:
    """Base class of the model types; the defaults here suit a model that trains in steps."""

    name = ""
    title = ""
    """How messages name it ("kNN"); the name when empty."""
    summary = ""
    """One line: what the model is (--help, `mlcv configs`)."""
    keys: dict = {}
    """Config keys this type introduces: {"model.k": key(...)}; "train.*" keys too."""
    uses: frozenset = frozenset()
    """The searchable keys it reads (a grid or --set of any other model key is refused); "train.*" means every train key."""
    defaults: dict = {}
    """Values that suit it out of the box, applied under the config file: {"model.reg": 1e-3, "name": ...}."""
    default_grid: dict = {}
    """What `mlcv cv --model NAME` searches when no grid is given."""
    score_kind = "score"
    """What predict shows per class: "votes", "score" or "probability"."""
    iterative = True
    """Trained in steps and epochs: history.csv, checkpoints, `train --resume`."""
    keeps_training_images = False
    """The model file stores the training images (scoring it on them says nothing)."""
    plots: tuple = ()
    """Model-specific plots it offers: "loss", "weights" (first-layer weights as images), "neighbors"."""
    weights_title = "weights"
    sklearn_name = None
    """The scikit-learn adapter's class name for it (None: the adapter does not wrap it)."""

    # -- building and fitting ------------------------------------------------------------

    def build(self, cfg):
        """A new, unfitted core estimator for the config."""
        raise NotImplementedError

    def validate(self, cfg):
        """Refuse (ConfigError) a resolved config whose keys do not go together for this type."""

    def check(self, cfg, n_train):
        """Refuse (ConfigError) a config that cannot work with ``n_train`` training images."""

    def check_cv(self, cfg, points, smallest_fold_train):
        """Refuse a cv plan that cannot work with folds of ``smallest_fold_train`` training images."""

    def searches_pixels(self, chain) -> bool:
        """True when the model can use the raw uint8 pixel rows instead of the chain's features."""
        return False

    def param_shapes(self, cfg, D, C) -> dict:
        """{parameter name: shape} of a fitted model, as its training state stores them (checkpoints)."""
        raise NotImplementedError

    # -- model files --------------------------------------------------------------------

    def arrays(self, cfg, est, splits) -> dict:
        """The arrays a model file stores for a fitted estimator."""
        raise NotImplementedError

    def check_arrays(self, path, data, D, C, pixels_dim) -> dict:
        """The checked arrays of a model file's entries ``data`` (ModelFileError naming what is wrong)."""
        raise NotImplementedError

    def from_arrays(self, arrays, C, rows, config_yaml):
        """A fitted estimator from a model file's checked arrays; ``rows(images)`` gives the features
        of uint8 images (for models that keep their training images)."""
        raise NotImplementedError

    # -- scoring --------------------------------------------------------------------------

    def fit_threads(self, cfg):
        """BLAS threads while fitting (None: every core); see system/threads.py."""
        return None

    def predict(self, est, X):
        """Predicted class indices (N,) for rows X (N, D)."""
        # argmax of NaN scores is class 0: a wrong answer, not a result.
        return np.argmax(finite_scores(est.decision_function(X)), axis=1)

    def values(self, est, X):
        """Per-class values (N, C) that predict shows (kind: score_kind)."""
        scores = finite_scores(est.decision_function(X))
        # finite scores give finite probabilities (predict_proba's own function, on the checked scores)
        return softmax(scores) if self.score_kind == "probability" else scores

    def note(self, cfg, points=()) -> str | None:
        """A one-line note about how a run of ``cfg`` (and cv grid ``points``) ran, or None."""
        return None

    def estimator_note(self, est) -> str | None:
        """A one-line note about how a fitted estimator searches or scores (a slower fallback path), or None."""
        return None

    def predict_note(self, arrays, top) -> str | None:
        """A note on `mlcv predict --top` for this model's file, or None."""
        return None

    def weight_images(self, arrays, image_shape):
        """(images (K, H, W, channels), titles) of the weights that are images, or None."""
        return None

    # -- cross-validation -----------------------------------------------------------------

    groups_cv_points = False
    """cv_groups may put several grid points in one job (their job ids, kept in jobs.jsonl, are g<n>, not p<n>)."""

    def cv_groups(self, points) -> list:
        """Indices of grid points scored together in one job (default: each point alone)."""
        return [[i] for i in range(len(points))]

    def cv_scores(self, cfgs, X_train, y_train, X_val, y_val, C, blas_threads=None) -> list:
        """[(accuracy, note)] for each config of one job (a group from cv_groups) on one fold; a
        model that trains in steps is fitted per config, and one that diverges scores 0 with a
        note that starts with DIVERGED."""
        out = []
        for cfg in cfgs:
            est = self.build(cfg)
            try:
                with threads.blas_threads(self.fit_threads(cfg)):
                    est.fit(X_train, y_train, num_classes=C)
                out.append((float(np.mean(self.predict(est, X_val) == y_val)), ""))
            except TrainingDiverged as exc:  # a diverging grid point scores 0, the search goes on
                out.append((0.0, f"{DIVERGED}: {exc}"))
        return out

    # -- resources -------------------------------------------------------------------------

    def memory_parts(self, cfg, n_train, D, C, raw_pixels, n_queries) -> list:
        """[(what, bytes, fix)] that fitting and scoring hold besides the input rows."""
        return []

    # -- the gradient check ----------------------------------------------------------------

    gradcheck_penalties: tuple = ()
    """Penalties `mlcv gradcheck` offers for it (empty: the type has no gradient to check)."""

    def gradcheck(self, reg, checks, seed, penalty):
        """Rows (index, analytic, numerical, relative error, near_kink) of a numerical gradient check."""
        raise NotImplementedError
