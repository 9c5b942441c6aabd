import numpy as np
import pytest

from mlcv_cli.core.gradcheck import check_loss_gradient, check_mlp_gradient, numerical_gradient, relative_error, verdict


def test_numerical_gradient_of_quadratic_and_restores_x():
    A = np.random.default_rng(0).standard_normal((4, 4))
    x = np.random.default_rng(1).standard_normal((4, 2))
    x0 = x.copy()
    g = numerical_gradient(lambda w: np.sum((A @ w) ** 2), x)
    np.testing.assert_allclose(g, 2 * A.T @ A @ x0, rtol=1e-7)
    assert np.array_equal(x, x0)


def test_numerical_gradient_selected_indices():
    x = np.arange(6.0).reshape(2, 3)
    g = numerical_gradient(lambda w: np.sum(w**3), x, indices=[(1, 2)])
    assert g[1, 2] == pytest.approx(3 * 25, rel=1e-8)
    assert np.count_nonzero(g) == 1


def test_relative_error():
    np.testing.assert_allclose(relative_error([1.0, 0.0, 1.0], [1.0, 0.0, -1.0]), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("reg", [0.0, 0.5])
@pytest.mark.parametrize("penalty", ["l2", "elasticnet"])
def test_softmax_gradient_check(reg, penalty):
    rows = check_loss_gradient("softmax", reg, num_checks=15, seed=2, penalty=penalty)
    assert len(rows) == 15
    assert max(r[3] for r in rows) < 1e-7


def test_svm_gradient_check_away_from_kinks():
    rows = check_loss_gradient("svm", 0.3, num_checks=20, seed=4)
    smooth = [r for r in rows if not r[4]]
    assert len(smooth) >= 15
    assert max(r[3] for r in smooth) < 1e-7


def test_unknown_loss():
    with pytest.raises(ValueError, match="svm"):
        check_loss_gradient("hinge", 0.1)


def test_verdict_ignores_kinks_and_fails_real_errors():
    rows = [((0, 0), 1.0, 1.0, 1e-10, False), ((0, 1), 0.5, 0.0, 1.0, True), ((1, 0), 1.0, 2.0, 0.33, False)]
    notes, worst, passed = verdict(rows)
    assert notes == ["ok", "kink", "FAIL"] and worst == 0.33 and not passed
    assert verdict(rows[:2]) == (["ok", "kink"], 1e-10, True)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("reg,dropout", [(0.0, 0.0), (0.5, 0.0), (0.1, 0.5)])
def test_mlp_gradient_check_covers_every_weight(activation, reg, dropout):
    rows = check_mlp_gradient(reg, num_checks=12, seed=3, activation=activation, dropout=dropout)
    assert [r[0][0] for r in rows] == ["W1"] * 12 + ["b1"] * 10 + ["W2"] * 12 + ["b2"] * 5
    assert all(len(r[0]) == (3 if r[0][0].startswith("W") else 2) for r in rows)
    notes, worst, passed = verdict(rows)
    assert passed and worst < 1e-7 and "kink" not in notes


def test_mlp_gradient_check_flags_relu_kinks_of_the_first_layer_only():
    rows = check_mlp_gradient(0.0, num_checks=30, seed=1, h=0.5)  # steps this large cross many kinks
    kinks = {r[0][0] for r in rows if r[4]}
    assert kinks and kinks <= {"W1", "b1"}
