"""Seeds and folds as mlcv makes them: random_state to the core's seed, and MlcvCV (mlcv cv's folds and job seeds)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from ..core.model_selection import job_seed, parameter_grid, stratified_kfold


def seed_for(random_state, estimator, cv_fold=None):
    """The core's integer seed for one fit."""
    if isinstance(random_state, MlcvCV):
        return random_state.seed_for(estimator, cv_fold)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be an integer >= 0 (the seed); found {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**32))
    raise ValueError(
        f"random_state must be None, an integer >= 0, a numpy RandomState or Generator, or an MlcvCV; found {random_state!r}."
    )


class MlcvCV(BaseCrossValidator):
    """The folds and per-job seeds of `mlcv cv`, for scikit-learn's model selection.

    `mlcv cv` seeds every (grid point, fold) job on its own, while GridSearchCV fits every
    clone with one random_state; this object gives each fit mlcv's seed instead. As
    ``cv=`` it yields mlcv's stratified, seeded folds (core.model_selection.stratified_kfold
    of the labels y); as a linear estimator's ``random_state`` it picks the seed of the job
    whose grid point matches the estimator's parameters and whose fold is the one missing
    from the ``cv_fold`` fit parameter (each row's fold, which ``fit_params`` supplies). A fit
    on every fold (GridSearchCV's refit) gets the run's seed, as `mlcv cv --refit` does.

    grid: the cv grid as mlcv writes it ({"train.lr": [...], "model.reg": [...]}, keys in
    the same order); n_folds and seed: cv.folds and the config's seed.
    """

    def __init__(self, grid, n_folds=5, seed=0):
        self.grid = grid
        self.n_folds = n_folds
        self.seed = seed

    def split(self, X, y, groups=None):
        """(train indices, validation indices) of each fold, as `mlcv cv` makes them from y (N,)."""
        if y is None:
            raise ValueError("MlcvCV stratifies by class: pass the labels y.")
        yield from stratified_kfold(np.asarray(y), self.n_folds, seed=self.seed)

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_folds

    def fold_ids(self, y):
        """The validation fold of each row: (N,) int64."""
        ids = np.empty(len(y), np.int64)
        for f, (_, val) in enumerate(self.split(None, y)):
            ids[val] = f
        return ids

    def param_grid(self, step=None):
        """The grid with the estimator's parameter names, prefixed by "step__" inside a Pipeline."""
        prefix = f"{step}__" if step else ""
        return {prefix + key.rsplit(".", 1)[-1]: list(values) for key, values in self.grid.items()}

    def fit_params(self, y, step=None):
        """The fit parameters for GridSearchCV.fit(X, y, **...): cv_fold, prefixed inside a Pipeline."""
        return {(f"{step}__" if step else "") + "cv_fold": self.fold_ids(y)}

    def seed_for(self, estimator, cv_fold):
        """The seed of the job whose grid point matches the estimator and whose fold is absent from cv_fold."""
        if cv_fold is None:
            raise ValueError(
                "random_state is an MlcvCV but fit got no cv_fold; call fit(X, y, **mlcv_cv.fit_params(y, step)) "
                "(GridSearchCV passes it on to every fold's fit)"
            )
        params = estimator.get_params()
        names = {key: key.rsplit(".", 1)[-1] for key in self.grid}
        unknown = [key for key, name in names.items() if name not in params]
        if unknown:
            raise ValueError(f"MlcvCV grid keys {', '.join(unknown)} are not parameters of {type(estimator).__name__}.")
        points = [i for i, p in enumerate(parameter_grid(self.grid)) if all(params[names[k]] == v for k, v in p.items())]
        if len(points) != 1:
            raise ValueError(f"{type(estimator).__name__}'s parameters match {len(points)} points of the MlcvCV grid; expected one.")
        missing = np.setdiff1d(np.arange(self.n_folds), np.asarray(cv_fold))
        if missing.size == 0:
            return int(self.seed)
        if missing.size != 1:
            raise ValueError(f"cv_fold lacks folds {missing.tolist()}; a fold's training part lacks exactly one.")
        return job_seed(self.seed, points[0], int(missing[0]))
