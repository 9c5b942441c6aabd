"""A trained run of `mlcv train` as a fitted scikit-learn Pipeline (features, then the classifier)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from .. import config as config_mod
from ..models import modelfile, registry
from ..models.build import estimator_from_file
from ..workflow.saved import config_of_model, feature_store_of, locate_model
from .arrays import flatten_images
from .classifiers import WRAPPERS, KNNClassifier
from .features import Features


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
        features, D = FunctionTransformer(flatten_images), mf.chain.output_dim(mf.chain.image_shape_)
        return _fitted_pipeline(mf, cfg, core, ("pixels", features), D)
    spec = mf.chain.spec()
    features = Features(steps=[(step.pop("type"), step) for step in spec["steps"]], standardize=spec["standardize"])
    features.extractor_, features.image_shape_ = mf.chain, tuple(mf.chain.image_shape_)
    features.n_features_in_ = int(np.prod(features.image_shape_))
    features._n_features_out = D = mf.chain.output_dim(features.image_shape_)
    return _fitted_pipeline(mf, cfg, core, ("features", features), D)


def _fitted_pipeline(mf, cfg, core, first_step, D):
    name = registry.get(mf.model_type).sklearn_name
    cls = KNNClassifier if name == KNNClassifier.__name__ else WRAPPERS[name]
    clf = cls(**_params_from_config(cls, cfg))
    if "random_state" in clf.get_params():
        clf.seed_ = cfg.seed
    clf.model_ = core
    clf.classes_ = np.array(mf.classes)
    clf.n_features_in_ = D
    return Pipeline([first_step, (mf.model_type, clf)])
