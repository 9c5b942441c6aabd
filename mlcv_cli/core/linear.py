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
"""
import json

import numpy as np

from .losses import DATA_LOSSES, PENALTIES, penalty_loss
from .metrics import accuracy
from .model_selection import ParamsMixin
from .optim import OPTIMIZERS, init_state

OPTIMIZER_NAMES = tuple(OPTIMIZERS) + ("random_search", "lbfgs")
LBFGS_MEMORY = 10
"""Correction pairs L-BFGS keeps (the usual 3-20; 10 as in scipy and scikit-learn)."""
LBFGS_GTOL = 1e-6
"""L-BFGS stops once no gradient component of the (mean) objective exceeds this..."""
LBFGS_FTOL = 1e-10
"""...or once an iteration lowers the objective by less than this fraction of it."""
_ARMIJO = 1e-4
_MAX_HALVINGS = 30


class TrainingDiverged(ArithmeticError):
    """The loss or the weights became NaN or infinite at ``iteration`` (loss ``loss``)."""

    def __init__(self, message, iteration, loss):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss
_TRAIN_ACC_SAMPLE = 1000


def softmax(scores):
    """Row-wise softmax of class scores (N, C), shifted by each row's maximum so exp cannot overflow: (N, C)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class LinearClassifier(ParamsMixin):
    """Linear classifier with a hinge ("svm") or cross-entropy ("softmax") loss.

    Hyperparameters (stored as given, checked in fit):
    loss "svm" | "softmax"; reg >= 0 and penalty "l2" | "l1" | "elasticnet" | "none" (with
    l1_ratio) on W only; delta (hinge margin) and squared_hinge for "svm"; optimizer one of
    sgd, momentum, nesterov, adagrad, rmsprop, adam, random_search, lbfgs (full batch, one
    iteration per "epoch", stops early once converged; needs penalty l2 or none); lr, multiplied by
    lr_decay after every epoch; batch_size, epochs; the optimizer constants momentum,
    decay_rate, beta1, beta2, eps; init_scale (W starts as init_scale * N(0, 1));
    random_search_tries; seed; dtype "float32" | "float64" (the arithmetic precision).

    Learned: W_ (D, C), b_ (C,), num_classes_, loss_history_ (loss of every iteration),
    epoch_history_ (the dicts passed to on_epoch), n_iter_, stopped_, converged_ (lbfgs:
    the tolerances were met before epochs ran out; None for the other optimizers).
    """

    def __init__(self, loss="softmax", reg=1e-4, penalty="l2", l1_ratio=0.5, delta=1.0,
                 squared_hinge=False, optimizer="sgd", lr=1e-3, lr_decay=1.0, batch_size=200,
                 epochs=10, momentum=0.9, decay_rate=0.99, beta1=0.9, beta2=0.999, eps=1e-8,
                 init_scale=1e-3, random_search_tries=1000, seed=0, dtype="float32"):
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

    def _optimizer_constants(self):
        return dict(lr=self._lr, momentum=self.momentum, decay_rate=self.decay_rate,
                    beta1=self.beta1, beta2=self.beta2, eps=self.eps)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, num_classes=None, X_val=None, y_val=None, state=None,
            on_step=None, on_epoch=None, should_stop=None):
        """Train on X (N, D) and integer labels y (N,) in [0, C).

        num_classes: C (defaults to max(y) + 1 only when not given). X_val (N_val, D),
        y_val (N_val,): optional, scored at each epoch end. state: a dict from get_state()
        to resume from. on_step(iteration, loss) runs after every step; on_epoch(info) at
        every epoch end with info keys epoch (epochs done), iteration, loss (mean over the
        epoch), lr (used in that epoch), train_acc (on up to 1000 fixed training examples),
        val_acc (None without validation data). should_stop() is polled after every step;
        when it returns True training stops there, stopped_ is True and get_state() can
        resume it. Raises TrainingDiverged on a NaN or infinite loss or weight.
        Returns self.
        """
        self._check_params()
        dt = np.dtype(self.dtype)
        X = _as_2d(X, "X", dt)
        y = _as_labels(y, X.shape[0], "y")
        N, D = X.shape
        if N == 0:
            raise ValueError("X has 0 examples; training needs at least one.")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values; clean or impute them before training.")
        C = int(y.max()) + 1 if num_classes is None else int(num_classes)
        if y.min() < 0 or y.max() >= C:
            raise ValueError(f"labels must lie in [0, {C}); found range [{y.min()}, {y.max()}]. Check num_classes.")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither.")
        if X_val is not None:
            X_val = _as_2d(X_val, "X_val", dt)
            y_val = _as_labels(y_val, X_val.shape[0], "y_val")
            if X_val.shape[1] != D:
                raise ValueError(f"X_val has {X_val.shape[1]} features but X has {D}; preprocess both alike.")

        self.num_classes_ = C
        self.stopped_ = False
        self.converged_ = None
        # A separate stream, so the accuracy sample does not depend on where training resumed.
        sample_rng = np.random.Generator(np.random.PCG64([int(self.seed), 1]))
        self._acc_idx = np.sort(sample_rng.permutation(N)[:_TRAIN_ACC_SAMPLE])

        if state is None:
            self._init_run(D, C, dt)
        else:
            self._restore(state, D, C, dt)
        self._val = (X_val, y_val)
        if self.optimizer == "random_search":
            self._fit_random_search(X, y, on_step, on_epoch, should_stop)
        elif self.optimizer == "lbfgs":
            self._fit_lbfgs(X, y, on_step, on_epoch, should_stop)
        else:
            self._fit_gd(X, y, on_step, on_epoch, should_stop)
        self.n_iter_ = self._iteration
        return self

    def _init_run(self, D, C, dt):
        rng = np.random.Generator(np.random.PCG64(self.seed))
        self._rng = rng
        self.W_ = (dt.type(self.init_scale) * rng.standard_normal((D, C), dtype=dt)).astype(dt)
        self.b_ = np.zeros(C, dt)
        self._epoch = 0
        self._iteration = 0
        self._pos = 0
        self._lr = float(self.lr)
        self._epoch_loss_sum = 0.0
        self._epoch_steps = 0
        self._epoch_rng_state = rng.bit_generator.state
        self.loss_history_ = []
        self.epoch_history_ = []
        if self.optimizer == "random_search":
            self._opt = {"W": {}, "b": {}}
            self._best_loss = np.inf
        elif self.optimizer == "lbfgs":
            self._opt = {"W": {}, "b": {}}
            self._lbfgs_pairs = []
            self._lbfgs_done = False
            self._lbfgs_theta = None
        else:
            hyper = self._optimizer_constants()
            self._opt = {"W": init_state(self.optimizer, self.W_, **hyper),
                         "b": init_state(self.optimizer, self.b_, **hyper)}

    def _diverged(self, loss):
        self.n_iter_ = self._iteration
        if self.optimizer == "lbfgs":
            raise TrainingDiverged(
                f"the loss is {loss!r} at iteration {self._iteration}: the scores overflow. Standardize "
                "the inputs (huge feature values), or raise reg.", iteration=self._iteration, loss=loss,
            )
        raise TrainingDiverged(
            f"training diverged at iteration {self._iteration}: loss is {loss!r} "
            f"(or the weights became NaN/inf). lr={self._lr:g} is too large for reg={self.reg:g}; "
            f"try a smaller learning rate, e.g. lr={self._lr / 10:g}.",
            iteration=self._iteration, loss=loss,
        )

    def _fit_gd(self, X, y, on_step, on_epoch, should_stop):
        N = X.shape[0]
        update = OPTIMIZERS[self.optimizer]
        bs = int(self.batch_size)
        while self._epoch < self.epochs:
            # Regenerating the permutation from the epoch-start state lets a resumed run
            # continue with exactly the batches an uninterrupted run would have used.
            self._rng.bit_generator.state = self._epoch_rng_state
            perm = self._rng.permutation(N)
            while self._pos < N:
                idx = perm[self._pos:self._pos + bs]
                # Overflow is detected below and reported as TrainingDiverged, not a warning.
                with np.errstate(over="ignore", invalid="ignore"):
                    loss, dW, db = self._loss_grad(self.W_, self.b_, X[idx], y[idx])
                    self._iteration += 1
                    self.loss_history_.append(loss)
                    if not np.isfinite(loss):
                        self._diverged(loss)
                    self.W_, self._opt["W"] = update(self.W_, dW, self._opt["W"])
                    self.b_, self._opt["b"] = update(self.b_, db, self._opt["b"])
                if not (np.isfinite(self.W_).all() and np.isfinite(self.b_).all()):
                    self._diverged(loss)
                self._pos += idx.shape[0]
                self._epoch_loss_sum += loss
                self._epoch_steps += 1
                if on_step is not None:
                    on_step(self._iteration, loss)
                if should_stop is not None and should_stop():
                    self.stopped_ = True
                    return
            info = self._end_epoch(X, y)
            self._lr *= float(self.lr_decay)
            self._opt["W"]["lr"] = self._opt["b"]["lr"] = self._lr
            self._epoch_rng_state = self._rng.bit_generator.state
            # Called only now, so a checkpoint written from on_epoch already holds the next
            # epoch's learning rate and generator state.
            if on_epoch is not None:
                on_epoch(info)

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

    def _fit_lbfgs(self, X, y, on_step, on_epoch, should_stop):
        # Full-batch L-BFGS (Nocedal and Wright, algorithm 7.4) on theta = [W.ravel(), b] in
        # float64; the products with X stay in the data's dtype. A backtracking (Armijo) line
        # search is enough here: with an L2 penalty the objective is strictly convex, so every
        # step keeps the curvature s.y positive; a pair without it (hinge kinks) is skipped.
        D, C = self.W_.shape
        dt = self.W_.dtype

        def evaluate(theta):
            return self._flat_loss_grad(theta, X, y, dt)

        # The float64 iterate itself, not W_ rounded to float32: a resumed run must continue
        # from exactly where the interrupted one was.
        theta = self._lbfgs_theta
        if theta is None:
            theta = np.concatenate([self.W_.ravel(), self.b_]).astype(np.float64)
        f, g = evaluate(theta)
        if not np.isfinite(f):
            self._diverged(f)
        while self._epoch < self.epochs and not self._lbfgs_done:
            if np.abs(g).max() <= LBFGS_GTOL:
                self._lbfgs_done = True
                break
            p = -self._lbfgs_direction(g)
            slope = float(g @ p)
            if slope >= 0:  # not a descent direction (rounding): restart from steepest descent
                self._lbfgs_pairs = []
                p, slope = -g, -float(g @ g)
            step = 1.0 if self._lbfgs_pairs else min(1.0, 1.0 / np.abs(g).sum())
            for _ in range(_MAX_HALVINGS):
                f_new, g_new = evaluate(theta + step * p)
                if np.isfinite(f_new) and f_new <= f + _ARMIJO * step * slope:
                    break
                step *= 0.5
            else:
                # No decrease left that float arithmetic can see: as converged as it gets.
                self._lbfgs_done = True
                break
            s_vec, y_vec = step * p, g_new - g
            if float(s_vec @ y_vec) > 1e-12 * float(y_vec @ y_vec):
                self._lbfgs_pairs = (self._lbfgs_pairs + [(s_vec, y_vec)])[-LBFGS_MEMORY:]
            f_old, theta, f, g = f, theta + s_vec, f_new, g_new
            self._lbfgs_theta = theta
            self.W_ = theta[:D * C].reshape(D, C).astype(dt)
            self.b_ = theta[D * C:].astype(dt)
            self._iteration += 1
            self.loss_history_.append(f)
            self._epoch_loss_sum, self._epoch_steps = f, 1
            self._lbfgs_done = f_old - f <= LBFGS_FTOL * max(abs(f_old), abs(f), 1.0)
            if on_step is not None:
                on_step(self._iteration, f)
            info = self._end_epoch(X, y)
            if on_epoch is not None:
                on_epoch(info)
            if should_stop is not None and should_stop() and self._epoch < self.epochs and not self._lbfgs_done:
                self.stopped_ = True
                return
        self.converged_ = bool(self._lbfgs_done)

    def _flat_loss_grad(self, theta, X, y, dt):
        """Objective and float64 gradient at theta = [W.ravel(), b] (float64, length D*C + C).

        The products with X run in X's dtype dt; the loss from the scores on runs in float64,
        so float32 rounding does not hide the small decreases near the optimum. One pass over
        X with the compiled kernels (core/fused.py), bit for bit the same on every run.
        """
        from .fused import loss_grad  # (kept local: the training loop is being moved out of this module)

        return loss_grad(theta, X, y, dt, loss=self.loss, reg=self.reg, penalty=self.penalty,
                         l1_ratio=self.l1_ratio, delta=self.delta, squared_hinge=self.squared_hinge)

    def _lbfgs_direction(self, g):
        """H g for the inverse-Hessian approximation of the stored pairs (two-loop recursion)."""
        q = g.copy()
        alphas = []
        for s_vec, y_vec in reversed(self._lbfgs_pairs):
            a = float(s_vec @ q) / float(s_vec @ y_vec)
            q -= a * y_vec
            alphas.append(a)
        if self._lbfgs_pairs:
            s_vec, y_vec = self._lbfgs_pairs[-1]
            q *= float(s_vec @ y_vec) / float(y_vec @ y_vec)
        for (s_vec, y_vec), a in zip(self._lbfgs_pairs, reversed(alphas)):
            b = float(y_vec @ q) / float(s_vec @ y_vec)
            q += (a - b) * s_vec
        return q

    def _end_epoch(self, X, y):
        """Close the epoch: record its summary (returned) and reset the per-epoch counters."""
        self._epoch += 1
        X_val, y_val = self._val
        info = {
            "epoch": self._epoch,
            "iteration": self._iteration,
            "loss": self._epoch_loss_sum / max(self._epoch_steps, 1),
            "lr": self._lr,
            "train_acc": accuracy(y[self._acc_idx], self.predict(X[self._acc_idx])),
            "val_acc": None if X_val is None else accuracy(y_val, self.predict(X_val)),
        }
        self.epoch_history_.append(info)
        self._pos = 0
        self._epoch_loss_sum = 0.0
        self._epoch_steps = 0
        return info

    # ------------------------------------------------------------------ checkpoints
    def get_state(self):
        """Everything needed to resume training, as a dict of NumPy arrays and scalars.

        Storable with np.savez and loadable with np.load(allow_pickle=False): the generator
        state (as of the start of the current epoch) and the epoch history are JSON strings
        in 0-d unicode arrays. Pass the dict (or the loaded npz) as fit(..., state=...).
        """
        if not hasattr(self, "W_"):
            raise ValueError("this classifier has not been fitted; there is no state to save.")
        state = {
            "optimizer": np.array(self.optimizer),
            "W": self.W_.copy(),
            "b": self.b_.copy(),
            "epoch": np.int64(self._epoch),
            "iteration": np.int64(self._iteration),
            "batch_pos": np.int64(self._pos),
            "lr": np.float64(self._lr),
            "epoch_loss_sum": np.float64(self._epoch_loss_sum),
            "epoch_steps": np.int64(self._epoch_steps),
            "rng_state": np.array(json.dumps(self._epoch_rng_state)),
            "loss_history": np.asarray(self.loss_history_, dtype=np.float64),
            "epoch_history": np.array(json.dumps(self.epoch_history_)),
        }
        if self.optimizer == "random_search":
            state["best_loss"] = np.float64(self._best_loss)
        if self.optimizer == "lbfgs":
            P = self.W_.size + self.b_.size
            state["lbfgs_s"] = np.array([s for s, _ in self._lbfgs_pairs], np.float64).reshape(-1, P)
            state["lbfgs_y"] = np.array([y for _, y in self._lbfgs_pairs], np.float64).reshape(-1, P)
            state["lbfgs_done"] = np.int64(self._lbfgs_done)
            if self._lbfgs_theta is not None:
                state["lbfgs_theta"] = self._lbfgs_theta.copy()
        for part in ("W", "b"):
            for key, value in self._opt[part].items():
                if isinstance(value, np.ndarray):
                    state[f"opt_{part}_{key}"] = value.copy()
                elif key == "t":
                    state[f"opt_{part}_t"] = np.int64(value)
        return state

    def _restore(self, state, D, C, dt):
        state = {key: state[key] for key in state}
        if str(state["optimizer"]) != self.optimizer:
            raise ValueError(
                f"the saved state was made with optimizer {str(state['optimizer'])!r} but this "
                f"classifier uses {self.optimizer!r}; resume with the same settings."
            )
        if state["W"].shape != (D, C):
            raise ValueError(
                f"the saved weights have shape {state['W'].shape} but the data need ({D}, {C}); "
                "resume on the same data."
            )
        self.W_ = np.array(state["W"], dtype=dt)
        self.b_ = np.array(state["b"], dtype=dt)
        self._epoch = int(state["epoch"])
        self._iteration = int(state["iteration"])
        self._pos = int(state["batch_pos"])
        self._lr = float(state["lr"])
        self._epoch_loss_sum = float(state["epoch_loss_sum"])
        self._epoch_steps = int(state["epoch_steps"])
        self._epoch_rng_state = json.loads(str(state["rng_state"]))
        self._rng = np.random.Generator(np.random.PCG64())
        self.loss_history_ = [float(v) for v in state["loss_history"]]
        self.epoch_history_ = json.loads(str(state["epoch_history"]))
        if self.optimizer == "random_search":
            self._opt = {"W": {}, "b": {}}
            self._best_loss = float(state["best_loss"])
            return
        if self.optimizer == "lbfgs":
            S, Y = np.asarray(state["lbfgs_s"], np.float64), np.asarray(state["lbfgs_y"], np.float64)
            P = D * C + C
            if S.shape != Y.shape or S.ndim != 2 or S.shape[1] != P or S.shape[0] > LBFGS_MEMORY:
                raise ValueError(
                    f"the saved L-BFGS pairs have shapes {S.shape} and {Y.shape} but ({LBFGS_MEMORY} or "
                    f"fewer, {P}) are needed; the checkpoint is damaged, train from the start."
                )
            self._opt = {"W": {}, "b": {}}
            self._lbfgs_pairs = [(S[i].copy(), Y[i].copy()) for i in range(S.shape[0])]
            self._lbfgs_done = bool(state["lbfgs_done"])
            self._lbfgs_theta = None
            if "lbfgs_theta" in state:
                self._lbfgs_theta = np.array(state["lbfgs_theta"], np.float64)
                if self._lbfgs_theta.shape != (P,):
                    raise ValueError(
                        f"the saved L-BFGS iterate has shape {self._lbfgs_theta.shape} but ({P},) is "
                        "needed; the checkpoint is damaged, train from the start."
                    )
            return
        hyper = self._optimizer_constants()
        self._opt = {}
        for part, w in (("W", self.W_), ("b", self.b_)):
            opt = init_state(self.optimizer, w, **hyper)
            for key in opt:
                saved = state.get(f"opt_{part}_{key}")
                if saved is None:
                    continue
                opt[key] = int(saved) if key == "t" else np.array(saved, dtype=dt)
            self._opt[part] = opt

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Class scores X @ W_ + b_: (N, C)."""
        self._check_fitted()
        X = _as_2d(X, "X", self.W_.dtype)
        if X.shape[1] != self.W_.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the model was trained on {self.W_.shape[0]}; "
                "preprocess inputs like the training data."
            )
        return X @ self.W_ + self.b_

    def predict(self, X):
        """Highest-scoring class of each example: (N,) int64."""
        return np.argmax(self.decision_function(X), axis=1)

    def predict_proba(self, X):
        """Softmax of the scores: (N, C), rows sum to 1.

        For the softmax loss these are the model's class probabilities. For the SVM it is
        only a normalisation of the scores (the hinge loss does not calibrate them).
        """
        return softmax(self.decision_function(X))

    def score(self, X, y):
        """Accuracy of predict(X) against y (N,)."""
        return accuracy(y, self.predict(X))

    # ------------------------------------------------------------------ checks
    def _check_fitted(self):
        if not hasattr(self, "W_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    def _check_params(self):
        def positive(name, value, allow_zero=False):
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            ok = ok and np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
            if not ok:
                raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0; found {value!r}.")

        def integer(name, value, low):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; found {value!r}.")

        if self.loss not in DATA_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(DATA_LOSSES)}; found {self.loss!r}.")
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}; found {self.penalty!r}.")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}; found {self.optimizer!r}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; found {self.dtype!r}.")
        positive("lr", self.lr)
        positive("lr_decay", self.lr_decay)
        positive("reg", self.reg, allow_zero=True)
        positive("delta", self.delta, allow_zero=True)
        positive("init_scale", self.init_scale)
        positive("eps", self.eps, allow_zero=True)
        if not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"l1_ratio must lie in [0, 1]; found {self.l1_ratio!r}.")
        for name in ("momentum", "decay_rate", "beta1", "beta2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must lie in [0, 1); found {value!r}.")
        integer("batch_size", self.batch_size, 1)
        integer("epochs", self.epochs, 0)
        integer("random_search_tries", self.random_search_tries, 1)
        integer("seed", self.seed, 0)
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


def _as_2d(X, name, dtype):
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"{name} must be 2-D (N, D); found shape {X.shape}. Use X.reshape(1, -1) for one example.")
    return np.ascontiguousarray(X.reshape(X.shape[0], -1), dtype=dtype)


def _as_labels(y, n, name):
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the examples; found {y.shape}.")
    if n and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels; found dtype {y.dtype}.")
    return y.astype(np.int64, copy=False)
