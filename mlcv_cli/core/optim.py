"""First-order update rules with the CS231n signature (w, dw, state) -> (w, state).

``state`` is a dict holding the learning rate "lr", the rule's constants ("momentum",
"decay_rate", "beta1", "beta2", "eps") and its slots ("v", "cache", "m", "t"). Slots are
updated in place and returned; ``w`` itself is not modified, a new array is returned, unless
``out`` is given: the new weights are then written there (``out=w`` updates w in place, which
spares a training loop one weights-sized allocation per step; the arithmetic is the same).
Arrays keep w's dtype. Build a state with ``init_state``.
"""
import numpy as np

DEFAULTS = {"lr": 1e-3, "momentum": 0.9, "decay_rate": 0.99, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def sgd(w, dw, state, out=None):
    """Vanilla SGD: w - lr * dw."""
    return np.subtract(w, _c(w, state["lr"]) * dw, out=out), state


def momentum(w, dw, state, out=None):
    """SGD with momentum: v = mu * v - lr * dw; w + v."""
    v = state["v"]
    v *= _c(w, state["momentum"])
    v -= _c(w, state["lr"]) * dw
    return np.add(w, v, out=out), state


def nesterov(w, dw, state, out=None):
    """Nesterov momentum in the 'look-ahead folded into w' form (CS231n):
    v_new = mu * v - lr * dw; w - mu * v + (1 + mu) * v_new."""
    mu = _c(w, state["momentum"])
    v_prev = state["v"].copy()
    v = state["v"]
    v *= mu
    v -= _c(w, state["lr"]) * dw
    return np.add(w - mu * v_prev, (1 + mu) * v, out=out), state


def adagrad(w, dw, state, out=None):
    """Adagrad: cache += dw**2; w - lr * dw / (sqrt(cache) + eps)."""
    cache = state["cache"]
    cache += dw * dw
    return np.subtract(w, _c(w, state["lr"]) * dw / (np.sqrt(cache) + _c(w, state["eps"])), out=out), state


def rmsprop(w, dw, state, out=None):
    """RMSProp: cache = rho * cache + (1 - rho) * dw**2; w - lr * dw / (sqrt(cache) + eps)."""
    rho = _c(w, state["decay_rate"])
    cache = state["cache"]
    cache *= rho
    cache += (1 - rho) * (dw * dw)
    return np.subtract(w, _c(w, state["lr"]) * dw / (np.sqrt(cache) + _c(w, state["eps"])), out=out), state


def adam(w, dw, state, out=None):
    """Adam with bias correction: m, v are moving averages of dw and dw**2, t counts updates."""
    b1, b2 = _c(w, state["beta1"]), _c(w, state["beta2"])
    state["t"] = t = int(state["t"]) + 1
    m, v = state["m"], state["v"]
    m *= b1
    m += (1 - b1) * dw
    v *= b2
    v += (1 - b2) * (dw * dw)
    m_hat = m / _c(w, 1 - state["beta1"] ** t)
    v_hat = v / _c(w, 1 - state["beta2"] ** t)
    return np.subtract(w, _c(w, state["lr"]) * m_hat / (np.sqrt(v_hat) + _c(w, state["eps"])), out=out), state


def _c(w, value):
    # Constants are cast to w's dtype so float32 training never silently upcasts.
    return np.asarray(value, dtype=w.dtype)[()]


OPTIMIZERS = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
}

# The constants and slots each rule reads; slots start at zero with w's shape.
_CONSTANTS = {
    "sgd": (),
    "momentum": ("momentum",),
    "nesterov": ("momentum",),
    "adagrad": ("eps",),
    "rmsprop": ("decay_rate", "eps"),
    "adam": ("beta1", "beta2", "eps"),
}
_SLOTS = {"sgd": (), "momentum": ("v",), "nesterov": ("v",), "adagrad": ("cache",),
          "rmsprop": ("cache",), "adam": ("m", "v")}


def init_state(name, w, **hyper):
    """A fresh state dict for update rule ``name`` and weights ``w`` (any shape).

    hyper may hold lr, momentum, decay_rate, beta1, beta2, eps; missing ones take the
    CS231n defaults. Constants a rule does not use are accepted and ignored.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; found {name!r}.")
    unknown = sorted(set(hyper) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown optimizer setting(s) {', '.join(unknown)}; expected some of {', '.join(DEFAULTS)}."
        )
    values = {**DEFAULTS, **{k: v for k, v in hyper.items() if v is not None}}
    for key, value in values.items():
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite number >= 0; found {value!r}.")
    for key in ("momentum", "decay_rate", "beta1", "beta2"):
        if values[key] >= 1:
            raise ValueError(f"{key} must be < 1; found {values[key]!r}.")
    state = {"lr": float(values["lr"])}
    state.update({k: float(values[k]) for k in _CONSTANTS[name]})
    state.update({k: np.zeros_like(w) for k in _SLOTS[name]})
    if name == "adam":
        state["t"] = 0
    return state
