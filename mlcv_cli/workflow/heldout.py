"""Which images `mlcv evaluate` may call a split: the split rebuilt for scoring, compared with the one
the model was trained and held out with, so that no accuracy is reported over images the model
was trained on under the name of a held-out split."""

from __future__ import annotations

import numpy as np

from ..data.splits import split_indices, split_record, test_indices
from ..errors import ConfigError, MlcvError
from ..runs import fingerprints

_SIZES = ("data.num_train", "data.num_val", "data.num_test")


def checked_split(trained_cfg, cfg, ds, split, run, accept_changes):
    """(source, idx) of the images to score as ``split``, and the warnings and notes that say what they are.

    ``trained_cfg`` is the model's config as trained, ``cfg`` with this command's data settings.
    On the data the model was trained with (its recorded fingerprint, or, for a run that
    recorded none, the same dataset) the split must be the one held out at training, or hold
    no image trained on; otherwise it is refused (InputsChanged) unless ``accept_changes``.
    """
    recorded = _recorded_inputs(run)
    own_source = all(getattr(cfg.data, k) == getattr(trained_cfg.data, k) for k in ("dataset", "path", "labels"))
    scored = test_indices(cfg, ds) if split == "test" else split_indices(cfg, ds)[split]
    warnings, notes = [], []
    if recorded.get("data") is not None:
        if recorded["data"] != fingerprints.of_data(ds):
            if not own_source:
                return scored, warnings, notes  # other data, asked for with --data
            message = (f"the {ds.name} data is not the data this model was trained on (it was imported again or changed), so "
                       f"its {split} split would not be the training-time one and may hold images the model was trained on")
            if not accept_changes:
                raise fingerprints.InputsChanged(f"{run.path}: {message}; score it on other data with --data, retrain, or go "
                                                 "on anyway with --accept-changes")
            return scored, [f"the {ds.name} data changed since training: {message}"], notes
    elif not own_source:
        return scored, warnings, notes
    elif run.exists("meta.json"):
        notes.append("the run recorded no fingerprint of its data (an older mlcv): the split is rebuilt from its saved config "
                     "and seed as if the data had not changed")
    trained = _trained_split(trained_cfg, ds, recorded, run)
    problem, note = _compare(split, scored, trained)
    if note:
        notes.append(note)
    if problem:
        changed = [k for k in _SIZES if getattr(cfg.data, k[5:]) != getattr(trained_cfg.data, k[5:])]
        how = f"with {', '.join(f'{k}={getattr(cfg.data, k[5:])}' for k in changed)}" if changed else "here"
        held = "was trained on" if split == "train" else "held out at training"
        message = (f"the {split} split rebuilt {how} is not the one this model {held} "
                   f"({_count(trained[split])} images): {problem}, so its accuracy would not be a {split} accuracy")
        if not accept_changes:
            fix = f"drop {' and '.join(f'--set {k}' for k in changed)} to score the split as trained, " if changed else ""
            raise fingerprints.InputsChanged(f"{run.path}: {message}; {fix}score other data with --data, or go on anyway "
                                             "with --accept-changes")
        warnings.append(message)
    return scored, warnings, notes


def _recorded_inputs(run):
    if not run.exists("meta.json"):
        return {}
    inputs = run.read_meta().get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _trained_split(trained_cfg, ds, recorded, run):
    """The splits as trained, rebuilt from the saved config; checked against what the run recorded of them."""
    try:
        trained = split_indices(trained_cfg, ds)
    except ConfigError as exc:
        raise MlcvError(f"{run.path}: the data does not fit the run's saved split sizes ({exc}); it changed since training: "
                        "retrain, or score other data with --data") from None
    record = recorded.get("splits")
    if isinstance(record, dict) and record and split_record(trained) != record:
        raise MlcvError(f"{run.path}: the splits rebuilt from the run's config are not the ones it recorded at training (this mlcv "
                        "splits differently from the one that trained it); retrain it to score a held-out split")
    return trained


def _count(where):
    return 0 if where is None else len(where[1])


def _compare(split, scored, trained):
    """(problem or None, note or None) of scoring ``scored`` as ``split`` against the splits as trained."""
    if scored is None:
        return None, None
    held = trained[split]
    source, idx = scored
    if held is not None and held[0] == source and np.array_equal(held[1], idx):
        return None, None
    trained_on = np.isin(idx, trained["train"][1]).sum() if source == "train" else 0
    n = len(idx)
    if split == "train":
        if trained_on == n:
            return None, f"the train split rebuilt with these settings is {n} of the {_count(trained['train'])} training images"
        return f"{n - trained_on} of its {n} images were not trained on", None
    if trained_on == 0:
        return None, (f"the {split} split rebuilt with these settings ({n} images) is not the one held out at training "
                      f"({_count(held)} images), but none of its images were trained on")
    return f"{trained_on} of its {n} images were used for training", None
