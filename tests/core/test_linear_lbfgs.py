"""optimizer="lbfgs": its objective's gradient, agreement with scikit-learn, and checkpoints."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlcv_cli.core.linear import LBFGS_MEMORY, LinearClassifier


def _data(N=400, D=12, C=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = np.argmax(X @ rng.standard_normal((D, C)) + 1.5 * rng.standard_normal((N, C)), axis=1)
    return X, y


@pytest.mark.parametrize("loss,squared", [("softmax", False), ("svm", True)])
def test_flat_objective_gradient_matches_numerical(loss, squared):
    X, y = _data(N=60, D=5, C=3)
    clf = LinearClassifier(loss=loss, squared_hinge=squared, reg=0.05, optimizer="lbfgs")
    theta = np.random.default_rng(1).standard_normal(5 * 3 + 3) * 0.3
    f, g = clf._flat_loss_grad(theta, X, y, np.dtype(np.float64))
    h = 1e-6
    numeric = np.array([(clf._flat_loss_grad(theta + h * e, X, y, np.dtype(np.float64))[0]
                         - clf._flat_loss_grad(theta - h * e, X, y, np.dtype(np.float64))[0]) / (2 * h)
                        for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)
    W, b = theta[:15].reshape(5, 3), theta[15:]
    assert f == pytest.approx(clf._objective(W, b, X, y))


@pytest.mark.parametrize("reg", [1e-3, 3e-2])
def test_matches_scikit_learn_logistic_regression(reg):
    X, y = _data()
    N = len(y)
    clf = LinearClassifier(loss="softmax", optimizer="lbfgs", reg=reg, epochs=500, dtype="float64").fit(X, y, num_classes=4)
    # sklearn minimises C * sum_i CE_i + |W|^2 / 2 with the bias unpenalised; mlcv minimises
    # mean_i CE_i + reg * |W|^2: the same minimiser when C = 1 / (2 * reg * N).
    sk = LogisticRegression(C=1 / (2 * reg * N), tol=1e-10, max_iter=10_000).fit(X, y)
    assert clf.converged_ and clf.n_iter_ < 500
    # Stopping at a gradient of 1e-6 leaves the weights within about 1e-6 / (2 reg) of the optimum.
    np.testing.assert_allclose(clf.W_, sk.coef_.T, atol=1e-3)
    # The bias is only defined up to a constant added to every class.
    np.testing.assert_allclose(clf.b_ - clf.b_.mean(), sk.intercept_ - sk.intercept_.mean(), atol=1e-3)
    ours = clf._objective(clf.W_, clf.b_, X, y)
    theirs = clf._objective(sk.coef_.T.copy(), sk.intercept_, X, y)
    assert theirs <= ours <= theirs * (1 + 1e-8)
    np.testing.assert_array_equal(clf.predict(X), sk.predict(X))


def test_float32_reaches_the_float64_optimum():
    X, y = _data(seed=3)
    f64 = LinearClassifier(optimizer="lbfgs", reg=1e-2, epochs=300, dtype="float64").fit(X, y)
    f32 = LinearClassifier(optimizer="lbfgs", reg=1e-2, epochs=300, dtype="float32").fit(X, y)
    np.testing.assert_allclose(f32.W_, f64.W_, atol=2e-3)
    assert f32.W_.dtype == np.float32


def test_beats_minibatch_sgd_on_the_objective():
    X, y = _data(seed=4)
    sgd = LinearClassifier(loss="svm", squared_hinge=True, optimizer="momentum", lr=1e-2, reg=1e-2, epochs=30).fit(X, y)
    lbfgs = LinearClassifier(loss="svm", squared_hinge=True, optimizer="lbfgs", reg=1e-2, epochs=200).fit(X, y)
    X32 = X.astype(np.float32)
    assert lbfgs._objective(lbfgs.W_, lbfgs.b_, X32, y) <= sgd._objective(sgd.W_, sgd.b_, X32, y)


def test_history_has_one_entry_per_iteration():
    X, y = _data(seed=5)
    epochs = []
    clf = LinearClassifier(optimizer="lbfgs", reg=1e-2, epochs=7).fit(X, y, X_val=X[:50], y_val=y[:50], on_epoch=epochs.append)
    assert clf.n_iter_ == len(clf.loss_history_) == len(clf.epoch_history_) == len(epochs) == 7
    assert clf.converged_ is False
    assert all(a >= b for a, b in zip(clf.loss_history_, clf.loss_history_[1:]))
    assert epochs[-1]["val_acc"] is not None


def test_interrupted_and_resumed_run_ends_bit_for_bit_equal(tmp_path):
    X, y = _data(seed=6)
    params = dict(optimizer="lbfgs", reg=1e-3, epochs=25)
    whole = LinearClassifier(**params).fit(X, y)
    calls = []
    part = LinearClassifier(**params).fit(X, y, should_stop=lambda: calls.append(1) or len(calls) >= 12)
    assert part.stopped_ and part.n_iter_ == 12
    np.savez(tmp_path / "state.npz", **part.get_state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as state:
        assert state["lbfgs_s"].shape[0] == min(12, LBFGS_MEMORY)
        resumed = LinearClassifier(**params).fit(X, y, state=state)
    np.testing.assert_array_equal(resumed.W_, whole.W_)
    np.testing.assert_array_equal(resumed.b_, whole.b_)
    assert resumed.loss_history_ == whole.loss_history_


def test_damaged_state_and_nonsmooth_penalty_are_refused():
    X, y = _data(seed=7)
    state = LinearClassifier(optimizer="lbfgs", epochs=3).fit(X, y).get_state()
    state["lbfgs_s"] = state["lbfgs_s"][:, :-1]
    with pytest.raises(ValueError, match="L-BFGS pairs"):
        LinearClassifier(optimizer="lbfgs", epochs=5).fit(X, y, state=state)
    with pytest.raises(ValueError, match="optimizer 'lbfgs' needs a smooth objective"):
        LinearClassifier(optimizer="lbfgs", penalty="l1").fit(X, y)
