"""The one-pass L-BFGS objective (core/fused.py) against the NumPy path, and its determinism."""
import numpy as np
import pytest

from mlcv_cli.core import _kernels, _linear_kernels, fused
from mlcv_cli.core.linear import LinearClassifier


def _problem(N, D, C, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, N)
    theta = 0.1 * rng.standard_normal(D * C + C)
    return X, y, theta


HYPER = {
    "softmax": dict(loss="softmax", reg=1e-3),
    "svm": dict(loss="svm", reg=1e-3, delta=1.0),
    "squared_hinge": dict(loss="svm", reg=2e-3, delta=0.5, squared_hinge=True),
}


@pytest.mark.parametrize("loss", list(HYPER))
@pytest.mark.parametrize("N,D,C", [(1, 3, 2), (203, 37, 7), (1030, 64, 10), (2100, 19, 5), (300, 8, 1)])
def test_compiled_equals_reference_in_float64(loss, N, D, C):
    """Float64 products: the same objective and gradient up to summation order. Shapes
    cover a short last block of rows, several chunks, class counts padded to the tile."""
    assert _kernels.available(), _kernels.unavailable_reason()
    X, y, theta = _problem(N, D, C, np.float64, seed=N + D)
    f, g = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])
    f_ref, g_ref = fused.loss_grad_reference(theta, X, y, X.dtype, **HYPER[loss])
    assert f == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-12 * np.abs(g_ref).max())


@pytest.mark.parametrize("loss", ["softmax", "squared_hinge"])  # (the plain hinge's gradient jumps)
def test_compiled_equals_reference_in_float32_to_rounding(loss):
    X, y, theta = _problem(1500, 300, 10, np.float32, seed=3)
    f, g = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])
    f_ref, g_ref = fused.loss_grad_reference(theta, X, y, X.dtype, **HYPER[loss])
    assert f == pytest.approx(f_ref, rel=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5 * np.abs(g_ref).max())


@pytest.mark.parametrize("loss", list(HYPER))
def test_same_bits_on_every_call_and_any_thread_count(loss):
    X, y, theta = _problem(1300, 40, 10, np.float32, seed=5)
    previous = _kernels.set_threads(1)
    try:
        one = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])
        _kernels.set_threads(2)
        two = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])
        again = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])
    finally:
        _kernels.set_threads(previous)
    for other in (two, again):
        assert other[0] == one[0]
        np.testing.assert_array_equal(other[1], one[1])


def test_chunks_depend_on_N_only():
    for N in (1, 7, 256, 257, 8191, 40000, 10**6):
        rows = fused.chunk_rows(N)
        assert rows % 8 == 0 and rows >= fused.MIN_CHUNK_ROWS
        assert -(-N // rows) <= fused.CHUNKS


def test_gradient_matches_numerical_with_padded_classes():
    X, y, theta = _problem(90, 6, 7, np.float64, seed=8)
    for loss in HYPER:
        grad = fused.loss_grad(theta, X, y, X.dtype, **HYPER[loss])[1]
        h = 1e-6
        numeric = [(fused.loss_grad(theta + h * e, X, y, X.dtype, **HYPER[loss])[0]
                    - fused.loss_grad(theta - h * e, X, y, X.dtype, **HYPER[loss])[0]) / (2 * h)
                   for e in np.eye(theta.size)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_other_inputs_and_a_failed_kernel_take_the_numpy_path(monkeypatch):
    X, y, theta = _problem(50, 4, 3, np.float32, seed=9)
    strided = np.asfortranarray(X)
    got = fused.loss_grad(theta, strided, y, X.dtype, **HYPER["softmax"])
    want = fused.loss_grad_reference(theta, strided, y, X.dtype, **HYPER["softmax"])
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    want = fused.loss_grad_reference(theta, X, y, X.dtype, **HYPER["softmax"])
    with pytest.raises(IndexError):  # a label out of range: the NumPy path's error, nothing read past the scores
        fused.loss_grad(theta, X, np.where(y == 0, 3, y), X.dtype, **HYPER["softmax"])

    def broken(*args):
        raise _kernels.KernelFailed("linear_loss_grad: no compiler here")

    monkeypatch.setattr(_linear_kernels, "linear_loss_grad", broken)
    got = fused.loss_grad(theta, X, y, X.dtype, **HYPER["softmax"])
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    # Many classes: the NumPy path; the kernel is not called.

    def must_not_run(*args):
        raise AssertionError("linear_loss_grad ran")

    monkeypatch.setattr(_linear_kernels, "linear_loss_grad", must_not_run)
    X, y, theta = _problem(50, 4, fused.MAX_CLASSES + 1, np.float32, seed=9)
    got = fused.loss_grad(theta, X, y, X.dtype, **HYPER["softmax"])
    want = fused.loss_grad_reference(theta, X, y, X.dtype, **HYPER["softmax"])
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


def test_lbfgs_reaches_the_same_optimum_as_the_numpy_path(monkeypatch):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((900, 30)).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((30, 10)) + rng.standard_normal((900, 10)), axis=1)
    params = dict(optimizer="lbfgs", reg=1e-2, epochs=200)
    compiled = LinearClassifier(**params).fit(X, y, num_classes=10)
    monkeypatch.setattr(_kernels, "available", lambda: False)
    numpy_path = LinearClassifier(**params).fit(X, y, num_classes=10)
    assert compiled.converged_ and numpy_path.converged_
    assert compiled.loss_history_[-1] == pytest.approx(numpy_path.loss_history_[-1], rel=1e-6)
    np.testing.assert_allclose(compiled.W_, numpy_path.W_, atol=2e-3)
    assert compiled.score(X, y) == pytest.approx(numpy_path.score(X, y), abs=2e-3)
