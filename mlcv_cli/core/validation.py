"""Input and hyperparameter checks shared by the estimators: one-line ValueErrors that say what was expected."""
import numpy as np


def check_number(name, value, allow_zero=False):
    """Raise ValueError unless value is a finite real number > 0 (>= 0 with allow_zero)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0; found {value!r}.")


def check_integer(name, value, low):
    """Raise ValueError unless value is an integer (not a bool) >= low."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; found {value!r}.")


def check_training_params(est, optimizer_names):
    """Check the hyperparameters GradientClassifier reads (est is the estimator)."""
    if est.optimizer not in optimizer_names:
        raise ValueError(f"optimizer must be one of {', '.join(optimizer_names)}; found {est.optimizer!r}.")
    if est.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; found {est.dtype!r}.")
    check_number("lr", est.lr)
    check_number("lr_decay", est.lr_decay)
    check_number("reg", est.reg, allow_zero=True)
    check_number("eps", est.eps, allow_zero=True)
    for name in ("momentum", "decay_rate", "beta1", "beta2"):
        value = getattr(est, name)
        if not 0 <= value < 1:
            raise ValueError(f"{name} must lie in [0, 1); found {value!r}.")
    check_integer("batch_size", est.batch_size, 1)
    check_integer("epochs", est.epochs, 0)
    check_integer("seed", est.seed, 0)


def check_X(X, name, dtype):
    """X as a C-contiguous (N, D) array of dtype; (N, ...) inputs are flattened per example."""
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"{name} must be 2-D (N, D); found shape {X.shape}. Use X.reshape(1, -1) for one example.")
    return np.ascontiguousarray(X.reshape(X.shape[0], -1), dtype=dtype)


def check_labels(y, n, name):
    """y as an int64 array of shape (n,), or a ValueError saying what was found."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the examples; found {y.shape}.")
    if n and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels; found dtype {y.dtype}.")
    return y.astype(np.int64, copy=False)
