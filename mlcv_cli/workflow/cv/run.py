"""k-fold cross-validation over a hyperparameter grid: plan, run (serially, in local
processes, or on a Dask cluster), record, resume, summarise. Returns results; never prints.

A *job* is one fold of one grid point (linear models) or one fold of a group of kNN
points that differ only in k: the group's distances are computed once and every k is
scored from one sorted neighbour list. Each job's seed comes from (run seed, grid point,
fold), so results do not depend on the executor or the order in which jobs finish.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from ... import config as config_mod
from ...config import Config
from ...errors import ConfigError, MlcvError, UsageError
from ...runs import fingerprints
from ...runs.rundir import RunDir, command_line
from ...system.signals import Terminated, sigterm_raises
from .dask_executor import ClusterLost
from .executors import ExecutorLost, executor
from .jobs import job_rows_problem
from .journal import JOBS_FILE, append_job, read_journal, write_results
from .plan import PLAN_FILE, grid_points, plan_jobs, read_plan
from .refit import refit_best

# -- the plan ---------------------------------------------------------------------------


# -- one job ------------------------------------------------------------------------------


# -- executors ------------------------------------------------------------------------------


# -- the run --------------------------------------------------------------------------------


def summarise(points, rows) -> list:
    """Per grid point: params, mean and std of the fold accuracies, sorted best first."""
    by_point = {}
    for r in rows:
        by_point.setdefault(r["point"], []).append(r)
    summary = []
    for i, point in enumerate(points):
        accs = [r["accuracy"] for r in sorted(by_point.get(i, []), key=lambda r: r["fold"])]
        if not accs:
            continue
        summary.append(
            {
                "point": i,
                "params": point,
                "mean": float(np.mean(accs)),
                "std": float(np.std(accs)),
                "folds": accs,
                "time_s": float(sum(r["time_s"] for r in by_point[i])),
            }
        )
    summary.sort(key=lambda s: (-s["mean"], s["std"], s["point"]))
    return summary


def cross_validate(
    cfg: Config | None = None,
    *,
    random_n=None,
    n_jobs=1,
    dask_scheduler=None,
    dask_timeout=None,
    resume_dir=None,
    refit=False,
    progress=None,
    command=None,
    accept_changes=False,
) -> dict:
    """Run (or resume) a cross-validation over cfg.cv.grid; write the run directory.

    A resumed run whose data or plan changed since it started is refused (InputsChanged)
    unless ``accept_changes``.
    """
    with contextlib.ExitStack() as held:  # the run's lock, from the moment the run is known until the end
        return _cross_validate(held, cfg, random_n=random_n, n_jobs=n_jobs, dask_scheduler=dask_scheduler, dask_timeout=dask_timeout,
                               resume_dir=resume_dir, refit=refit, progress=progress, command=command,
                               accept_changes=accept_changes)


def _cross_validate(held, cfg, *, random_n, n_jobs, dask_scheduler, dask_timeout, resume_dir, refit, progress, command, accept_changes):
    from ...data.splits import split_dataset
    from ...models.build import knn_backend_note
    from ...runs.status import mark_run
    from ...system.progress import null_progress
    from ..inputs import data_dir_for, load_dataset, pin_data_location

    progress = progress or null_progress
    if resume_dir is not None:
        run = RunDir(resume_dir)
        held.enter_context(run.locked())  # the first hold removes a killed writer's temporary files
        if not run.file(PLAN_FILE).exists():
            raise UsageError(f"{run.path} is not an `mlcv cv` run directory (no {PLAN_FILE})")
        plan, cfg = read_plan(run)
    else:
        if not cfg.cv.grid:  # neither the config nor --grid names one: the model's usual grid
            cfg = config_mod.replace(cfg, {"cv.grid": config_mod.DEFAULT_GRIDS[cfg.model.type]})
        config_mod.check_grid_for_model(cfg.cv.grid, cfg.model.type)
        cfg = pin_data_location(cfg)
        points = grid_points(cfg.cv.grid, random_n, cfg.seed)
        plan = {"config": cfg.to_dict(), "points": points, "random": random_n}
        run = None

    t0 = time.perf_counter()
    ds = load_dataset(cfg)
    inputs = fingerprints.inputs(ds, plan["config"], plan)
    if run is not None:  # before any work, and before the run is touched
        fingerprints.check(run, inputs, accept=accept_changes)
    # The folds are the validation sets: no data.num_val split is carved (nor demanded).
    splits = split_dataset(config_mod.replace(cfg, {"data.num_val": 0}), ds)
    images, labels = splits.train_x, splits.train_y
    C = len(splits.classes)
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
        warn = f"some classes have fewer images ({present.min()}) than folds ({cfg.cv.folds}); those folds miss the class"
    else:
        warn = None

    if cfg.model.type == "knn":
        smallest_fold_train = len(labels) - math.ceil(len(labels) / cfg.cv.folds)
        k_max = max(p.get("model.k", cfg.model.k) for p in plan["points"])
        if k_max > smallest_fold_train:
            raise ConfigError(
                f"model.k: {k_max} is larger than a fold's training set ({smallest_fold_train} images); "
                "lower the largest k or use fewer folds"
            )

    from ...data.feature_cache import encode_for_cv

    jobs = plan_jobs(cfg, plan["points"])
    from ...system import memory

    # A remote cluster's workers hold their jobs in their own machines' memory.
    workers = max(1, n_jobs) if dask_scheduler in (None, "local") else 0
    memory.check(memory.cv_parts(cfg, plan["points"], len(labels), cfg.cv.folds, images.shape[1:], C, workers, images.nbytes),
                 "this cross-validation")
    features, feature_events = encode_for_cv(cfg, plan["points"], images, data_dir_for(cfg) / "features", progress)
    if getattr(features, "fitted", None):  # learned extractors may come from the cache: the run's own, or refused
        inputs["features"] = fingerprints.of_fitted(features.fitted)
        if run is not None:
            fingerprints.check_features(run, inputs["features"], data_dir_for(cfg) / "features", accept=accept_changes)
    hint = (f"; the finished jobs are kept: resume with `mlcv cv --resume {resume_dir}` and a working --dask-scheduler, "
            "or --jobs N") if resume_dir is not None else ""
    with executor(n_jobs, dask_scheduler, dask_timeout, hint) as execute:
        if run is None:
            run = RunDir.create(cfg.output.dir, f"{cfg.output.name or cfg.name}-cv")
            held.enter_context(run.locked())
            # meta.json (with the input fingerprints) first: a plan is never there without them.
            run.start_meta(command or command_line(), cfg.seed, kind="cv", model=cfg.model.type, dataset=ds.name, jobs=len(jobs),
                           inputs=inputs)
            run.write_text("config.yaml", config_mod.to_yaml(cfg))
            run.write_json(PLAN_FILE, plan)
        if resume_dir is not None:
            run.update_meta(status="running", resumed=command or command_line())
        finished, journal_warning = read_journal(run, jobs, len(plan["points"]))
        todo = [j for j in jobs if j["id"] not in finished]
        bar = progress(len(jobs), f"cv {cfg.model.type} ({len(plan['points'])} points x {cfg.cv.folds} folds)")
        bar.update(len(jobs) - len(todo))

        by_id = {j["id"]: j for j in jobs}

        def on_done(job_id, rows):
            problem = job_rows_problem(by_id[job_id], rows, len(plan["points"])) if job_id in by_id else "not a job of this plan"
            if problem:
                raise MlcvError(f"the result for job {job_id} does not fit the plan ({problem}); nothing from it was recorded")
            finished[job_id] = rows
            append_job(run, job_id, rows)
            bar.update(1, job=job_id, acc=f"{max(r['accuracy'] for r in rows):.3f}" if rows else None)

        try:
            with sigterm_raises():
                execute(todo, plan, (features, labels, C), on_done)
        except KeyboardInterrupt as exc:
            mark_run(run, "interrupted")
            err = MlcvError(f"cross-validation stopped with {len(finished)} of {len(jobs)} jobs done; resume with: mlcv cv --resume {run.path}")
            err.exit_code = 143 if isinstance(exc, Terminated) else 130
            err.run_dir = str(run.path)
            raise err from None
        except ClusterLost as exc:
            mark_run(run, "failed", exc)
            raise ClusterLost(f"{exc}; {len(finished)} of {len(jobs)} jobs are done and kept. Resume with: "
                              f"mlcv cv --resume {run.path} (add --dask-scheduler ADDRESS for a cluster, or --jobs N)") from None
        except (ExecutorLost, MemoryError) as exc:
            reason = str(exc) if isinstance(exc, ExecutorLost) else "ran out of memory"
            mark_run(run, "interrupted", reason)
            err = MlcvError(f"{reason}; {len(finished)} of {len(jobs)} jobs are done and kept in {JOBS_FILE}; "
                            f"resume with: mlcv cv --resume {run.path}" + (" (with fewer --jobs)" if n_jobs > 1 else ""))
            err.run_dir = str(run.path)
            raise err from None
        except BaseException as exc:
            mark_run(run, "failed", exc)
            raise
        finally:
            bar.close()

    missing = [j["id"] for j in jobs if j["id"] not in finished]
    if missing:  # every executor reports every job or raises; this guards the summary
        raise MlcvError(f"{len(missing)} job(s) have no result ({', '.join(missing[:5])}); resume with: mlcv cv --resume {run.path}")
    rows = sorted((r for j in jobs for r in finished[j["id"]]), key=lambda r: (r["point"], r["fold"]))
    write_results(run, plan["points"], rows)
    summary = summarise(plan["points"], rows)
    best = summary[0]
    best_cfg = config_mod.replace(cfg, best["params"])
    run.write_text("best.yaml", config_mod.to_yaml(best_cfg))
    result = {
        "run_dir": str(run.path),
        "model": cfg.model.type,
        "dataset": ds.name,
        "folds": cfg.cv.folds,
        "n_images": int(len(labels)),
        "grid": cfg.cv.grid,
        "random": plan.get("random"),
        "summary": summary,
        "best_params": best["params"],
        "best_mean": best["mean"],
        "best_std": best["std"],
        "jobs": len(jobs),
        "jobs_resumed": len(jobs) - len(todo),
        "time_s": round(time.perf_counter() - t0, 3),
        "warning": "; ".join(w for w in (warn, journal_warning, *grid_edge_warnings(cfg.cv.grid, best["params"], plan.get("random")))
                             if w) or None,
        "feature_cache": feature_events,
        "note": knn_backend_note(
            cfg.model.type == "knn" and any(p.get("model.metric", cfg.model.metric) == "l1" for p in plan["points"])
        ),
    }
    run.write_json("cv_summary.json", result)
    run.update_meta(status="done")
    if refit:
        result["refit"] = refit_best(run.path, progress=progress, dataset=ds, accept_changes=accept_changes)
    return result


def grid_edge_warnings(grid, best_params, random_n=None):
    """For each numeric key whose best value is the grid's smallest or largest: which way to extend it."""
    if random_n:
        return []
    notes = []
    for key, values in grid.items():
        if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        best, low = best_params.get(key), config_mod.KEYS[key]["low"]
        if best == max(values):
            notes.append(f"the best {key}={best:g} is the largest value tried: extend the grid above it")
        elif best == min(values) and not (low is not None and best <= low):
            notes.append(f"the best {key}={best:g} is the smallest value tried: extend the grid below it")
    return notes


