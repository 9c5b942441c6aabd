"""The training loop shared by the classifiers fitted by gradient descent (linear.py, mlp.py).

A model names its learned arrays and supplies its objective; GradientClassifier runs minibatch
gradient descent (one update rule of optim.py per array) or full-batch L-BFGS (lbfgs.py) over
them, keeps the epoch bookkeeping, detects divergence, and saves and restores everything needed
to resume so that an interrupted and resumed run ends bit for bit where an uninterrupted one would.
"""
import json

import numpy as np

from .lbfgs import LBFGSMixin
from .metrics import accuracy
from .model_selection import ParamsMixin
from .optim import OPTIMIZERS, init_state
from .validation import check_labels, check_X

TRAIN_ACC_SAMPLE = 1000
"""Training examples (a fixed seeded sample) scored at every epoch end for train_acc."""
UPDATE_BLOCK = 65536
"""Elements of a weight array one update-rule call sees (256 KB of float32, within a core's L2 cache)."""


class TrainingDiverged(ArithmeticError):
    """The loss or the weights became NaN or infinite at ``iteration`` (loss ``loss``)."""

    def __init__(self, message, iteration, loss):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss


def update_in_blocks(update, w, dw, state):
    """Apply the optim.py rule update to w in place, a block of rows at a time; returns w.

    The arithmetic is elementwise, so the numbers are those of update(w, dw, state, out=w);
    but each block's passes (a dozen for Adam) stay in cache instead of streaming a whole
    layer through memory each time: Adam on a 3,072 x 500 layer takes about half the time.
    The slots of state are updated through views; its scalars (Adam's t) as one call would.
    """
    if w.size <= 2 * UPDATE_BLOCK:
        update(w, dw, state, out=w)
        return w
    rows = max(1, UPDATE_BLOCK // (w.size // w.shape[0]))
    scalars = None
    for start in range(0, w.shape[0], rows):
        part = slice(start, start + rows)
        block = {key: value[part] if isinstance(value, np.ndarray) else value for key, value in state.items()}
        update(w[part], dw[part], block, out=w[part])
        scalars = {key: value for key, value in block.items() if not isinstance(value, np.ndarray)}
    state.update(scalars)
    return w


class GradientClassifier(ParamsMixin, LBFGSMixin):
    """Base of the classifiers trained over named weight arrays (scikit-learn contract).

    A subclass lists its arrays in WEIGHTS (each is stored as the attribute name + "_",
    e.g. "W" as W_) and provides:
      __init__ storing its hyperparameters, which include optimizer, lr, lr_decay,
        batch_size, epochs, momentum, decay_rate, beta1, beta2, eps, seed, dtype and reg;
      _check_params() raising ValueError for a bad hyperparameter (check_training_params
        checks the ones above);
      _weight_shapes(D, C) -> {name: shape}, in WEIGHTS order;
      _init_weights(D, C, dt, rng) -> {name: array of dtype dt}, drawn from rng only;
      _minibatch_loss_grad(X, y) -> (loss, {name: gradient}) at the current weights;
      _flat_loss_grad(theta, X, y, dt) -> (loss, float64 gradient) at the float64 vector
        theta of every weight raveled in WEIGHTS order (for optimizer "lbfgs");
      decision_function(X) -> scores (N, C).
    It may override _train (to add optimizers) and _keeps_best (to restore, when fit ends,
    the weights of the epoch with the best validation accuracy).
    """

    WEIGHTS = ()

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, num_classes=None, X_val=None, y_val=None, state=None,
            on_step=None, on_epoch=None, should_stop=None):
        """Train on X (N, D) and integer labels y (N,) in [0, C).

        num_classes: C (defaults to max(y) + 1 only when not given). X_val (N_val, D),
        y_val (N_val,): optional, scored at each epoch end. state: a dict from get_state()
        to resume from. on_step(iteration, loss) runs after every step; on_epoch(info) at
        every epoch end with info keys epoch (epochs done), iteration, loss (mean over the
        epoch), lr (used in that epoch), train_acc (on up to 1000 fixed training examples),
        val_acc (None without validation data), and best_epoch for a model keeping its best
        epoch. should_stop() is polled after every step; when it returns True training
        stops there, stopped_ is True and get_state() can resume it. Raises
        TrainingDiverged on a NaN or infinite loss or weight.
        Returns self.
        """
        self._check_params()
        dt = np.dtype(self.dtype)
        X = check_X(X, "X", dt)
        y = check_labels(y, X.shape[0], "y")
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
            X_val = check_X(X_val, "X_val", dt)
            y_val = check_labels(y_val, X_val.shape[0], "y_val")
            if X_val.shape[1] != D:
                raise ValueError(f"X_val has {X_val.shape[1]} features but X has {D}; preprocess both alike.")

        self.num_classes_ = C
        self.stopped_ = False
        self.converged_ = None
        # A separate stream, so the accuracy sample does not depend on where training resumed.
        sample_rng = np.random.Generator(np.random.PCG64([int(self.seed), 1]))
        self._acc_idx = np.sort(sample_rng.permutation(N)[:TRAIN_ACC_SAMPLE])

        if state is None:
            self._init_run(D, C, dt)
        else:
            self._restore(state, D, C, dt)
        self._val = (X_val, y_val)
        self._train(X, y, on_step, on_epoch, should_stop)
        self.n_iter_ = self._iteration
        if self._best is not None:
            # The last iterate is kept aside: get_state() must resume from it, not from the best.
            self._final_iterate = self._weights()
            self._set_weights({name: w.copy() for name, w in self._best[2].items()})
        return self

    def _train(self, X, y, on_step, on_epoch, should_stop):
        if self.optimizer == "lbfgs":
            self._fit_lbfgs(X, y, on_step, on_epoch, should_stop)
        else:
            self._fit_gd(X, y, on_step, on_epoch, should_stop)

    def _keeps_best(self):
        return False

    @property
    def best_epoch_(self):
        """The epoch (1-based) whose weights keep_best restored; None unless keep_best with validation data."""
        if not hasattr(self, "_best"):
            raise AttributeError("best_epoch_ is set by fit; this model is not fitted yet.")
        return None if self._best is None else self._best[1]

    def _weights(self):
        return {name: getattr(self, name + "_") for name in self.WEIGHTS}

    def _set_weights(self, weights):
        for name, w in weights.items():
            setattr(self, name + "_", w)

    def _optimizer_constants(self):
        return dict(lr=self._lr, momentum=self.momentum, decay_rate=self.decay_rate,
                    beta1=self.beta1, beta2=self.beta2, eps=self.eps)

    def _init_run(self, D, C, dt):
        rng = np.random.Generator(np.random.PCG64(self.seed))
        self._rng = rng
        self._set_weights(self._init_weights(D, C, dt, rng))
        self._epoch = 0
        self._iteration = 0
        self._pos = 0
        self._lr = float(self.lr)
        self._epoch_loss_sum = 0.0
        self._epoch_steps = 0
        self._epoch_rng_state = rng.bit_generator.state
        self.loss_history_ = []
        self.epoch_history_ = []
        self._best = None  # (val_acc, epoch, weights) of the best epoch, when kept
        self._final_iterate = None
        self._opt = {name: {} for name in self.WEIGHTS}
        if self.optimizer == "lbfgs":
            self._init_lbfgs()
        elif self.optimizer in OPTIMIZERS:
            hyper = self._optimizer_constants()
            self._opt = {name: init_state(self.optimizer, w, **hyper) for name, w in self._weights().items()}

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
                    loss, grads = self._minibatch_loss_grad(X[idx], y[idx])
                    self._iteration += 1
                    self.loss_history_.append(loss)
                    if not np.isfinite(loss):
                        self._diverged(loss)
                    # In place: the weights are the loop's own arrays (snapshots and states copy).
                    for name in self.WEIGHTS:
                        update_in_blocks(update, getattr(self, name + "_"), grads[name], self._opt[name])
                if not all(np.isfinite(w).all() for w in self._weights().values()):
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
            for opt in self._opt.values():
                opt["lr"] = self._lr
            self._epoch_rng_state = self._rng.bit_generator.state
            # Called only now, so a checkpoint written from on_epoch already holds the next
            # epoch's learning rate and generator state.
            if on_epoch is not None:
                on_epoch(info)

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
        if self._keeps_best():
            # Strictly better only: on a tie the earlier (less trained) epoch is kept.
            if info["val_acc"] is not None and (self._best is None or info["val_acc"] > self._best[0]):
                self._best = (info["val_acc"], self._epoch, {n: w.copy() for n, w in self._weights().items()})
            info["best_epoch"] = None if self._best is None else self._best[1]
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
        Keys: optimizer; one per weight (its name); epoch, iteration, batch_pos, lr,
        epoch_loss_sum, epoch_steps, rng_state, loss_history, epoch_history; the update
        rule's slots as opt_<weight>_<slot> (opt_<weight>_t for Adam's step count);
        lbfgs_s, lbfgs_y (pairs, P = total weight size), lbfgs_done and lbfgs_theta for
        L-BFGS; best_epoch, best_val_acc and best_<weight> once a kept best epoch exists.
        """
        if not hasattr(self, "_epoch"):
            raise ValueError("this classifier has not been fitted; there is no state to save.")
        weights = self._final_iterate if self._final_iterate is not None else self._weights()
        state = {"optimizer": np.array(self.optimizer)}
        state.update({name: w.copy() for name, w in weights.items()})
        state.update({
            "epoch": np.int64(self._epoch),
            "iteration": np.int64(self._iteration),
            "batch_pos": np.int64(self._pos),
            "lr": np.float64(self._lr),
            "epoch_loss_sum": np.float64(self._epoch_loss_sum),
            "epoch_steps": np.int64(self._epoch_steps),
            "rng_state": np.array(json.dumps(self._epoch_rng_state)),
            "loss_history": np.asarray(self.loss_history_, dtype=np.float64),
            "epoch_history": np.array(json.dumps(self.epoch_history_)),
        })
        if self.optimizer == "lbfgs":
            state.update(self._lbfgs_state(sum(w.size for w in weights.values())))
        for name in self.WEIGHTS:
            for key, value in self._opt[name].items():
                if isinstance(value, np.ndarray):
                    state[f"opt_{name}_{key}"] = value.copy()
                elif key == "t":
                    state[f"opt_{name}_t"] = np.int64(value)
        if self._best is not None:
            state["best_val_acc"] = np.float64(self._best[0])
            state["best_epoch"] = np.int64(self._best[1])
            state.update({f"best_{name}": w.copy() for name, w in self._best[2].items()})
        return state

    def _restore(self, state, D, C, dt):
        state = {key: state[key] for key in state}
        if str(state["optimizer"]) != self.optimizer:
            raise ValueError(
                f"the saved state was made with optimizer {str(state['optimizer'])!r} but this "
                f"classifier uses {self.optimizer!r}; resume with the same settings."
            )
        shapes = self._weight_shapes(D, C)
        for name, shape in shapes.items():
            if name not in state or state[name].shape != shape:
                found = state[name].shape if name in state else "nothing"
                raise ValueError(
                    f"the saved weights {name} have shape {found} but the data and settings need "
                    f"{shape}; resume on the same data with the same settings."
                )
        self._set_weights({name: np.array(state[name], dtype=dt) for name in shapes})
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
        self._final_iterate = None
        self._best = None
        if "best_epoch" in state and self._keeps_best():
            self._best = (float(state["best_val_acc"]), int(state["best_epoch"]),
                          {name: np.array(state[f"best_{name}"], dtype=dt) for name in shapes})
        self._opt = {name: {} for name in shapes}
        if self.optimizer == "lbfgs":
            self._restore_lbfgs(state, sum(int(np.prod(s)) for s in shapes.values()))
        elif self.optimizer in OPTIMIZERS:
            hyper = self._optimizer_constants()
            for name, w in self._weights().items():
                opt = init_state(self.optimizer, w, **hyper)
                for key in opt:
                    saved = state.get(f"opt_{name}_{key}")
                    if saved is None:
                        continue
                    opt[key] = int(saved) if key == "t" else np.array(saved, dtype=dt)
                self._opt[name] = opt

    # ------------------------------------------------------------------ prediction
    def predict(self, X):
        """Highest-scoring class of each example: (N,) int64."""
        return np.argmax(self.decision_function(X), axis=1)

    def score(self, X, y):
        """Accuracy of predict(X) against y (N,)."""
        return accuracy(y, self.predict(X))

    def _check_fitted(self):
        if not hasattr(self, self.WEIGHTS[0] + "_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

    def _check_X(self, X):
        """X as a 2-D array (N, D) in the weights' dtype, its D checked against the first weight's rows."""
        self._check_fitted()
        first = getattr(self, self.WEIGHTS[0] + "_")
        X = check_X(X, "X", first.dtype)
        if X.shape[1] != first.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the model was trained on {first.shape[0]}; "
                "preprocess inputs like the training data."
            )
        return X
