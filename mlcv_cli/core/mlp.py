"""The two-layer network, the lecture's next model: affine - ReLU - affine - softmax.

two_layer_loss is the pure (params, X, y, reg) -> (loss, grads) function (CS231n style);
TwoLayerNet trains it with the loop shared with the linear models (training.py), so its fit,
callbacks, checkpoints and exact resume are those of LinearClassifier.
"""
import numpy as np

from .losses import softmax, softmax_data_loss
from .optim import OPTIMIZERS
from .training import GradientClassifier
from .validation import check_integer, check_number, check_training_params

OPTIMIZER_NAMES = tuple(OPTIMIZERS) + ("lbfgs",)
ACTIVATIONS = ("relu", "leaky_relu")
INITS = ("he", "scale")


def two_layer_loss(params, X, y, reg, activation="relu", leaky_slope=0.01, dropout_mask=None):
    """Softmax cross-entropy (natural log, mean over N) of a two-layer network, and its gradients.

    params: dict W1 (D, H), b1 (H,), W2 (H, C), b2 (C,); X (N, D); y (N,) int in [0, C).
    hidden = act(X @ W1 + b1) * dropout_mask, scores = hidden @ W2 + b2, with act "relu"
    max(0, z) or "leaky_relu" (z if z > 0 else leaky_slope * z).
    reg: the L2 penalty of losses.penalty_loss, reg * (sum W1**2 + sum W2**2) (no 1/2 factor,
    gradient 2 * reg * W), on W1 and W2 only: the biases are not penalized.
    dropout_mask: None, or (N, H) multipliers applied to the hidden layer: 0 for a dropped
    unit and 1 / (1 - p) for a kept one (inverted dropout, so predicting needs no rescaling).
    The first layer's products run in W1's dtype and the second's in W2's (a float64 W2 over
    a float32 W1 gives a float64 loss without copying X).
    Returns (loss: float, grads: dict of arrays shaped like params: dW1, db1, dW2, db2).
    """
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden = X @ W1
    hidden += b1
    if activation == "relu":
        np.maximum(hidden, 0, out=hidden)
    else:
        np.multiply(hidden, hidden.dtype.type(leaky_slope), out=hidden, where=hidden < 0)
    if dropout_mask is not None:
        hidden *= dropout_mask
    scores = hidden @ W2
    scores += b2
    loss, dscores = softmax_data_loss(scores, y)
    dhidden = (dscores @ W2.T).astype(W1.dtype, copy=False)
    dW2 = hidden.T @ dscores
    if dropout_mask is not None:
        dhidden *= dropout_mask
    # The activation's output has the sign of its input (leaky_slope >= 0), so it tells the
    # backward pass where the unit was active; dropped units are zero in dhidden already.
    if activation == "relu":
        dhidden *= hidden > 0
    else:
        np.multiply(dhidden, dhidden.dtype.type(leaky_slope), out=dhidden, where=hidden <= 0)
    dW1 = X.T @ dhidden
    if reg:
        loss += reg * (_sum_squares(W1) + _sum_squares(W2))
        dW1 += W1.dtype.type(2 * reg) * W1
        dW2 += W2.dtype.type(2 * reg) * W2
    return float(loss), {"W1": dW1, "b1": dhidden.sum(axis=0), "W2": dW2, "b2": dscores.sum(axis=0)}


def _sum_squares(W):
    return float(np.vdot(W, W))


class TwoLayerNet(GradientClassifier):
    """Two-layer fully connected network: affine - ReLU - affine - softmax.

    Hyperparameters (stored as given, checked in fit):
    hidden_size H >= 1; reg >= 0, L2 on W1 and W2 as for the linear models (reg * sum W**2,
    see two_layer_loss); activation "relu" | "leaky_relu" (slope leaky_slope in [0, 1) for
    negative inputs); dropout in [0, 1): the probability of dropping a hidden unit in a
    training step (inverted dropout; never applied in predict or in the accuracies fit
    reports); init "he" (W1 ~ N(0, 2 / D), W2 ~ N(0, 2 / H)) | "scale" (init_scale * N(0, 1));
    biases start at 0; optimizer one of sgd, momentum, nesterov, adagrad, rmsprop, adam, lbfgs
    (full batch as for LinearClassifier; refused with dropout, which makes the objective
    random); lr, lr_decay, batch_size, epochs, momentum, decay_rate, beta1, beta2, eps, seed
    and dtype as for LinearClassifier; keep_best: when fit returns, hold the weights of the
    epoch with the highest val_acc (the first such epoch), not the last ones.

    Learned: W1_ (D, H), b1_ (H,), W2_ (H, C), b2_ (C,), num_classes_, loss_history_,
    epoch_history_, n_iter_, stopped_, converged_ (as LinearClassifier), best_epoch_ (the
    1-based epoch whose weights keep_best restored; None unless keep_best and validation
    data were given). fit and get_state are training.GradientClassifier's: state keys W1,
    b1, W2, b2, opt_<weight>_<slot>, the loop's counters, and best_W1 ... best_b2,
    best_epoch, best_val_acc with keep_best. Dropout masks are drawn from a generator seeded
    by (seed, iteration), so a resumed run draws the masks an uninterrupted one would.
    """

    WEIGHTS = ("W1", "b1", "W2", "b2")

    def __init__(self, hidden_size=100, reg=1e-4, activation="relu", leaky_slope=0.01, dropout=0.0,
                 init="he", init_scale=1e-3, optimizer="sgd", lr=1e-3, lr_decay=1.0, batch_size=200,
                 epochs=10, momentum=0.9, decay_rate=0.99, beta1=0.9, beta2=0.999, eps=1e-8, seed=0,
                 dtype="float32", keep_best=False):
        self.hidden_size = hidden_size
        self.reg = reg
        self.activation = activation
        self.leaky_slope = leaky_slope
        self.dropout = dropout
        self.init = init
        self.init_scale = init_scale
        self.optimizer = optimizer
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.momentum = momentum
        self.decay_rate = decay_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.seed = seed
        self.dtype = dtype
        self.keep_best = keep_best

    # ------------------------------------------------------------------ training
    def _weight_shapes(self, D, C):
        H = int(self.hidden_size)
        return {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}

    def _init_weights(self, D, C, dt, rng):
        H = int(self.hidden_size)
        if self.init == "he":  # keeps the variance of the ReLU layers' outputs near that of their inputs
            s1, s2 = np.sqrt(2.0 / D), np.sqrt(2.0 / H)
        else:
            s1 = s2 = self.init_scale
        W1 = (dt.type(s1) * rng.standard_normal((D, H), dtype=dt)).astype(dt)
        W2 = (dt.type(s2) * rng.standard_normal((H, C), dtype=dt)).astype(dt)
        return {"W1": W1, "b1": np.zeros(H, dt), "W2": W2, "b2": np.zeros(C, dt)}

    def _keeps_best(self):
        return bool(self.keep_best)

    def _minibatch_loss_grad(self, X, y):
        mask = None
        if self.dropout > 0:
            # Seeded by the step's number, not drawn from a running stream: a resumed run
            # draws the masks an uninterrupted one would, wherever it was stopped.
            rng = np.random.Generator(np.random.PCG64([int(self.seed), 2, self._iteration]))
            keep = 1.0 - self.dropout
            mask = (rng.random((X.shape[0], self.W1_.shape[1]), dtype=X.dtype) < keep).astype(X.dtype)
            mask *= X.dtype.type(1.0 / keep)
        return two_layer_loss(self._weights(), X, y, self.reg, self.activation, self.leaky_slope, mask)

    def _flat_loss_grad(self, theta, X, y, dt):
        """Objective and float64 gradient at theta = [W1.ravel(), b1, W2.ravel(), b2] (float64).

        The first layer's products with X run in X's dtype dt; the second layer, the loss and
        the penalty run in float64 (the second layer is cheap: C columns), so float32 rounding
        does not hide the small decreases L-BFGS makes near an optimum.
        """
        params = self._unflatten(theta, np.dtype(np.float64))
        W1_64, W2_64 = params["W1"], params["W2"]
        params["W1"], params["b1"] = W1_64.astype(dt), params["b1"].astype(dt)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads = two_layer_loss(params, X, y, 0.0, self.activation, self.leaky_slope)
        grads = {name: g.astype(np.float64) for name, g in grads.items()}
        if self.reg:
            loss += self.reg * (_sum_squares(W1_64) + _sum_squares(W2_64))
            grads["W1"] += (2 * self.reg) * W1_64
            grads["W2"] += (2 * self.reg) * W2_64
        return loss, np.concatenate([grads[name].ravel() for name in self.WEIGHTS])

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Class scores (before the softmax) of X (N, D): (N, C). Dropout is never applied here."""
        X = self._check_X(X)
        hidden = X @ self.W1_
        hidden += self.b1_
        if self.activation == "leaky_relu":
            np.multiply(hidden, hidden.dtype.type(self.leaky_slope), out=hidden, where=hidden < 0)
        else:
            np.maximum(hidden, 0, out=hidden)
        scores = hidden @ self.W2_
        scores += self.b2_
        return scores

    def predict_proba(self, X):
        """Class probabilities, the softmax of the scores: (N, C), rows sum to 1."""
        return softmax(self.decision_function(X))

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        check_integer("hidden_size", self.hidden_size, 1)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; found {self.activation!r}.")
        check_number("leaky_slope", self.leaky_slope, allow_zero=True)
        if self.leaky_slope >= 1:
            raise ValueError(f"leaky_slope must lie in [0, 1); found {self.leaky_slope!r}.")
        check_number("dropout", self.dropout, allow_zero=True)
        if self.dropout >= 1:
            raise ValueError(f"dropout (the probability of dropping a unit) must lie in [0, 1); found {self.dropout!r}.")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; found {self.init!r}.")
        check_number("init_scale", self.init_scale)
        check_training_params(self, OPTIMIZER_NAMES)
        if not isinstance(self.keep_best, (bool, np.bool_)):
            raise ValueError(f"keep_best must be True or False; found {self.keep_best!r}.")
        if self.optimizer == "lbfgs" and self.dropout > 0:
            raise ValueError(
                f"optimizer 'lbfgs' needs a deterministic objective, but dropout={self.dropout!r} makes it "
                "random; use dropout 0 with lbfgs, or a minibatch optimizer such as adam with dropout."
            )
