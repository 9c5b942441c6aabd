"""Refitting a finished cv run's best setting on all its training images (RUN/refit/, a training run of its own)."""

from __future__ import annotations

from ... import config as config_mod
from ...errors import MlcvError
from ...runs.checkpoints import CHECKPOINT
from ...runs.rundir import RunDir
from ...runs.status import mark_run
from ..resume import resume
from ..train import train
from .plan import read_plan


def refit_best(run_dir, *, progress=None, dataset=None, accept_changes=False) -> dict:
    """Train a finished cv run's best setting on all its training images, in RUN/refit/.

    The refit is a training run of its own (config.yaml, checkpoints, model.npz), so an
    interrupted refit resumes from its checkpoint the next time this is called.
    """
    run = RunDir(run_dir)
    with run.locked():
        return _refit_best(run, progress, dataset, accept_changes)


def _refit_best(run, progress, dataset, accept_changes):
    plan, cfg = read_plan(run)
    summary = run.read_json("cv_summary.json")
    if (not isinstance(summary, dict) or summary.get("best_params") not in plan["points"]
            or type(summary.get("n_images")) is not int or summary["n_images"] < 2):
        raise MlcvError(
            f"{run.file('cv_summary.json')} does not fit the run's plan (best_params must be one of its grid points, "
            f"n_images a count); finish the cv again with `mlcv cv --resume {run.path}` after removing it"
        )
    refit_dir = run.file("refit")
    if refit_dir.is_dir() and RunDir(refit_dir).status == "done" and run.exists("refit_summary.json"):
        done = run.read_json("refit_summary.json")
        if (isinstance(done, dict) and all(type(done.get(k)) is int and done[k] >= 0 for k in ("n_train", "n_val"))
                and isinstance(done.get("run_dir"), str)
                and (done.get("test_accuracy") is None or (isinstance(done["test_accuracy"], (int, float))
                                                          and 0 <= done["test_accuracy"] <= 1))):
            return done
        raise MlcvError(f"{run.file('refit_summary.json')} is not what mlcv wrote (n_train, n_val, test_accuracy, run_dir); "
                        f"remove it and {refit_dir}, then run `mlcv cv --resume {run.path} --refit` to refit again")
    run.update_meta(refit="running")
    try:
        if (refit_dir / CHECKPOINT).exists():
            result = resume(refit_dir, progress=progress, accept_changes=accept_changes)
        else:
            if refit_dir.exists() and any(refit_dir.iterdir()):
                raise MlcvError(f"{refit_dir} holds an unfinished refit without a checkpoint; remove it and run `mlcv cv --resume {run.path} --refit`")
            best_cfg = config_mod.replace(cfg, summary["best_params"])
            # The same images the folds used (the split's permutation is seeded), now all for training.
            refit_cfg = config_mod.replace(best_cfg, {"data.num_train": int(summary["n_images"]), "data.num_val": 0})
            refit_dir.mkdir(exist_ok=True)
            result = train(refit_cfg, progress=progress, run=RunDir(refit_dir), dataset=dataset)
    except BaseException:
        mark_run(run, "done")  # the cross-validation itself finished
        try:
            run.update_meta(refit="interrupted" if RunDir(refit_dir).status == "interrupted" else "failed")
        except MlcvError:
            pass
        raise
    run.write_json("refit_summary.json", result)
    run.update_meta(refit="done")
    return result
