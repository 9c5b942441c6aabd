"""Model selection helpers: stratified k-fold splits, per-job seeds, and the get/set_params contract."""
import inspect

import numpy as np


class ParamsMixin:
    """scikit-learn style get_params/set_params for estimators whose __init__ only stores arguments."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self, deep=True):
        """Hyperparameters as a dict name -> value (deep is accepted for sklearn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyperparameters by name; returns self. Unknown names raise ValueError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters: {', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def clone(estimator, **params):
    """A new unfitted estimator with the same hyperparameters, updated by params."""
    return type(estimator)(**{**estimator.get_params(), **params})


def stratified_kfold(y, n_folds, seed=0):
    """Split indices of y (N,) into n_folds (train_idx, val_idx) pairs, stratified by class.

    Every index is in exactly one validation fold; each class is shuffled (seeded) and dealt
    round-robin over the folds, continuing where the previous class stopped, so fold sizes
    differ by at most one and each class's count per fold differs by at most one.
    Returns a list of n_folds tuples of sorted int64 arrays.
    """
    y = np.asarray(y).ravel()
    N = y.shape[0]
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)):
        raise ValueError(f"n_folds must be an integer; found {n_folds!r}.")
    if n_folds < 2 or n_folds > N:
        raise ValueError(
            f"n_folds must be between 2 and the number of examples ({N}); found {n_folds}. "
            "Use fewer folds or more data."
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    fold_of = np.empty(N, np.int64)
    start = 0
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        members = members[rng.permutation(members.size)]
        fold_of[members] = (start + np.arange(members.size)) % n_folds
        start = (start + members.size) % n_folds
    all_idx = np.arange(N)
    return [(all_idx[fold_of != f], all_idx[fold_of == f]) for f in range(n_folds)]


def job_seed(run_seed, point_index, fold):
    """A deterministic 32-bit seed for one (grid point, fold) job of a run seeded with run_seed."""
    return int(np.random.SeedSequence([int(run_seed), int(point_index), int(fold)]).generate_state(1)[0])


def parameter_grid(grid):
    """Every combination of a dict name -> list of values, as a list of dicts.

    Keys vary slowest in the order given (like nested for-loops), so point indices are stable.
    """
    points = [{}]
    for name, values in grid.items():
        values = list(values)
        if not values:
            raise ValueError(f"grid entry {name!r} has no values; give at least one.")
        points = [{**p, name: v} for p in points for v in values]
    return points
