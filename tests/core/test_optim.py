import math

import numpy as np
import pytest

from mlcv_cli.core.optim import OPTIMIZERS, adam, init_state

W = np.array([[1.0, -2.0], [0.5, 0.0]])
DW = np.array([[0.1, -0.3], [2.0, 0.0]])


def one_step(name, **hyper):
    w = W.copy()
    state = init_state(name, w, lr=0.1, **hyper)
    new, state = OPTIMIZERS[name](w, DW, state)
    assert np.array_equal(w, W)  # w itself is not modified
    return new, state


def test_sgd():
    new, _ = one_step("sgd")
    np.testing.assert_allclose(new, W - 0.1 * DW)


def test_momentum_two_steps():
    w = W.copy()
    state = init_state("momentum", w, lr=0.1, momentum=0.9)
    w, state = OPTIMIZERS["momentum"](w, DW, state)
    np.testing.assert_allclose(state["v"], -0.1 * DW)
    w, state = OPTIMIZERS["momentum"](w, DW, state)
    v2 = 0.9 * (-0.1 * DW) - 0.1 * DW
    np.testing.assert_allclose(w, W - 0.1 * DW + v2)


def test_nesterov():
    w = W.copy()
    state = init_state("nesterov", w, lr=0.1, momentum=0.9)
    state["v"][...] = 0.05
    new, state = OPTIMIZERS["nesterov"](w, DW, state)
    v = 0.9 * 0.05 - 0.1 * DW
    np.testing.assert_allclose(state["v"], v)
    np.testing.assert_allclose(new, W - 0.9 * 0.05 + 1.9 * v)


def test_adagrad():
    new, state = one_step("adagrad", eps=1e-8)
    np.testing.assert_allclose(state["cache"], DW**2)
    np.testing.assert_allclose(new, W - 0.1 * DW / (np.abs(DW) + 1e-8))


def test_rmsprop():
    new, state = one_step("rmsprop", decay_rate=0.99, eps=1e-8)
    cache = 0.01 * DW**2
    np.testing.assert_allclose(state["cache"], cache)
    np.testing.assert_allclose(new, W - 0.1 * DW / (np.sqrt(cache) + 1e-8))


def test_adam_two_steps_with_bias_correction():
    w = W.copy()
    state = init_state("adam", w, lr=0.1)
    w, state = adam(w, DW, state)
    # After one step the bias-corrected update is lr * sign(dw) (up to eps).
    np.testing.assert_allclose(w, W - 0.1 * DW / (np.abs(DW) + 1e-8), rtol=1e-7)
    w2, state = adam(w, 2 * DW, state)
    m = 0.9 * 0.1 * DW + 0.1 * 2 * DW
    v = 0.999 * 0.001 * DW**2 + 0.001 * 4 * DW**2
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    assert state["t"] == 2
    np.testing.assert_allclose(w2, w - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-7)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_stays_float32(name):
    w = W.astype(np.float32)
    state = init_state(name, w, lr=0.1)
    new, state = OPTIMIZERS[name](w, DW.astype(np.float32), state)
    assert new.dtype == np.float32
    assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


def test_init_state_defaults_and_validation():
    state = init_state("adam", W)
    assert state["lr"] == 1e-3 and state["beta1"] == 0.9 and state["beta2"] == 0.999
    assert state["eps"] == 1e-8 and state["t"] == 0 and not state["m"].any()
    assert init_state("rmsprop", W)["decay_rate"] == 0.99
    assert init_state("momentum", W)["momentum"] == 0.9
    with pytest.raises(ValueError, match="optimizer must be one of"):
        init_state("adamw", W)
    with pytest.raises(ValueError, match="unknown optimizer setting"):
        init_state("sgd", W, learning_rate=1.0)
    with pytest.raises(ValueError, match="momentum"):
        init_state("momentum", W, momentum=1.5)
    assert math.isclose(init_state("sgd", W, lr=0.5)["lr"], 0.5)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_out_writes_the_same_numbers_in_place(name):
    # The training loop updates its weights in place (out=w); that must not change a bit.
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    fresh, inplace = init_state(name, w, lr=0.1), init_state(name, w, lr=0.1)
    w_fresh, w_inplace = w.copy(), w.copy()
    for step in range(3):
        dw = rng.standard_normal((6, 4)).astype(np.float32)
        w_fresh, fresh = OPTIMIZERS[name](w_fresh, dw, fresh)
        before = w_fresh.copy()
        same, inplace = OPTIMIZERS[name](w_inplace, dw, inplace, out=w_inplace)
        assert same is w_inplace and np.array_equal(w_inplace, w_fresh)
        assert np.array_equal(w_fresh, before)
