"""A saved model on disk: finding it from a run directory, the config it was trained with, its feature cache."""

from __future__ import annotations

from pathlib import Path

from .. import config as config_mod
from ..data.feature_cache import FeatureStore
from ..errors import ConfigError, MlcvError, ModelFileError
from ..runs.rundir import RunDir
from .inputs import data_dir_for


def locate_model(target) -> tuple:
    """A run directory or a model.npz path -> (model path, warning or None)."""
    target = Path(target)
    if target.is_dir() and not (target / "model.npz").exists() and (target / "refit" / "model.npz").exists():
        target = target / "refit"  # a cv run's refit model
    if target.is_dir():
        path = target / "model.npz"
        run = RunDir(target)
        if not path.exists():
            if run.exists("cv_plan.json"):
                raise MlcvError(_cv_run_advice(target, run))
            raise MlcvError(f"{target} has no model.npz (run status: {run.status}); train it to completion or resume it")
    else:
        path = target
        run = RunDir(target.parent)
    warning = None
    if run.file("meta.json").exists():
        status = run.status
        if status != "done":
            warning = f"run {run.path} has status {status!r}, not done: its model may be incomplete"
            if status == "running" and not run.is_live():  # the lock goes with the process
                warning += " (no process is running it any more: it was killed)"
    return path, warning


def _cv_run_advice(target, run):
    """What to do with a cv run directory that has no model to use."""
    if not run.exists("best.yaml"):
        return f"{target} is a cross-validation run that did not finish (status {run.status}); finish it with `mlcv cv --resume {target}`"
    if (target / "refit").is_dir():
        return f"{target} is a cross-validation run whose refit did not finish; finish it with `mlcv cv --resume {target}`"
    return (
        f"{target} is a cross-validation run with no refit model; refit its best setting with "
        f"`mlcv cv --resume {target} --refit` (or train it: `mlcv train --config {target / 'best.yaml'}`)"
    )


def config_of_model(mf, path, overrides):
    if not mf.config_yaml:
        raise ModelFileError(f"{path} has no saved config; it was not written by `mlcv train`")
    try:
        cfg = config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, f"{path} config"))
    except ConfigError as exc:
        raise MlcvError(f"{path}: the saved config is not valid for this mlcv ({exc})") from None
    if overrides:
        cfg = config_mod.replace(cfg, overrides)
    return cfg


def feature_store_of(mf):
    """The feature cache of the data dir the model was trained with (none if its config is unreadable)."""
    try:
        cfg = config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, "model config"))
    except (ConfigError, TypeError, AttributeError):
        return FeatureStore(None)
    return FeatureStore(data_dir_for(cfg) / "features")
