"""Linear classifiers (multiclass SVM, softmax) trained by minibatch gradient descent.

Scores are X @ W_ + b_ with W_ (D, C) and a separate bias b_ (C,). The bias is kept apart
(instead of the bias trick of appending a constant 1 to X) so the data never needs an extra
column copied in, and so it is not regularized: penalising the bias only shifts scores and
does not reduce overfitting. The pure (W, X, y, reg) functions in losses.py are the
lecture's bias-free form; this module applies the data losses to scores that include b_.

optimizer="lbfgs" trains full-batch with limited-memory BFGS instead (every iteration sees
all of X; lr, lr_decay and batch_size are not used, epochs caps the iterations): on thousands
of standardized features it converges where a few epochs of minibatch SGD do not.

Training is reproducible and resumable: a seeded PCG64 generator draws the initial weights
and one permutation per epoch; ``get_state`` captures everything needed so that an
interrupted and resumed run ends with bit-for-bit the same weights as an uninterrupted one.
The loop itself, shared with the two-layer network, is training.GradientClassifier.
"""
import numpy as np

from .fused import loss_grad
from .lbfgs import LBFGS_MEMORY  # noqa: F401  (imported from here by models/)
from .losses import DATA_LOSSES, PENALTIES, penalty_loss, softmax
from .optim import OPTIMIZERS
from .training import GradientClassifier, TrainingDiverged  # noqa: F401  (TrainingDiverged imported from here too)
from .validation import check_integer, check_number, check_training_params

OPTIMIZER_NAMES = tuple(OPTIMIZERS) + ("random_search", "lbfgs")


class LinearClassifier(GradientClassifier):
    """Linear classifier with a hinge ("svm") or cross-entropy ("softmax") loss.

    Hyperparameters (stored as given, checked in fit):
    loss "svm" | "softmax"; reg >= 0 and penalty "l2" | "l1" | "elasticnet" | "none" (with
    l1_ratio) on W only; delta (hinge margin) and squared_hinge for "svm"; optimizer one of
    sgd, momentum, nesterov, adagrad, rmsprop, adam, random_search, lbfgs (full batch, one
    iteration per "epoch", stops early once converged; needs penalty l2 or none); lr, multiplied by
    lr_decay after every epoch; batch_size, epochs; the optimizer constants momentum,
    decay_rate, beta1, beta2, eps; init_scale (W starts as init_scale * N(0, 1));
    random_search_tries; seed; dtype "float32" | "float64" (the arithmetic precision);
    keep_best: when fit returns, hold the weights of the epoch with the highest val_acc.

    Learned: W_ (D, C), b_ (C,), num_classes_, loss_history_ (loss of every iteration),
    epoch_history_ (the dicts passed to on_epoch), n_iter_, stopped_, converged_ (lbfgs:
    the tolerances were met before epochs ran out; None for the other optimizers).
    fit, get_state and the state's keys (W, b, opt_W_v, ...) are GradientClassifier's.
    """

    WEIGHTS = ("W", "b")

    def __init__(self, loss="softmax", reg=1e-4, penalty="l2", l1_ratio=0.5, delta=1.0,
                 squared_hinge=False, optimizer="sgd", lr=1e-3, lr_decay=1.0, batch_size=200,
                 epochs=10, momentum=0.9, decay_rate=0.99, beta1=0.9, beta2=0.999, eps=1e-8,
                 init_scale=1e-3, random_search_tries=1000, seed=0, dtype="float32", keep_best=False):
        self.loss = loss
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.delta = delta
        self.squared_hinge = squared_hinge
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
        self.init_scale = init_scale
        self.random_search_tries = random_search_tries
        self.seed = seed
        self.dtype = dtype
        self.keep_best = keep_best

    def _keeps_best(self):
        return bool(self.keep_best)

    # ------------------------------------------------------------------ loss
    def _data_loss(self, W, b, X, y):
        """Data loss and its gradient on the scores (N, C) of a batch."""
        scores = X @ W
        scores += b
        if self.loss == "svm":
            return DATA_LOSSES["svm"](scores, y, self.delta, self.squared_hinge)
        return DATA_LOSSES["softmax"](scores, y)

    def _loss_grad(self, W, b, X, y):
        """Full objective on a batch: (loss, dW (D, C), db (C,))."""
        data, dscores = self._data_loss(W, b, X, y)
        pen, dpen = penalty_loss(W, self.reg, self.penalty, self.l1_ratio)
        dW = X.T @ dscores
        dW += dpen
        return data + pen, dW, dscores.sum(axis=0)

    def _objective(self, W, b, X, y):
        return self._data_loss(W, b, X, y)[0] + penalty_loss(W, self.reg, self.penalty, self.l1_ratio)[0]

    def _minibatch_loss_grad(self, X, y):
        loss, dW, db = self._loss_grad(self.W_, self.b_, X, y)
        return loss, {"W": dW, "b": db}

    def _flat_loss_grad(self, theta, X, y, dt):
        """Objective and float64 gradient at theta = [W.ravel(), b] (float64, length D*C + C).

        The products with X run in X's dtype dt; the loss from the scores on runs in float64,
        so float32 rounding does not hide the small decreases near the optimum. One pass over
        X with the compiled kernels (fused.py), bit for bit the same on every run.
        """
        return loss_grad(theta, X, y, dt, loss=self.loss, reg=self.reg, penalty=self.penalty,
                         l1_ratio=self.l1_ratio, delta=self.delta, squared_hinge=self.squared_hinge)

    # ------------------------------------------------------------------ training
    def _weight_shapes(self, D, C):
        return {"W": (D, C), "b": (C,)}

    def _init_weights(self, D, C, dt, rng):
        W = (dt.type(self.init_scale) * rng.standard_normal((D, C), dtype=dt)).astype(dt)
        return {"W": W, "b": np.zeros(C, dt)}

    def _init_run(self, D, C, dt):
        super()._init_run(D, C, dt)
        self._best_loss = np.inf

    def _train(self, X, y, on_step, on_epoch, should_stop):
        if self.optimizer == "random_search":
            self._fit_random_search(X, y, on_step, on_epoch, should_stop)
        else:
            super()._train(X, y, on_step, on_epoch, should_stop)

    def _fit_random_search(self, X, y, on_step, on_epoch, should_stop):
        # The lecture's naive baseline: score random weights on a fixed sample, keep the best.
        Xs, ys = X[self._acc_idx], y[self._acc_idx]
        D, C = self.W_.shape
        dt = self.W_.dtype
        if self._epoch >= 1:
            return
        self._rng.bit_generator.state = self._epoch_rng_state
        while self._pos < self.random_search_tries:
            W = (dt.type(self.init_scale) * self._rng.standard_normal((D, C), dtype=dt)).astype(dt)
            loss = self._objective(W, self.b_, Xs, ys)
            self._iteration += 1
            self._pos += 1
            if loss < self._best_loss:
                self._best_loss, self.W_ = loss, W
            self.loss_history_.append(float(self._best_loss))
            self._epoch_loss_sum += self._best_loss
            self._epoch_steps += 1
            self._epoch_rng_state = self._rng.bit_generator.state
            if on_step is not None:
                on_step(self._iteration, float(self._best_loss))
            if should_stop is not None and should_stop():
                self.stopped_ = True
                return
        if not np.isfinite(self._best_loss):
            self._diverged(self._best_loss)
        info = self._end_epoch(X, y)
        if on_epoch is not None:
            on_epoch(info)

    def get_state(self):
        """GradientClassifier.get_state, plus best_loss for random_search."""
        state = super().get_state()
        if self.optimizer == "random_search":
            state["best_loss"] = np.float64(self._best_loss)
        return state

    def _restore(self, state, D, C, dt):
        super()._restore(state, D, C, dt)
        if self.optimizer == "random_search":
            self._best_loss = float(state["best_loss"])

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Class scores X @ W_ + b_: (N, C)."""
        X = self._check_X(X)
        return X @ self.W_ + self.b_

    def predict_proba(self, X):
        """Softmax of the scores: (N, C), rows sum to 1.

        For the softmax loss these are the model's class probabilities. For the SVM it is
        only a normalisation of the scores (the hinge loss does not calibrate them).
        """
        return softmax(self.decision_function(X))

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if self.loss not in DATA_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(DATA_LOSSES)}; found {self.loss!r}.")
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}; found {self.penalty!r}.")
        check_training_params(self, OPTIMIZER_NAMES)
        check_number("delta", self.delta, allow_zero=True)
        check_number("init_scale", self.init_scale)
        if not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"l1_ratio must lie in [0, 1]; found {self.l1_ratio!r}.")
        check_integer("random_search_tries", self.random_search_tries, 1)
        if self.optimizer == "lbfgs" and self.penalty not in ("l2", "none") and self.reg > 0:
            raise ValueError(
                f"optimizer 'lbfgs' needs a smooth objective: penalty 'l2' or 'none', found {self.penalty!r}; "
                "use penalty l2, or a first-order optimizer such as momentum for l1/elasticnet."
            )


class _FixedLoss(LinearClassifier):
    """A LinearClassifier whose loss is set by the subclass, not by a parameter."""

    fixed_loss = None

    def __init__(self, **kw):
        if "loss" in kw:
            raise TypeError(f"{type(self).__name__} fixes loss={self.fixed_loss!r}; use LinearClassifier to choose the loss.")
        super().__init__(loss=self.fixed_loss, **kw)

    @classmethod
    def _param_names(cls):
        return [n for n in LinearClassifier._param_names() if n != "loss"]


class LinearSVM(_FixedLoss):
    """LinearClassifier with the multiclass hinge loss (loss="svm")."""

    fixed_loss = "svm"


class Softmax(_FixedLoss):
    """LinearClassifier with the softmax cross-entropy loss (loss="softmax")."""

    fixed_loss = "softmax"
