"""The features a config asks for, for cross-validation: each distinct feature chain of a grid fitted
and encoded once on all cv images (through the feature cache), and each fold's rows cut from them."""

from __future__ import annotations

import json

import numpy as np

from .. import config as config_mod
from ..config.features import build_chain, check_chain
from ..data.feature_cache import EncodedFeatures, FeatureStore, images_fingerprint


def feature_setting(cfg) -> str:
    """The chain's parameters as text: configs with the same text share their encoded features."""
    return json.dumps(build_chain(cfg).spec(), sort_keys=True)


def encode_for_cv(cfg, points, images, directory, progress=None):
    """``images`` as they are when every point's chain is plain pixels (fitted per fold, as
    always); else EncodedFeatures with each distinct chain fitted once on all cv images.

    The extractors are unsupervised, so fitting them on the folds' validation images too
    lets no label through, and it makes a grid over model.*/train.* keys encode once.
    """
    settings = {}
    for point in points:
        point_cfg = config_mod.replace(cfg, point)
        check_chain(point_cfg, images.shape[1:])
        settings.setdefault(feature_setting(point_cfg), point_cfg)
    if all(build_chain(c).pixels_only for c in settings.values()):
        return images, []
    store = FeatureStore(directory)
    encoded = EncodedFeatures()
    images_fp = images_fingerprint(images)
    for setting, point_cfg in settings.items():
        chain, X = store.fit(build_chain(point_cfg), images, progress, what="cv images")
        fitted = chain.fingerprint()
        path = store.features_path(images_fp, fitted) if store.directory else None
        # Workers map the cache file only when its bytes are X's; else X itself travels.
        encoded.add(setting, X, path, fitted, verified=store.verified.get(str(path)))
    return encoded, store.events


def fold_features(cfg, data, train_idx, val_idx):
    """(X_train, X_val) of one fold: sliced from EncodedFeatures, or pixels fitted on the fold's training part."""
    if isinstance(data, EncodedFeatures):
        X = data.get(feature_setting(cfg))
        return np.asarray(X[train_idx]), np.asarray(X[val_idx])
    chain = build_chain(cfg)
    return chain.fit_transform(data[train_idx]), chain.transform(data[val_idx])
