"""k-fold cross-validation over a hyperparameter grid: plan (plan.py), jobs (jobs.py), executors that
run them serially, in local processes or on a Dask cluster (executors.py, dask_executor.py), the
journal and results files (journal.py), the run itself (run.py) and the refit of its best setting
(refit.py). Results are returned, never printed.
"""

from .journal import JOBS_FILE, REJECTED_FILE, RESULTS_FILE
from .plan import MAX_JOBS, PLAN_FILE, grid_points, plan_jobs, read_plan
from .refit import refit_best
from .run import cross_validate, grid_edge_warnings, summarise

__all__ = ["JOBS_FILE", "MAX_JOBS", "PLAN_FILE", "REJECTED_FILE", "RESULTS_FILE", "cross_validate", "grid_edge_warnings",
           "grid_points", "plan_jobs", "read_plan", "refit_best", "summarise"]
