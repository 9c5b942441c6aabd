"""Fingerprints of a run's inputs (data, resolved config, cv plan), recorded in meta.json when
the run starts and checked before it is resumed or scored, so nothing mixes two inputs silently.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .. import config as config_mod
from ..data.feature_cache import images_fingerprint
from ..errors import MlcvError


class InputsChanged(MlcvError):
    """The data, config.yaml or cv_plan.json differ from what the run started with."""


def _sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def of_data(ds) -> str:
    """sha256 over the class names and every image and label array (chunked, memmaps welcome)."""

    parts = [_canonical(list(ds.classes))]
    for array in (ds.train_x, ds.train_y, ds.test_x, ds.test_y):
        parts.append("none" if array is None else images_fingerprint(np.asarray(array)))
    return _sha("|".join(parts))


def _flat(d, prefix=""):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _with_current_defaults(values: dict) -> dict:
    """Recorded ``config_values`` as this mlcv resolves them: a parameter added by a newer mlcv
    (absent from a run recorded before it existed) is filled in at its default, which is the
    behaviour the run had, so it is not mistaken for an edit. Values this mlcv would refuse
    are returned as they are (and then compare as edits)."""

    nested = {}
    for key, value in values.items():
        # The known key that names this entry: cv.grid's own keys are dotted ("cv.grid.model.reg").
        known = next((k for k in config_mod.KEYS if key == k or key.startswith(k + ".")), None)
        if known is None:
            return values
        *parents, last = known.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        if key == known:
            node[last] = value
        else:
            node.setdefault(last, {})[key[len(known) + 1:]] = value
    try:
        return _flat(config_mod.from_dict(nested).to_dict())
    except MlcvError:
        return values


def inputs(ds, config_dict, plan=None) -> dict:
    """What meta.json records under "inputs": the fingerprints and the config's values."""
    rec = {"data": of_data(ds), "dataset": ds.name, "config": _sha(_canonical(config_dict)), "config_values": _flat(config_dict)}
    if plan is not None:
        rec["plan"] = _sha(_canonical(plan))
    return rec


def changes(recorded, current, asked=None) -> list:
    """What differs between two ``inputs`` records, in words; [] when nothing does (or nothing was
    recorded). ``asked``: dotted keys set on this command line; their new values are no change."""
    if not isinstance(recorded, dict) or not recorded:
        return []  # a run from before fingerprints: nothing to compare with
    asked = asked or {}
    found = []
    if recorded.get("data") != current["data"]:
        found.append(f"the {current['dataset']} data is not the data the run started with (it was imported again or changed)")
    if "plan" in current and recorded.get("plan") not in (None, current["plan"]):
        found.append("cv_plan.json was edited")
    if recorded.get("config") != current["config"]:
        old = recorded.get("config_values")
        new = current["config_values"]
        if not isinstance(old, dict):
            found.append("the saved config was edited")
        else:
            old = _with_current_defaults(old)
            edits = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k) and not (k in asked and new.get(k) == asked[k])]
            if edits:
                found.append(f"the saved config was edited ({', '.join(edits[:4])}{', ...' if len(edits) > 4 else ''})")
    return found


def check(run, current, *, accept=False, doing="resuming", flag="--accept-changes", asked=None):
    """Refuse (InputsChanged) when ``current`` differs from the run's recorded inputs in more than
    the ``asked`` keys.

    With ``accept`` the run goes on: the new fingerprints are recorded, and what changed
    is kept in meta.json under "inputs_changed". Returns the list of changes.
    """
    meta = run.read_meta()
    recorded = meta.get("inputs")
    found = changes(recorded, current, asked)
    if found and not accept:
        raise InputsChanged(
            f"{run.path}: {'; '.join(found)}; {doing} would mix the two. Restore them, start a new run, "
            f"or go on anyway with {flag}"
        )
    if not isinstance(recorded, dict) or not recorded:
        return found
    # The fitted extractor's fingerprint is known only later (check_features): keep it.
    updated = {**current, **({"features": recorded["features"]} if "features" in recorded else {})}
    if found:
        log = meta.get("inputs_changed") if isinstance(meta.get("inputs_changed"), list) else []
        run.update_meta(inputs=updated, inputs_changed=log + found)
    elif recorded != updated:
        run.update_meta(inputs=updated)  # the keys asked for: later resumes compare with the new config
    return found


def of_fitted(fitted: dict) -> str:
    """One fingerprint for several fitted chains ({setting: chain fingerprint})."""
    return _sha(_canonical(sorted(fitted.items())))


def check_features(run, current, cache_dir, *, accept=False):
    """Refuse (InputsChanged) resuming with a fitted feature extractor other than the run's own
    (``current``: its fingerprint); record it when the run has none yet."""
    meta = run.read_meta()
    recorded = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else None
    if recorded is None or recorded.get("features") == current:
        return
    if recorded.get("features") is not None:
        change = f"the fitted feature extractor read from {cache_dir} is not the one the run started with"
        if not accept:
            raise InputsChanged(
                f"{run.path}: {change} (the feature cache was replaced, or removed and fitted again differently); "
                "resuming would use other features. Restore it, start a new run, or go on anyway with --accept-changes"
            )
        log = meta.get("inputs_changed") if isinstance(meta.get("inputs_changed"), list) else []
        run.update_meta(inputs_changed=log + [change])
    run.update_meta(inputs={**recorded, "features": current})
