"""A cross-validation run: plan (or read the plan of a run to resume), check the data against it,
encode the features once, run the jobs on the chosen executor with every result journalled,
then summarise, write best.yaml and optionally refit. Returns results; never prints.

A *job* is one fold of one grid point, or one fold of the points a model type scores together
(kNN points that differ only in k share one distance computation). Each job's seed comes from
(run seed, grid point, fold), so results do not depend on the executor or the order in which
jobs finish.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

from ... import config as config_mod
from ...config import Config
from ...data.splits import split_dataset
from ...errors import ConfigError, MlcvError, UsageError
from ...models import registry
from ...runs import fingerprints
from ...runs.rundir import RunDir, command_line
from ...runs.status import mark_run, recorded, refusal_keeps_status
from ...system import memory
from ...system.progress import null_progress
from ...system.signals import Terminated, sigterm_raises
from .. import estimates
from ..features import encode_for_cv
from ..inputs import data_dir_for, load_dataset, pin_data_location
from .dask_executor import ClusterLost
from .executors import ExecutorLost, executor
from .jobs import is_divergence, job_rows_problem
from .journal import JOBS_FILE, append_job, read_journal, write_results
from .plan import PLAN_FILE, grid_points, plan_jobs, read_plan
from .refit import refit_best


def cross_validate(cfg: Config | None = None, *, random_n=None, n_jobs=1, dask_scheduler=None, dask_timeout=None,
                   resume_dir=None, refit=False, progress=None, command=None, accept_changes=False) -> dict:
    """Run (or resume) a cross-validation over cfg.cv.grid; write the run directory.

    A resumed run whose data or plan changed since it started is refused (InputsChanged)
    unless ``accept_changes``.
    """
    progress = progress or null_progress
    with contextlib.ExitStack() as held:  # the run's lock, from the moment the run is known until the end
        if resume_dir is not None:
            run = RunDir(resume_dir)
            held.enter_context(run.locked())  # the first hold removes a killed writer's temporary files
            if not run.file(PLAN_FILE).exists():
                raise UsageError(f"{run.path} is not an `mlcv cv` run directory (no {PLAN_FILE})")
            plan, cfg = read_plan(run)
        else:
            run, cfg, plan = None, *_new_plan(cfg, random_n)
        t0 = time.perf_counter()
        cv = _prepare(cfg, plan, run, n_jobs, dask_scheduler, accept_changes)
        hint = (f"; the finished jobs are kept: resume with `mlcv cv --resume {resume_dir}` and a working --dask-scheduler, "
                "or --jobs N") if resume_dir is not None else ""
        with executor(n_jobs, dask_scheduler, dask_timeout, hint) as execute:
            if run is None:
                run = RunDir.create(cfg.output.dir, f"{cfg.output.name or cfg.name}-cv")
                held.enter_context(run.locked())
                # meta.json (with the input fingerprints) first: a plan is never there without them.
                run.start_meta(command or command_line(), cfg.seed, kind="cv", model=cfg.model.type, dataset=cv.dataset_name,
                               jobs=len(cv.jobs), inputs=cv.inputs)
                run.write_text("config.yaml", config_mod.to_yaml(cfg))
                run.write_json(PLAN_FILE, plan)
            else:
                before = run.status
                run.update_meta(status="running", resumed=command or command_line())
            with recorded(run, interrupted=lambda exc: _stopped(run, cv, exc), out_of_memory=lambda: _lost(run, cv, n_jobs)):
                # In the run: an interrupt while the features are encoded leaves a run to resume,
                # and the feature cache keeps the work done.
                with refusal_keeps_status(run, before) if resume_dir is not None else contextlib.nullcontext():
                    _encode(cfg, plan, run, cv, progress, accept_changes)
                _run_jobs(run, cfg, plan, cv, execute, n_jobs, progress)
                result = _summary(run, cfg, plan, cv, t0)
        if refit:
            result["refit"] = refit_best(run.path, progress=progress, dataset=cv.dataset, accept_changes=accept_changes)
        return result


@dataclass
class _CV:
    """What the jobs of one cross-validation share."""

    dataset: object
    dataset_name: str
    inputs: dict
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    jobs: list
    features: object = None
    feature_events: list = None
    warning: str = None
    finished: dict = None
    journal_warning: str = None
    resumed: int = 0


def _new_plan(cfg, random_n):
    """(config, plan) of a new run: the model's usual grid when none is given, data locations pinned."""
    if not cfg.cv.grid:  # neither the config nor --grid names one: the model's usual grid
        cfg = config_mod.replace(cfg, {"cv.grid": config_mod.DEFAULT_GRIDS[cfg.model.type]})
    config_mod.check_grid_for_model(cfg.cv.grid, cfg.model.type)
    cfg = pin_data_location(cfg)
    points = grid_points(cfg.cv.grid, random_n, cfg.seed)
    return cfg, {"config": cfg.to_dict(), "points": points, "random": random_n}


def _prepare(cfg, plan, run, n_jobs, dask_scheduler, accept_changes) -> _CV:
    """Load and check the data against the plan, and estimate memory."""
    ds = load_dataset(cfg)
    inputs = fingerprints.inputs(ds, plan["config"], plan)
    if run is not None:  # before any work, and before the run is touched
        fingerprints.check(run, inputs, accept=accept_changes)
    # The folds are the validation sets: no data.num_val split is carved (nor demanded).
    splits = split_dataset(config_mod.replace(cfg, {"data.num_val": 0}), ds)
    cv = _CV(ds, ds.name, inputs, splits.train_x, splits.train_y, len(splits.classes), plan_jobs(cfg, plan["points"]))
    cv.warning = _check_folds(cfg, cv.labels, cv.num_classes)
    smallest_fold_train = len(cv.labels) - math.ceil(len(cv.labels) / cfg.cv.folds)
    registry.get(cfg.model.type).check_cv(cfg, plan["points"], smallest_fold_train)
    # A remote cluster's workers hold their jobs in their own machines' memory.
    workers = max(1, n_jobs) if dask_scheduler in (None, "local") else 0
    memory.check(estimates.cv_parts(cfg, plan["points"], len(cv.labels), cfg.cv.folds, cv.images.shape[1:], cv.num_classes, workers,
                                    cv.images.nbytes), "this cross-validation")
    return cv


def _encode(cfg, plan, run, cv, progress, accept_changes):
    """Encode the features once (through the feature cache); a learned extractor from the cache must
    be the run's own (its fingerprint is recorded on the first encoding)."""
    cv.features, cv.feature_events = encode_for_cv(cfg, plan["points"], cv.images, data_dir_for(cfg) / "features", progress)
    if getattr(cv.features, "fitted", None):
        cv.inputs["features"] = fingerprints.of_fitted(cv.features.fitted)
        fingerprints.check_features(run, cv.inputs["features"], data_dir_for(cfg) / "features", accept=accept_changes)


def _check_folds(cfg, labels, C):
    """Refuse folds the classes cannot fill; a warning when some class is smaller than the folds."""
    if cfg.cv.folds > len(labels):
        raise ConfigError(f"cv.folds: {cfg.cv.folds} folds need at least that many images; the training set has {len(labels)}")
    counts = np.bincount(labels, minlength=C)
    present = counts[counts > 0]
    if len(present) < 2:
        raise MlcvError("cross-validation needs at least two classes in the training images; found one")
    if present.max() < cfg.cv.folds:
        raise ConfigError(
            f"cv.folds: {cfg.cv.folds} folds but no class has that many images (the largest has {present.max()}); "
            f"use at most {present.max()} folds (5 or 10 is usual)"
        )
    if present.min() < cfg.cv.folds:
        return f"some classes have fewer images ({present.min()}) than folds ({cfg.cv.folds}); those folds miss the class"
    return None


def _run_jobs(run, cfg, plan, cv, execute, n_jobs, progress):
    """Run every job not in the journal yet, appending each checked result as it arrives."""
    cv.finished, cv.journal_warning = read_journal(run, cv.jobs, len(plan["points"]))
    todo = [j for j in cv.jobs if j["id"] not in cv.finished]
    cv.resumed = len(cv.jobs) - len(todo)
    bar = progress(len(cv.jobs), _jobs_description(cfg, len(plan["points"]), len(cv.jobs)))
    bar.update(cv.resumed)
    by_id = {j["id"]: j for j in cv.jobs}

    def on_done(job_id, rows):
        problem = job_rows_problem(by_id[job_id], rows, len(plan["points"])) if job_id in by_id else "not a job of this plan"
        if problem:
            raise MlcvError(f"the result for job {job_id} does not fit the plan ({problem}); nothing from it was recorded")
        cv.finished[job_id] = rows
        append_job(run, job_id, rows)
        bar.update(1, job=job_id, acc=f"{max(r['accuracy'] for r in rows):.3f}" if rows else None)

    try:
        with sigterm_raises():
            execute(todo, plan, (cv.features, cv.labels, cv.num_classes), on_done)
    except ClusterLost as exc:
        mark_run(run, "failed", exc)
        err = ClusterLost(f"{exc}; {len(cv.finished)} of {len(cv.jobs)} jobs are done and kept. Resume with: "
                          f"mlcv cv --resume {run.path} (add --dask-scheduler ADDRESS for a cluster, or --jobs N)")
        err.run_dir = str(run.path)
        raise err from None
    except ExecutorLost as exc:
        raise _lost(run, cv, n_jobs, str(exc)) from None
    finally:
        bar.close()


def _jobs_description(cfg, n_points, n_jobs):
    """What the progress counts: jobs, and how grid points and folds make them (kNN scores the
    points that differ only in k in one job per fold, so 10 points x 5 folds are 5 jobs)."""
    if n_jobs == n_points * cfg.cv.folds:
        return f"cv {cfg.model.type}: {n_points} points x {cfg.cv.folds} folds = {n_jobs} jobs"
    return f"cv {cfg.model.type}: {n_jobs} jobs ({n_points} points x {cfg.cv.folds} folds; a job scores its fold's points together)"


def _stopped(run, cv, exc):
    """A Ctrl-C or SIGTERM: the finished jobs (or, before them, the features) are kept for `cv --resume`."""
    done = (f"with {len(cv.finished or {})} of {len(cv.jobs)} jobs done" if cv.features is not None else
            "while computing the features; what was done is kept in the feature cache")
    err = MlcvError(f"cross-validation stopped {done}; resume with: mlcv cv --resume {run.path}")
    err.exit_code = 143 if isinstance(exc, Terminated) else 130
    err.run_dir = str(run.path)
    return err


def _lost(run, cv, n_jobs, reason="ran out of memory"):
    """Workers lost (killed, out of memory): the run is interrupted, its finished jobs kept."""
    mark_run(run, "interrupted", reason)
    err = MlcvError(f"{reason}; {len(cv.finished or {})} of {len(cv.jobs)} jobs are done and kept in {JOBS_FILE}; "
                    f"resume with: mlcv cv --resume {run.path}" + (" (with fewer --jobs)" if n_jobs > 1 else ""))
    err.run_dir = str(run.path)
    return err


def _summary(run, cfg, plan, cv, t0):
    """cv_results.csv, best.yaml and cv_summary.json from the finished jobs; the result dict."""
    missing = [j["id"] for j in cv.jobs if j["id"] not in cv.finished]
    if missing:  # every executor reports every job or raises; this guards the summary
        raise MlcvError(f"{len(missing)} job(s) have no result ({', '.join(missing[:5])}); resume with: mlcv cv --resume {run.path}")
    rows = sorted((r for j in cv.jobs for r in cv.finished[j["id"]]), key=lambda r: (r["point"], r["fold"]))
    write_results(run, plan["points"], rows)
    summary = summarise(plan["points"], rows)
    best = summary[0]
    if best["diverged"]:  # summarise puts a point that never diverged first whenever there is one
        raise _all_diverged(run, cfg, summary)
    run.write_text("best.yaml", config_mod.to_yaml(config_mod.replace(cfg, best["params"])))
    # Points within one image's worth of accuracy of the best are as good: the folds cannot tell them apart.
    tied = [s["params"] for s in summary if not s["diverged"] and best["mean"] - s["mean"] < 1 / len(cv.labels)]
    warnings = (cv.warning, cv.journal_warning, *grid_edge_warnings(cfg.cv.grid, best["params"], plan.get("random"), tied))
    result = {
        "run_dir": str(run.path),
        "model": cfg.model.type,
        "dataset": cv.dataset_name,
        "folds": cfg.cv.folds,
        "n_images": int(len(cv.labels)),
        "grid": cfg.cv.grid,
        "random": plan.get("random"),
        "summary": summary,
        "best_params": best["params"],
        "best_mean": best["mean"],
        "best_std": best["std"],
        "jobs": len(cv.jobs),
        "jobs_resumed": cv.resumed,
        "time_s": round(time.perf_counter() - t0, 3),
        "warning": "; ".join(w for w in warnings if w) or None,
        "feature_cache": cv.feature_events,
        "note": "; ".join(n for n in (*cv.dataset.notes, registry.get(cfg.model.type).note(cfg, plan["points"])) if n) or None,
    }
    run.write_json("cv_summary.json", result)
    return result


def summarise(points, rows) -> list:
    """Per grid point: params, mean and std of the fold accuracies, and in how many folds training
    diverged; sorted best first. A point that diverged in any fold comes after every point that
    did not: its score says how the divergence ended, not how good the setting is."""
    by_point = {}
    for r in rows:
        by_point.setdefault(r["point"], []).append(r)
    summary = []
    for i, point in enumerate(points):
        accs = [r["accuracy"] for r in sorted(by_point.get(i, []), key=lambda r: r["fold"])]
        if not accs:
            continue
        diverged = sum(1 for r in by_point[i] if is_divergence(r.get("note")))
        summary.append({"point": i, "params": point, "mean": float(np.mean(accs)), "std": float(np.std(accs)), "folds": accs,
                        "time_s": float(sum(r["time_s"] for r in by_point[i])), "diverged": diverged})
    summary.sort(key=lambda s: (s["diverged"] > 0, -s["mean"], s["std"], s["point"]))
    return summary


def _all_diverged(run, cfg, summary):
    """Every grid point diverged in some fold: there is no best setting to report or refit."""
    folds = sum(len(s["folds"]) for s in summary)
    diverged = sum(s["diverged"] for s in summary)
    lowest = min((s["params"].get("train.lr", cfg.train.lr) for s in summary), default=cfg.train.lr)
    message = (f"training diverged for every grid point, in {diverged} of {folds} fold fits in all; no setting can be called best, so "
               f"no best.yaml was written. Search smaller learning rates (e.g. --grid 'train.lr=logspace(-5,-2,4)'; the lowest "
               f"tried was {lowest:g}) or a stronger model.reg; cv_results.csv in {run.path} has every fold")
    mark_run(run, "failed", "every grid point diverged")
    err = MlcvError(message)
    err.run_dir = str(run.path)
    return err


def grid_edge_warnings(grid, best_params, random_n=None, tied=None):
    """For each numeric key whose best value is the grid's smallest or largest: which way to extend it.

    ``tied``: the params of every point as good as the best (the best's own included). When one of
    them lies inside the grid for a key, the best is not at that key's edge: no warning."""
    if random_n:
        return []
    tied = tied or [best_params]
    notes = []
    for key, values in grid.items():
        if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        best, low = best_params.get(key), config_mod.KEYS[key]["low"]
        found = {p.get(key) for p in tied}
        if found == {max(values)}:
            notes.append(f"the best {key}={best:g} is the largest value tried: extend the grid above it")
        elif found == {min(values)} and not (low is not None and best <= low):
            notes.append(f"the best {key}={best:g} is the smallest value tried: extend the grid below it")
    return notes
