"""Numerical gradient checking: centred differences against the analytic gradients of the losses and the two-layer net."""
import numpy as np

from .losses import LOSSES
from .mlp import two_layer_loss


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Centred-difference gradient (f(x + h) - f(x - h)) / 2h of a scalar function f.

    x is perturbed in place, one entry at a time, and restored exactly afterwards.
    indices: iterable of index tuples to evaluate (default: every entry). Returns an array
    shaped like x (float64), zero where an entry was not evaluated.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    if indices is None:
        indices = np.ndindex(*x.shape)
    for ix in indices:
        ix = tuple(int(i) for i in np.atleast_1d(ix))
        old = x[ix]
        x[ix] = old + h
        plus = float(f(x))
        x[ix] = old - h
        minus = float(f(x))
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, n, tiny=1e-12):
    """Elementwise |a - n| / max(|a| + |n|, tiny): 0 when equal, 1 when opposite or one is 0."""
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), tiny)


def check_loss_gradient(loss_name, reg, num_checks=10, seed=0, N=50, D=20, C=5, h=1e-5,
                        penalty="l2", l1_ratio=0.5):
    """Compare the analytic dW of a loss in LOSSES with centred differences.

    Builds a seeded float64 problem X (N, D) ~ N(0, 1), y (N,) in [0, C), W (D, C) ~ 0.1 N(0, 1),
    and checks num_checks random entries of W. Returns a list of rows
    (index (d, c), analytic, numeric, rel_error, near_kink): near_kink is True for SVM entries
    where moving W[d, c] by h can flip a hinge margin through zero, so the hinge is not
    differentiable there and a large relative error is expected.
    """
    if loss_name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; found {loss_name!r}.")
    rng = np.random.Generator(np.random.PCG64(seed))
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    W = 0.1 * rng.standard_normal((D, C))
    loss_fn = LOSSES[loss_name]

    def f(w):
        return loss_fn(w, X, y, reg, penalty=penalty, l1_ratio=l1_ratio)[0]

    _, analytic = loss_fn(W, X, y, reg, penalty=penalty, l1_ratio=l1_ratio)
    flat = rng.choice(D * C, size=min(num_checks, D * C), replace=False)
    indices = [np.unravel_index(i, (D, C)) for i in flat]
    numeric = numerical_gradient(f, W, h=h, indices=indices)

    if loss_name == "svm":
        scores = X @ W
        margins = scores - scores[np.arange(N), y][:, None] + 1.0
        margins[np.arange(N), y] = np.inf  # the correct class has no hinge of its own
    rows = []
    for d, c in indices:
        d, c = int(d), int(c)
        kink = False
        if loss_name == "svm":
            reach = h * np.abs(X[:, d])  # how far a +-h step in W[d, c] moves the margins
            own = np.abs(margins[:, c]) <= reach  # class c as a wrong class
            correct = (y == c) & (np.abs(margins).min(axis=1) <= reach)  # c as the true class
            kink = bool(np.any(own | correct))
        a, n = float(analytic[d, c]), float(numeric[d, c])
        rows.append(((d, c), a, n, float(relative_error(a, n)), kink))
    return rows


NOISE_FLOOR = 1e-3
"""Centred differences (h = 1e-5) carry a float64 rounding error near 1e-16 * |loss| / h, i.e.
1e-11 |loss|, so an entry much smaller than 1e-4 |loss| cannot show 7 correct digits. Where the
gradient is that small, check_mlp_gradient judges the absolute error instead: it divides by at
least loss_floor(loss) = NOISE_FLOOR * max(|loss|, 1), so passing means an error under 1e-10 |loss|."""


def loss_floor(loss):
    """The least denominator of a relative error for a loss of this size (see NOISE_FLOOR)."""
    return NOISE_FLOOR * max(abs(float(loss)), 1.0)


def check_mlp_gradient(reg, num_checks=10, seed=0, N=50, D=20, H=10, C=5, h=1e-5, activation="relu",
                       leaky_slope=0.01, dropout=0.0):
    """Compare two_layer_loss's analytic gradients with centred differences, for every weight.

    Builds a seeded float64 problem X (N, D) ~ N(0, 1), y (N,) in [0, C), W1 (D, H) and W2
    (H, C) He-initialised, b1 (H,) and b2 (C,) ~ 0.1 N(0, 1), and, for dropout > 0, one fixed
    inverted-dropout mask (N, H). Checks num_checks random entries of each of W1, b1, W2, b2.
    Returns rows in check_loss_gradient's format (index, analytic, numeric, rel_error,
    near_kink) with index ("W1", d, h), ("b1", h), ("W2", h, c) or ("b2", c); rel_error's
    denominator is at least loss_floor(loss) (see NOISE_FLOOR). near_kink is True for a W1 or b1 entry whose +-h
    step can move a hidden unit's input through 0, where the ReLU is not differentiable.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = {"W1": np.sqrt(2 / D) * rng.standard_normal((D, H)), "b1": 0.1 * rng.standard_normal(H),
              "W2": np.sqrt(2 / H) * rng.standard_normal((H, C)), "b2": 0.1 * rng.standard_normal(C)}
    mask = None
    if dropout > 0:
        mask = (rng.random((N, H)) >= dropout) / (1 - dropout)
    loss, analytic = two_layer_loss(params, X, y, reg, activation, leaky_slope, mask)
    hidden_in = np.abs(X @ params["W1"] + params["b1"])  # (N, H): how far each unit is from its kink
    rows = []
    for name, w in params.items():
        flat = rng.choice(w.size, size=min(num_checks, w.size), replace=False)
        indices = [tuple(int(i) for i in np.unravel_index(k, w.shape)) for k in flat]

        def f(value, name=name):
            return two_layer_loss({**params, name: value}, X, y, reg, activation, leaky_slope, mask)[0]

        numeric = numerical_gradient(f, w, h=h, indices=indices)
        for ix in indices:
            kink = False
            if name == "W1":
                kink = bool(np.any(hidden_in[:, ix[1]] <= h * np.abs(X[:, ix[0]])))
            elif name == "b1":
                kink = bool(np.any(hidden_in[:, ix[0]] <= h))
            a, n = float(analytic[name][ix]), float(numeric[ix])
            rows.append(((name, *ix), a, n, float(relative_error(a, n, tiny=loss_floor(loss))), kink))
    return rows


GOOD_RELATIVE_ERROR = 1e-7


def verdict(rows, threshold=GOOD_RELATIVE_ERROR):
    """Judge check_loss_gradient or check_mlp_gradient rows: (notes, worst, passed).

    notes: "ok", "kink" (a large error where the hinge or ReLU is not differentiable, not counted)
    or "FAIL", one per row; worst: the largest counted relative error; passed: no FAIL.
    """
    notes = ["ok" if err < threshold else ("kink" if kink else "FAIL") for _, _, _, err, kink in rows]
    worst = max((row[3] for row, note in zip(rows, notes) if note != "kink"), default=0.0)
    return notes, worst, "FAIL" not in notes
