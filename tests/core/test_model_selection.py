import numpy as np
import pytest

from mlcv_cli.core.knn import KNearestNeighbor
from mlcv_cli.core.linear import LinearSVM
from mlcv_cli.core.model_selection import clone, job_seed, stratified_kfold


def test_stratified_kfold_properties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 103)
    folds = stratified_kfold(y, 5, seed=3)
    assert len(folds) == 5
    vals = np.concatenate([v for _, v in folds])
    assert np.array_equal(np.sort(vals), np.arange(103))  # disjoint and covering
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    for tr, va in folds:
        assert np.intersect1d(tr, va).size == 0 and tr.size + va.size == 103
    for c in range(4):
        per_fold = [np.sum(y[v] == c) for _, v in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_stratified_kfold_is_seeded():
    y = np.repeat(np.arange(3), 10)
    a = stratified_kfold(y, 3, seed=1)
    b = stratified_kfold(y, 3, seed=1)
    c = stratified_kfold(y, 3, seed=2)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, c))


@pytest.mark.parametrize("n_folds", [1, 0, 11])
def test_stratified_kfold_rejects_bad_fold_counts(n_folds):
    with pytest.raises(ValueError, match="n_folds"):
        stratified_kfold(np.zeros(10, int), n_folds, seed=0)


def test_job_seed_deterministic_and_distinct():
    assert job_seed(0, 1, 2) == job_seed(0, 1, 2)
    seeds = {job_seed(7, p, f) for p in range(5) for f in range(5)}
    assert len(seeds) == 25
    assert isinstance(job_seed(0, 0, 0), int)


def test_params_contract():
    knn = KNearestNeighbor(k=3, metric="l1")
    assert knn.get_params() == {"k": 3, "metric": "l1", "max_memory": 512 * 2**20, "n_jobs": None}
    assert knn.set_params(k=5) is knn and knn.k == 5
    with pytest.raises(ValueError, match="no parameter"):
        knn.set_params(kk=1)
    svm = LinearSVM(lr=0.5)
    assert "loss" not in svm.get_params() and svm.get_params()["lr"] == 0.5
    other = clone(svm, reg=2.0)
    assert isinstance(other, LinearSVM) and other.lr == 0.5 and other.reg == 2.0 and other.loss == "svm"


def test_parameter_grid():
    from mlcv_cli.core.model_selection import parameter_grid

    assert parameter_grid({"k": [1, 3], "metric": ["l1", "l2"]}) == [
        {"k": 1, "metric": "l1"}, {"k": 1, "metric": "l2"}, {"k": 3, "metric": "l1"}, {"k": 3, "metric": "l2"}]
    assert parameter_grid({}) == [{}]
    with pytest.raises(ValueError, match="no values"):
        parameter_grid({"k": []})
