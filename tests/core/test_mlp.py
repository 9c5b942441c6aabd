import json

import numpy as np
import pytest

from mlcv_cli.core.gradcheck import loss_floor, numerical_gradient, relative_error
from mlcv_cli.core.linear import LinearClassifier
from mlcv_cli.core.mlp import TwoLayerNet, two_layer_loss
from mlcv_cli.core.model_selection import clone
from mlcv_cli.core.training import TrainingDiverged

WEIGHTS = ("W1", "b1", "W2", "b2")


def loop_two_layer_loss(params, X, y, reg, activation="relu", leaky_slope=0.01, dropout_mask=None):
    """The reference: one example at a time, forward then backward, in float64."""
    W1, b1, W2, b2 = (np.asarray(params[k], np.float64) for k in WEIGHTS)
    N = X.shape[0]
    grads = {k: np.zeros_like(w) for k, w in zip(WEIGHTS, (W1, b1, W2, b2))}
    loss = 0.0
    for i in range(N):
        z = X[i] @ W1 + b1
        slope = np.where(z > 0, 1.0, leaky_slope if activation == "leaky_relu" else 0.0)
        keep = 1.0 if dropout_mask is None else dropout_mask[i]
        hidden = z * slope * keep
        scores = hidden @ W2 + b2
        p = np.exp(scores - scores.max())
        p /= p.sum()
        loss -= np.log(p[y[i]]) / N
        dscores = p.copy()
        dscores[y[i]] -= 1
        dscores /= N
        grads["W2"] += np.outer(hidden, dscores)
        grads["b2"] += dscores
        dz = (W2 @ dscores) * keep * slope
        grads["W1"] += np.outer(X[i], dz)
        grads["b1"] += dz
    loss += reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    grads["W1"] += 2 * reg * W1
    grads["W2"] += 2 * reg * W2
    return loss, grads


def small_problem(seed=0, N=9, D=6, H=7, C=4, dropout=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = {"W1": 0.5 * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
              "W2": 0.5 * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}
    mask = None
    if dropout:
        mask = (rng.random((N, H)) >= dropout) / (1 - dropout)
    return params, X, y, mask


def xor_blobs(seed=0, N=200):
    """Four blobs at the corners of a square, the opposite corners sharing a class: no line separates them."""
    rng = np.random.default_rng(seed)
    corner = rng.integers(0, 4, N)
    centers = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]])
    X = centers[corner] + 0.6 * rng.standard_normal((N, 2))
    return X.astype(np.float32), (corner >= 2).astype(np.int64)


def blobs(seed=0, N=120, D=6, C=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    X = 1.5 * rng.standard_normal((C, D))[y] + rng.standard_normal((N, D))
    return X.astype(np.float32), y


CASES = [(act, reg, dropout) for act in ("relu", "leaky_relu") for reg in (0.0, 0.3) for dropout in (None, 0.4)]


@pytest.mark.parametrize("activation,reg,dropout", CASES)
def test_vectorized_loss_matches_the_loop_reference(activation, reg, dropout):
    params, X, y, mask = small_problem(1, dropout=dropout)
    loss, grads = two_layer_loss(params, X, y, reg, activation, 0.05, mask)
    ref_loss, ref_grads = loop_two_layer_loss(params, X, y, reg, activation, 0.05, mask)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in WEIGHTS:
        assert grads[k].shape == params[k].shape
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation,reg,dropout", CASES)
def test_gradients_match_centred_differences(activation, reg, dropout):
    params, X, y, mask = small_problem(2, dropout=dropout)
    loss, grads = two_layer_loss(params, X, y, reg, activation, 0.05, mask)
    for k in WEIGHTS:
        def f(w, k=k):
            return two_layer_loss({**params, k: w}, X, y, reg, activation, 0.05, mask)[0]

        numeric = numerical_gradient(f, params[k])
        # Entries below the differences' rounding noise are judged by their absolute error (loss_floor).
        assert relative_error(grads[k], numeric, tiny=loss_floor(loss)).max() < 1e-7, k


def test_float32_loss_stays_float32_and_close_to_float64():
    params, X, y, _ = small_problem(3, N=50, D=20, H=30, C=5)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    loss32, g32 = two_layer_loss(p32, X.astype(np.float32), y, 0.1)
    loss64, g64 = two_layer_loss(params, X, y, 0.1)
    assert all(g.dtype == np.float32 for g in g32.values())
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for k in WEIGHTS:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_lbfgs_objective_gradient_matches_numerical(activation):
    X, y = blobs(4, N=30, D=4)
    net = TwoLayerNet(hidden_size=5, reg=0.05, activation=activation, leaky_slope=0.1, optimizer="lbfgs",
                      dtype="float64", epochs=0).fit(X, y, 3)
    theta = np.random.default_rng(1).standard_normal(4 * 5 + 5 + 5 * 3 + 3) * 0.5
    X64 = X.astype(np.float64)
    f, g = net._flat_loss_grad(theta, X64, y, np.dtype(np.float64))
    numeric = numerical_gradient(lambda t: net._flat_loss_grad(t, X64, y, np.dtype(np.float64))[0], theta)
    assert relative_error(g, numeric, tiny=loss_floor(f)).max() < 1e-7
    params = net._unflatten(theta, np.dtype(np.float64))
    assert f == pytest.approx(two_layer_loss(params, X64, y, 0.05, activation, 0.1)[0], rel=1e-12)


# ---------------------------------------------------------------------- the estimator
@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("momentum", 0.05), ("adam", 0.01), ("lbfgs", 1.0)])
def test_learns_what_a_linear_model_cannot(optimizer, lr):
    X, y = xor_blobs()
    assert LinearClassifier(optimizer="lbfgs", epochs=100).fit(X, y).score(X, y) < 0.75
    net = TwoLayerNet(hidden_size=16, optimizer=optimizer, lr=lr, epochs=30 if optimizer != "lbfgs" else 100,
                      batch_size=20, seed=1)
    assert net.fit(X, y) is net
    assert net.score(X, y) > 0.9
    assert net.W1_.shape == (2, 16) and net.b1_.shape == (16,) and net.W2_.shape == (16, 2) and net.b2_.shape == (2,)
    assert all(getattr(net, k + "_").dtype == np.float32 for k in WEIGHTS)
    assert net.n_iter_ == len(net.loss_history_) and net.loss_history_[-1] < net.loss_history_[0]
    assert net.converged_ is (None if optimizer != "lbfgs" else True)


def test_dropout_and_leaky_relu_learn_too():
    X, y = xor_blobs(1)
    net = TwoLayerNet(hidden_size=32, activation="leaky_relu", dropout=0.3, optimizer="adam", lr=0.01,
                      epochs=30, batch_size=20).fit(X, y)
    assert net.score(X, y) > 0.9


def test_predict_proba_and_scores_never_use_dropout():
    X, y = blobs(5)
    net = TwoLayerNet(hidden_size=10, dropout=0.5, lr=0.05, epochs=3, batch_size=30).fit(X, y, 3)
    p = net.predict_proba(X)
    assert p.shape == (120, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(p.argmax(axis=1), net.predict(X))
    hidden = np.maximum(X @ net.W1_ + net.b1_, 0)
    np.testing.assert_allclose(net.decision_function(X), hidden @ net.W2_ + net.b2_, rtol=1e-5, atol=1e-6)
    assert np.array_equal(net.decision_function(X), net.decision_function(X))
    last = net.epoch_history_[-1]
    assert last["train_acc"] == net.score(X, y)  # 120 rows: the accuracy sample is all of them
    net.W2_ = net.W2_ * 1e6  # huge scores stay finite probabilities
    assert np.isfinite(net.predict_proba(X)).all()


def test_epoch_callbacks_history_and_lr_decay():
    X, y = blobs(6, N=150)
    steps, epochs = [], []
    net = TwoLayerNet(hidden_size=8, lr=0.05, lr_decay=0.5, epochs=3, batch_size=50)
    net.fit(X[:100], y[:100], 3, X_val=X[100:], y_val=y[100:],
            on_step=lambda it, loss: steps.append((it, loss)), on_epoch=epochs.append)
    assert [s[0] for s in steps] == list(range(1, 7))
    assert set(epochs[0]) == {"epoch", "iteration", "loss", "lr", "train_acc", "val_acc"}
    assert [e["lr"] for e in epochs] == [0.05, 0.025, 0.0125]
    assert epochs[1]["loss"] == pytest.approx(np.mean([s[1] for s in steps[2:4]]))
    assert epochs[-1]["val_acc"] is not None and net.epoch_history_ == epochs
    assert net.best_epoch_ is None


def test_init_schemes_seeds_and_dtype():
    X, y = blobs(7, N=60, D=400)
    he = TwoLayerNet(hidden_size=300, epochs=0).fit(X, y, 3)
    assert he.W1_.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert he.W2_.std() == pytest.approx(np.sqrt(2 / 300), rel=0.1)
    assert not he.b1_.any() and not he.b2_.any()
    scaled = TwoLayerNet(hidden_size=300, init="scale", init_scale=0.01, epochs=0).fit(X, y, 3)
    assert scaled.W1_.std() == pytest.approx(0.01, rel=0.02)
    a = TwoLayerNet(hidden_size=5, seed=3, epochs=2, dropout=0.2).fit(X, y, 3)
    b = TwoLayerNet(hidden_size=5, seed=3, epochs=2, dropout=0.2).fit(X, y, 3)
    c = TwoLayerNet(hidden_size=5, seed=4, epochs=2, dropout=0.2).fit(X, y, 3)
    assert np.array_equal(a.W1_, b.W1_) and not np.array_equal(a.W1_, c.W1_)
    assert TwoLayerNet(hidden_size=5, dtype="float64", epochs=1).fit(X, y, 3).W2_.dtype == np.float64


def test_estimator_contract():
    net = TwoLayerNet(hidden_size=12, dropout=0.1)
    params = net.get_params()
    assert params["hidden_size"] == 12 and params["keep_best"] is False and "activation" in params
    assert net.set_params(lr=0.5) is net and net.lr == 0.5
    with pytest.raises(ValueError, match="no parameter 'hidden'"):
        net.set_params(hidden=3)
    other = clone(net, seed=9)
    assert type(other) is TwoLayerNet and other.get_params() == {**net.get_params(), "seed": 9}
    assert "TwoLayerNet(hidden_size=12" in repr(net)
    X, y = blobs(8, N=40)
    with pytest.raises(ValueError, match="not fitted"):
        net.predict(X)
    with pytest.raises(ValueError, match="not been fitted"):
        net.get_state()
    assert not hasattr(net, "best_epoch_") and not hasattr(net, "W1_")
    net.fit(X, y, 3)
    with pytest.raises(ValueError, match="features"):
        net.predict(X[:, :3])


@pytest.mark.parametrize("bad,match", [
    (dict(hidden_size=0), "hidden_size"), (dict(hidden_size=2.5), "hidden_size"),
    (dict(activation="tanh"), "activation"),
    (dict(leaky_slope=1.5), "leaky_slope"), (dict(dropout=1.0), "dropout"), (dict(dropout=-0.1), "dropout"),
    (dict(init="xavier"), "init"), (dict(init_scale=0), "init_scale"), (dict(optimizer="random_search"), "optimizer"),
    (dict(keep_best="yes"), "keep_best"), (dict(lr=-1.0), "lr"), (dict(dtype="float16"), "dtype"),
    (dict(optimizer="lbfgs", dropout=0.5), "dropout"),
])
def test_hyperparameters_are_checked_in_fit(bad, match):
    X, y = blobs(9, N=20)
    net = TwoLayerNet(**bad)  # storing never fails
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, 3)


def test_divergence_raises_training_diverged():
    X, y = blobs(10, N=100)
    net = TwoLayerNet(hidden_size=8, lr=1e30, epochs=5, batch_size=20)
    with pytest.raises(TrainingDiverged) as info:
        net.fit(X * 1e3, y, 3)
    err = info.value
    assert err.iteration >= 1 and f"iteration {err.iteration}" in str(err) and "smaller learning rate" in str(err)
    assert len(net.loss_history_) == err.iteration


# ---------------------------------------------------------------------- checkpoints
def assert_same_run(a, b):
    for k in WEIGHTS:
        assert np.array_equal(getattr(a, k + "_"), getattr(b, k + "_")), k
    assert a.loss_history_ == b.loss_history_
    assert json.loads(json.dumps(a.epoch_history_)) == json.loads(json.dumps(b.epoch_history_))
    assert a.n_iter_ == b.n_iter_ and a.best_epoch_ == b.best_epoch_


def saved_and_loaded(state, path):
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as saved:
        return {k: saved[k] for k in saved.files}


RESUMABLE = [dict(optimizer="sgd", lr_decay=0.9), dict(optimizer="adam", lr=0.01, dropout=0.3),
             dict(optimizer="nesterov", activation="leaky_relu", dropout=0.5),
             dict(optimizer="rmsprop", lr=0.01, keep_best=True),
             dict(optimizer="lbfgs", reg=1e-3, epochs=12), dict(optimizer="lbfgs", keep_best=True, epochs=12)]


@pytest.mark.parametrize("params", RESUMABLE)
def test_interrupted_and_resumed_run_is_bit_for_bit_equal(params, tmp_path):
    X, y = blobs(11, N=115)  # batches of 25: 5 steps per epoch, the last one of 15
    kw = {"hidden_size": 9, "lr": 0.05, "epochs": 4, "batch_size": 25, "seed": 5, **params}
    val = dict(X_val=X[:40], y_val=y[:40])
    ref = TwoLayerNet(**kw).fit(X, y, 3, **val)
    for stop_at in (1, 3, 5, 7, 11):
        count = iter(range(1, 10**6))
        part = TwoLayerNet(**kw).fit(X, y, 3, **val, should_stop=lambda: next(count) == stop_at)
        assert part.stopped_ and part.n_iter_ == stop_at
        state = saved_and_loaded(part.get_state(), tmp_path / f"state{stop_at}.npz")
        assert {"W1", "b1", "W2", "b2", "epoch", "iteration", "batch_pos", "rng_state"} <= set(state)
        resumed = TwoLayerNet(**kw).fit(X, y, 3, **val, state=state)
        assert not resumed.stopped_
        assert_same_run(resumed, ref)


@pytest.mark.parametrize("params", RESUMABLE)
def test_resuming_with_more_epochs_equals_a_longer_run(params, tmp_path):
    X, y = blobs(12, N=115)
    kw = {"hidden_size": 9, "lr": 0.05, "batch_size": 25, "seed": 6, **params}
    val = dict(X_val=X[:40], y_val=y[:40])
    first = kw.pop("epochs", 4)
    longer = TwoLayerNet(**kw, epochs=first + 3).fit(X, y, 3, **val)
    short = TwoLayerNet(**kw, epochs=first).fit(X, y, 3, **val)
    state = saved_and_loaded(short.get_state(), tmp_path / "state.npz")
    resumed = TwoLayerNet(**kw, epochs=first + 3).fit(X, y, 3, **val, state=state)
    assert_same_run(resumed, longer)


def test_state_keys_and_refusals():
    X, y = blobs(13, N=60)
    state = TwoLayerNet(hidden_size=4, optimizer="adam", epochs=1).fit(X, y, 3).get_state()
    assert {f"opt_{k}_{slot}" for k in WEIGHTS for slot in ("m", "v", "t")} <= set(state)
    assert state["W1"].shape == (6, 4) and str(state["optimizer"]) == "adam"
    with pytest.raises(ValueError, match="same settings"):
        TwoLayerNet(hidden_size=4, optimizer="sgd").fit(X, y, 3, state=state)
    with pytest.raises(ValueError, match="W1"):
        TwoLayerNet(hidden_size=5, optimizer="adam").fit(X, y, 3, state=state)


def test_keep_best_restores_the_best_validation_epoch():
    # Few training examples with 30% wrong labels and a wide layer: validation accuracy peaks, then the net overfits.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 140)
    X = (0.7 * rng.standard_normal((3, 20))[y] + rng.standard_normal((140, 20))).astype(np.float32)
    noisy = y.copy()
    flip = rng.random(140) < 0.3
    noisy[flip] = rng.integers(0, 3, flip.sum())
    snapshots = {}
    net = TwoLayerNet(hidden_size=64, optimizer="adam", lr=0.01, epochs=12, batch_size=20, seed=1, keep_best=True)

    def on_epoch(info):
        snapshots[info["epoch"]] = {k: getattr(net, k + "_").copy() for k in WEIGHTS}
        assert info["best_epoch"] is not None

    net.fit(X[:60], noisy[:60], 3, X_val=X[60:], y_val=y[60:], on_epoch=on_epoch)
    val = [e["val_acc"] for e in net.epoch_history_]
    best = int(np.argmax(val)) + 1  # the first epoch with the highest accuracy
    assert val[-1] < val[best - 1] - 0.05, "the test needs a run that overfits after its best epoch"
    assert net.best_epoch_ == best == net.epoch_history_[-1]["best_epoch"]
    for k in WEIGHTS:
        assert np.array_equal(getattr(net, k + "_"), snapshots[best][k])
    assert net.score(X[60:], y[60:]) == val[best - 1]
    # The state still holds the last iterate: resuming for more epochs continues the run, not the best epoch.
    state = net.get_state()
    assert np.array_equal(state["W1"], snapshots[len(val)]["W1"]) and int(state["best_epoch"]) == best
    without_val = TwoLayerNet(hidden_size=8, lr=0.1, epochs=2, keep_best=True).fit(X, y, 3)
    assert without_val.best_epoch_ is None and "best_W1" not in without_val.get_state()
