import math

import numpy as np
import pytest

from mlcv_cli.core.losses import (LOSSES, penalty_loss, softmax_data_loss, softmax_loss,
                                  svm_data_loss, svm_loss)


def svm_loss_naive(W, X, y, reg, delta=1.0, squared=False):
    """CS231n-style loop reference (l2 penalty)."""
    dW = np.zeros_like(W)
    loss = 0.0
    N, C = X.shape[0], W.shape[1]
    for i in range(N):
        s = X[i] @ W
        for j in range(C):
            if j == y[i]:
                continue
            m = s[j] - s[y[i]] + delta
            if m > 0:
                loss += m * m if squared else m
                g = 2 * m if squared else 1.0
                dW[:, j] += g * X[i]
                dW[:, y[i]] -= g * X[i]
    return loss / N + reg * np.sum(W * W), dW / N + 2 * reg * W


def softmax_loss_naive(W, X, y, reg):
    dW = np.zeros_like(W)
    loss = 0.0
    N, C = X.shape[0], W.shape[1]
    for i in range(N):
        s = X[i] @ W
        s = s - s.max()
        p = np.exp(s) / np.sum(np.exp(s))
        loss -= math.log(p[y[i]])
        for j in range(C):
            dW[:, j] += (p[j] - (j == y[i])) * X[i]
    return loss / N + reg * np.sum(W * W), dW / N + 2 * reg * W


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 15))
    W = 0.1 * rng.standard_normal((15, 6))
    y = rng.integers(0, 6, 40)
    return W, X, y


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("delta", [1.0, 0.3])
def test_svm_loss_matches_loop(problem, squared, delta):
    W, X, y = problem
    loss, dW = svm_loss(W, X, y, 0.2, delta=delta, squared=squared)
    ref_loss, ref_dW = svm_loss_naive(W, X, y, 0.2, delta, squared)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dW, ref_dW, rtol=1e-10, atol=1e-14)


def test_softmax_loss_matches_loop(problem):
    W, X, y = problem
    loss, dW = softmax_loss(W, X, y, 0.2)
    ref_loss, ref_dW = softmax_loss_naive(W, X, y, 0.2)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dW, ref_dW, rtol=1e-10, atol=1e-14)


def test_random_softmax_loss_near_log_c(problem):
    W, X, y = problem
    loss, _ = softmax_loss(W * 1e-4, X, y, 0.0)
    assert loss == pytest.approx(math.log(6), rel=1e-3)


LECTURE_SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
LECTURE_Y = np.array([0, 1, 2])  # cat, car, frog


def test_lecture_svm_example():
    per_example = [svm_data_loss(LECTURE_SCORES[i:i + 1], LECTURE_Y[i:i + 1])[0] for i in range(3)]
    np.testing.assert_allclose(per_example, [2.9, 0.0, 12.9], atol=1e-12)
    loss, _ = svm_data_loss(LECTURE_SCORES, LECTURE_Y)
    assert loss == pytest.approx(5.27, abs=0.005)
    # Same through the (W, X, y, reg) form: X = identity rows, W = scores.
    assert svm_loss(LECTURE_SCORES, np.eye(3), LECTURE_Y, 0.0)[0] == pytest.approx(loss)


def test_lecture_softmax_example_uses_natural_log():
    loss, _ = softmax_data_loss(LECTURE_SCORES[:1], LECTURE_Y[:1])
    assert loss == pytest.approx(2.04, abs=0.005)
    p_cat = math.exp(loss * -1)
    assert p_cat == pytest.approx(0.13, abs=0.001)
    assert -math.log10(p_cat) == pytest.approx(0.89, abs=0.01)  # the slide's number is log10


def test_softmax_stable_with_huge_scores():
    scores = np.array([[1e4, 0.0, -1e4], [1e4, 1e4 - 1, 5.0]])
    loss, d = softmax_data_loss(scores, np.array([2, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx((2e4 + math.log1p(math.exp(-1)) + 1) / 2, rel=1e-12)
    scores32 = scores.astype(np.float32)
    loss32, d32 = softmax_data_loss(scores32, np.array([2, 1]))
    assert np.isfinite(loss32) and d32.dtype == np.float32 and not np.isnan(d32).any()


@pytest.mark.parametrize("name", ["svm", "softmax"])
def test_losses_keep_float32(problem, name):
    W, X, y = problem
    loss, dW = LOSSES[name](W.astype(np.float32), X.astype(np.float32), y, 0.1)
    assert dW.dtype == np.float32
    ref, _ = LOSSES[name](W, X, y, 0.1)
    assert loss == pytest.approx(ref, rel=1e-5)


def test_penalties():
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    loss, d = penalty_loss(W, 0.5, "l2")
    assert loss == pytest.approx(0.5 * 14) and np.allclose(d, W)
    loss, d = penalty_loss(W, 0.5, "l1")
    assert loss == pytest.approx(3.0) and np.allclose(d, 0.5 * np.sign(W))
    loss, d = penalty_loss(W, 0.5, "elasticnet", l1_ratio=0.25)
    assert loss == pytest.approx(0.5 * (0.25 * 6 + 0.75 * 14))
    np.testing.assert_allclose(d, 0.5 * (0.25 * np.sign(W) + 1.5 * W))
    loss, d = penalty_loss(W, 0.5, "none")
    assert loss == 0.0 and not d.any()
    with pytest.raises(ValueError, match="penalty"):
        penalty_loss(W, 0.5, "l3")


def test_l1_penalty_in_loss(problem):
    W, X, y = problem
    base, dbase = svm_loss(W, X, y, 0.0)
    loss, dW = svm_loss(W, X, y, 0.3, penalty="l1")
    assert loss == pytest.approx(base + 0.3 * np.abs(W).sum())
    np.testing.assert_allclose(dW, dbase + 0.3 * np.sign(W))


def test_bad_label_shape():
    with pytest.raises(ValueError, match="shape"):
        svm_data_loss(np.zeros((3, 2)), np.zeros(4, int))
