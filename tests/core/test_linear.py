import json

import numpy as np
import pytest

from mlcv_cli.core.gradcheck import numerical_gradient, relative_error
from mlcv_cli.core.linear import LinearClassifier, LinearSVM, Softmax, TrainingDiverged


def blobs(seed=0, N=300, D=8, C=3):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.standard_normal((C, D))
    y = rng.integers(0, C, N)
    X = centers[y] + rng.standard_normal((N, D))
    return X.astype(np.float32), y


@pytest.mark.parametrize("loss", ["svm", "softmax"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_learns_separable_blobs(loss, optimizer):
    X, y = blobs()
    lr = 0.05 if optimizer in ("sgd", "momentum", "nesterov") else 0.02
    clf = LinearClassifier(loss=loss, optimizer=optimizer, lr=lr, reg=1e-3, epochs=15, batch_size=32)
    assert clf.fit(X, y, num_classes=3) is clf
    assert clf.score(X, y) > 0.9
    assert clf.W_.shape == (8, 3) and clf.b_.shape == (3,) and clf.W_.dtype == np.float32
    assert clf.n_iter_ == 15 * 10 == len(clf.loss_history_)
    assert clf.loss_history_[-1] < clf.loss_history_[0]


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_loss_with_bias_gradient(loss):
    X, y = blobs(1, N=20, D=5)
    X = X.astype(np.float64)
    clf = LinearClassifier(loss=loss, reg=0.1, delta=1.0)
    rng = np.random.default_rng(2)
    W, b = 0.1 * rng.standard_normal((5, 3)), 0.1 * rng.standard_normal(3)
    _, dW, db = clf._loss_grad(W, b, X, y)
    nW = numerical_gradient(lambda w: clf._loss_grad(w, b, X, y)[0], W)
    nb = numerical_gradient(lambda v: clf._loss_grad(W, v, X, y)[0], b)
    assert relative_error(dW, nW).max() < 1e-6
    assert relative_error(db, nb).max() < 1e-6


def test_epoch_callbacks_and_history():
    X, y = blobs(3, N=250)
    steps, epochs = [], []
    clf = Softmax(lr=0.05, epochs=3, batch_size=100, lr_decay=0.5)
    clf.fit(X[:200], y[:200], 3, X_val=X[200:], y_val=y[200:],
            on_step=lambda it, loss: steps.append((it, loss)), on_epoch=epochs.append)
    assert [s[0] for s in steps] == list(range(1, 7))
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert set(epochs[0]) == {"epoch", "iteration", "loss", "lr", "train_acc", "val_acc"}
    assert [e["lr"] for e in epochs] == [0.05, 0.025, 0.0125]
    assert epochs[1]["loss"] == pytest.approx(np.mean([s[1] for s in steps[2:4]]))
    assert epochs[-1]["val_acc"] is not None and clf.epoch_history_ == epochs
    clf.fit(X, y, 3, on_epoch=epochs.append)
    assert epochs[-1]["val_acc"] is None


def test_every_example_once_per_epoch(monkeypatch):
    X, y = blobs(4, N=105)
    seen = []
    clf = Softmax(epochs=2, batch_size=20)
    orig = clf._loss_grad

    def spy(W, b, Xb, yb):
        seen.append(len(yb))
        return orig(W, b, Xb, yb)

    monkeypatch.setattr(clf, "_loss_grad", spy)
    clf.fit(X, y, 3)
    assert seen == [20] * 5 + [5] + [20] * 5 + [5]


PARAMS = [dict(optimizer="sgd", lr_decay=0.9), dict(optimizer="adam", lr=0.01), dict(optimizer="momentum"),
          dict(optimizer="rmsprop", loss="svm", lr=0.01)]


@pytest.mark.parametrize("params", PARAMS)
def test_resume_is_bit_for_bit(params, tmp_path):
    X, y = blobs(5, N=230)
    kw = {"lr": 0.05, "epochs": 4, "batch_size": 50, "seed": 11, "loss": "softmax", **params}
    ref = LinearClassifier(**kw).fit(X, y, 3)
    steps_per_epoch = 5
    for stop_at in (1, 3, steps_per_epoch, 7, 2 * steps_per_epoch, 19):
        clf = LinearClassifier(**kw)
        count = iter(range(1, 10**6))
        clf.fit(X, y, 3, should_stop=lambda: next(count) == stop_at)
        assert clf.stopped_ and clf.n_iter_ == stop_at
        path = tmp_path / f"state{stop_at}.npz"
        np.savez(path, **clf.get_state())
        with np.load(path, allow_pickle=False) as saved:
            resumed = LinearClassifier(**kw).fit(X, y, 3, state=saved)
        assert not resumed.stopped_
        assert np.array_equal(resumed.W_, ref.W_) and np.array_equal(resumed.b_, ref.b_)
        assert resumed.loss_history_ == ref.loss_history_
        assert resumed.epoch_history_ == json.loads(json.dumps(ref.epoch_history_))
        assert resumed.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("params", PARAMS)
def test_resume_from_state_saved_in_on_epoch_is_bit_for_bit(params, tmp_path):
    # The pipeline writes its periodic checkpoints from on_epoch, then the process may die.
    X, y = blobs(5, N=230)
    kw = {"lr": 0.05, "epochs": 4, "batch_size": 50, "seed": 11, "loss": "softmax", **params}
    ref = LinearClassifier(**kw).fit(X, y, 3)
    for epoch in (1, 2, 3):
        saved = {}
        clf = LinearClassifier(**kw)

        def on_epoch(info, clf=clf, saved=saved, epoch=epoch):
            if info["epoch"] == epoch:
                saved.update(clf.get_state())

        clf.fit(X, y, 3, on_epoch=on_epoch)
        path = tmp_path / f"epoch{epoch}.npz"
        np.savez(path, **saved)
        with np.load(path, allow_pickle=False) as state:
            resumed = LinearClassifier(**kw).fit(X, y, 3, state=state)
        assert np.array_equal(resumed.W_, ref.W_) and np.array_equal(resumed.b_, ref.b_)
        assert [e["lr"] for e in resumed.epoch_history_] == [e["lr"] for e in ref.epoch_history_]


def test_resume_random_search():
    X, y = blobs(6, N=100)
    kw = dict(optimizer="random_search", random_search_tries=30, seed=2, init_scale=0.5)
    ref = Softmax(**kw).fit(X, y, 3)
    assert len(ref.loss_history_) == 30
    assert all(a >= b for a, b in zip(ref.loss_history_, ref.loss_history_[1:]))
    count = iter(range(1, 100))
    part = Softmax(**kw).fit(X, y, 3, should_stop=lambda: next(count) == 12)
    resumed = Softmax(**kw).fit(X, y, 3, state=part.get_state())
    assert np.array_equal(resumed.W_, ref.W_) and resumed.loss_history_ == ref.loss_history_


def test_resume_rejects_other_optimizer():
    X, y = blobs(7, N=50)
    state = Softmax(optimizer="adam", epochs=1).fit(X, y, 3).get_state()
    with pytest.raises(ValueError, match="same settings"):
        Softmax(optimizer="sgd").fit(X, y, 3, state=state)


def test_divergence_raises_with_iteration():
    X, y = blobs(8, N=200)
    X = X * 1e3
    clf = LinearSVM(lr=1e30, reg=1e3, epochs=5, batch_size=20)
    with pytest.raises(TrainingDiverged) as info:
        clf.fit(X, y, 3)
    err = info.value
    assert err.iteration is not None and err.iteration >= 1
    assert f"iteration {err.iteration}" in str(err) and "smaller learning rate" in str(err)
    assert len(clf.loss_history_) == err.iteration
    assert clf.loss_history_[-1] == err.loss or not np.isfinite(clf.loss_history_[-1])


def test_predict_proba_and_decision_function():
    X, y = blobs(9)
    for cls in (Softmax, LinearSVM):
        clf = cls(lr=0.05, epochs=3).fit(X, y, 3)
        scores = clf.decision_function(X)
        assert scores.shape == (300, 3)
        np.testing.assert_allclose(scores, X @ clf.W_ + clf.b_, rtol=1e-6)
        p = clf.predict_proba(X)
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(p.argmax(axis=1), clf.predict(X))
    clf.W_ = clf.W_ * 1e6  # huge scores stay finite
    assert np.isfinite(clf.predict_proba(X)).all()


def test_seeded_and_dtype():
    X, y = blobs(10)
    a = Softmax(seed=3, epochs=2).fit(X, y, 3)
    b = Softmax(seed=3, epochs=2).fit(X, y, 3)
    c = Softmax(seed=4, epochs=2).fit(X, y, 3)
    assert np.array_equal(a.W_, b.W_) and not np.array_equal(a.W_, c.W_)
    assert Softmax(dtype="float64", epochs=1).fit(X, y, 3).W_.dtype == np.float64


@pytest.mark.parametrize("bad", [dict(loss="hinge"), dict(optimizer="adamw"), dict(lr=-1.0), dict(batch_size=0),
                                 dict(epochs=1.5), dict(penalty="l3"), dict(dtype="float16"), dict(beta1=1.0)])
def test_hyperparameters_validated_in_fit(bad):
    X, y = blobs(11, N=20)
    clf = LinearClassifier(**bad)  # storing never fails
    with pytest.raises(ValueError):
        clf.fit(X, y, 3)


def test_label_errors():
    X, y = blobs(12, N=20)
    with pytest.raises(ValueError, match="num_classes"):
        Softmax().fit(X, y, num_classes=2)
    with pytest.raises(ValueError, match="shape"):
        Softmax().fit(X, y[:5], 3)
    with pytest.raises(ValueError, match="not fitted"):
        Softmax().predict(X)
    with pytest.raises(ValueError, match="NaN"):
        Softmax().fit(X * np.nan, y, 3)
