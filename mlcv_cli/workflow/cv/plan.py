"""The cv plan: grid points (full or random), the jobs they make, and cv_plan.json read back and checked."""

from __future__ import annotations

import json
import math

import numpy as np

from ... import config as config_mod
from ...config import Config
from ...core.model_selection import parameter_grid
from ...errors import ConfigError, MlcvError
from ...models import registry
from ...runs.rundir import RunDir

PLAN_FILE = "cv_plan.json"


# Each job is a fit and a journal line; many folds (leave-one-out on 50,000 images) times many
# points would be hundreds of millions of both.
MAX_JOBS = 200_000


def grid_points(grid: dict, random_n: int | None = None, seed: int = 0) -> list:
    """The full grid as a list of {dotted key: value}, or ``random_n`` random points.

    Random points are drawn per key: positive numbers on a log scale between the
    smallest and largest listed value (integers rounded), anything else from the list.
    """
    if not random_n:
        config_mod.check_grid_size(grid)  # counted before it is expanded
        return parameter_grid(grid)
    keys = list(grid)
    rng = np.random.default_rng([seed, 7])
    points = []
    for _ in range(random_n):
        point = {}
        for key in keys:
            values = grid[key]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric and len(values) > 1 and min(values) > 0:
                lo, hi = math.log10(min(values)), math.log10(max(values))
                v = 10 ** rng.uniform(lo, hi)
                if all(isinstance(x, int) for x in values):
                    v = int(round(v))
                else:
                    v = float(f"{v:.4g}")
                point[key] = v
            else:
                point[key] = values[int(rng.integers(len(values)))]
        points.append(point)
    return points


def plan_jobs(cfg: Config, points: list) -> list:
    """Jobs for every (grid point, fold); points the model type scores together (kNN points that
    differ only in model.k) share one job. More than MAX_JOBS is a ConfigError, counted before
    any job is made."""
    model_type = registry.get(cfg.model.type)
    groups = model_type.cv_groups(points)
    if len(groups) * cfg.cv.folds > MAX_JOBS:
        raise ConfigError(
            f"cv: {len(groups):,} grid point(s) x {cfg.cv.folds:,} folds = {len(groups) * cfg.cv.folds:,} jobs, more than the "
            f"limit of {MAX_JOBS:,}; use fewer folds (5 or 10 is usual) or fewer grid points"
        )
    # Job ids are recorded in jobs.jsonl: g<group> for a type that groups points, p<point> otherwise.
    named = [(f"g{g}" if model_type.groups_cv_points else f"p{members[0]}", members) for g, members in enumerate(groups)]
    return [{"id": f"{name}-f{fold}", "points": members, "fold": fold} for name, members in named for fold in range(cfg.cv.folds)]


def read_plan(run: RunDir):
    """(plan, config) from cv_plan.json, checked: its points must be the ones its own config plans."""
    path = run.file(PLAN_FILE)
    plan = run.read_json(PLAN_FILE)
    fix = "the run directory is damaged or was edited; start a new cv run (best.yaml and config.yaml hold the settings)"
    if not isinstance(plan, dict) or not isinstance(plan.get("config"), dict) or not isinstance(plan.get("points"), list):
        raise MlcvError(f"{path} is not an mlcv cv plan (expected an object with config and points); {fix}")
    random_n = plan.get("random")
    if random_n is not None and (type(random_n) is not int or not 1 <= random_n <= config_mod.MAX_GRID_POINTS):
        raise MlcvError(f"{path}: random is {random_n!r}, expected a whole number from 1 to {config_mod.MAX_GRID_POINTS} or null; {fix}")
    try:
        cfg = config_mod.from_dict(plan["config"])
        expected = grid_points(cfg.cv.grid, random_n, cfg.seed)
    except (MlcvError, TypeError, ValueError) as exc:
        raise MlcvError(f"{path}: the saved config is not valid ({exc}); {fix}") from None
    if not expected or json.dumps(plan["points"], sort_keys=True) != json.dumps(expected, sort_keys=True):
        raise MlcvError(f"{path}: its grid points are not the ones its config's cv.grid gives; {fix}")
    plan["points"] = expected  # values exactly as the grid parser makes them
    return plan, cfg
