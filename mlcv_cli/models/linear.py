"""Linear classifiers: the multiclass SVM (hinge loss) and softmax (cross-entropy), scores X @ W + b."""

from __future__ import annotations

import numpy as np

from ..core.gradcheck import check_loss_gradient
from ..core.linear import LBFGS_MEMORY, LinearClassifier
from ..errors import ModelFileError
from ..system import threads
from .base import KEEP_BEST, REG, ModelType, key

_IMAGES_FIX = "fewer images (data.num_train)"
_KEYS = {
    "model.reg": REG,
    "model.penalty": key("l2", str, "regularizer", choices=("l2", "l1", "elasticnet", "none")),
    "model.l1_ratio": key(0.5, float, "elasticnet: weight of the L1 part", low=0.0, high=1.0),
    "model.delta": key(1.0, float, "SVM margin", low=0.0, low_open=True),
    "model.squared_hinge": key(False, bool, "SVM: square each hinge term"),
    "train.keep_best": KEEP_BEST,
}
_USES = frozenset({"model.reg", "model.penalty", "model.l1_ratio", "train.*", "preprocess.scale", "preprocess.subtract_mean"})
# The linear settings were tuned on 35,000/5,000 CIFAR-10 images (bench/bench_accuracy.py).
_DEFAULTS = {
    "preprocess.scale": 1.0 / 255.0,
    "train.optimizer": "momentum",
    "train.momentum": 0.9,
    "train.batch_size": 200,
    "train.epochs": 20,
}


class LinearModel(ModelType):
    """One loss of the linear family; svm and softmax are its two instances."""

    keys = _KEYS
    default_grid = {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01, 0.1]}
    plots = ("loss", "weights")
    weights_title = "weights per class"
    gradcheck_penalties = ("l2", "l1", "elasticnet", "none")

    def __init__(self, name, summary, score_kind, sklearn_name, uses, defaults):
        self.name, self.summary, self.score_kind, self.sklearn_name = name, summary, score_kind, sklearn_name
        self.uses, self.defaults = uses, defaults

    def build(self, cfg):
        m, t = cfg.model, cfg.train
        return LinearClassifier(
            loss=self.name, reg=m.reg, penalty=m.penalty, l1_ratio=m.l1_ratio, delta=m.delta, squared_hinge=m.squared_hinge,
            optimizer=t.optimizer, lr=t.lr, lr_decay=t.lr_decay, batch_size=t.batch_size, epochs=t.epochs, momentum=t.momentum,
            decay_rate=t.decay_rate, beta1=t.beta1, beta2=t.beta2, eps=t.eps, init_scale=t.init_scale,
            random_search_tries=t.random_search_tries, seed=cfg.seed, keep_best=t.keep_best,
        )

    def param_shapes(self, cfg, D, C):
        return {"W": (D, C), "b": (C,)}

    def fit_threads(self, cfg):
        # Minibatch steps multiply small matrices (batch x D by D x C) thousands of times: BLAS
        # threads cost more than they save there; full-batch L-BFGS products keep every core.
        return None if cfg.train.optimizer == "lbfgs" else threads.LINEAR_FIT_THREADS

    # -- model files ---------------------------------------------------------------------

    def arrays(self, cfg, est, splits):
        return {"W": est.W_.astype(np.float32), "b": est.b_.astype(np.float32)}

    def check_arrays(self, path, data, D, C, pixels_dim):
        W, b = data.get("W"), data.get("b")
        if W is None or b is None:
            missing = ", ".join(n for n, a in (("W", W), ("b", b)) if a is None)
            raise ModelFileError(f"{path}: a {self.name} model needs {missing}; the file is incomplete")
        if W.shape != (D, C) or b.shape != (C,):
            raise ModelFileError(f"{path}: W must be ({D}, {C}) and b ({C},) for {C} classes and {D} features; found {W.shape} and {b.shape}")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ModelFileError(f"{path}: the weights hold NaN or inf; the run that wrote them diverged")
        return {"W": W, "b": b}

    def from_arrays(self, arrays, C, rows, config_yaml):
        est = LinearClassifier(loss=self.name)
        est.W_ = np.asarray(arrays["W"], np.float32)
        est.b_ = np.asarray(arrays["b"], np.float32)
        est.num_classes_ = C
        return est

    def weight_images(self, arrays, image_shape):
        W = np.asarray(arrays["W"], np.float64)
        return np.moveaxis(W, 1, 0).reshape(W.shape[1], *image_shape), None

    # -- resources ------------------------------------------------------------------------------

    def memory_parts(self, cfg, n_train, D, C, raw_pixels, n_queries):
        weights = D * C * 4
        parts = [(f"weights, gradients and optimizer state {D:,} x {C}", 5 * weights, "smaller features"),
                 (f"minibatch {cfg.train.batch_size:,} x {D:,}", 2 * min(cfg.train.batch_size, n_train) * D * 4,
                  "a smaller train.batch_size")]
        if cfg.train.optimizer == "lbfgs":
            parts.append(("L-BFGS history and full-batch scores", (D * C + C) * 8 * (2 * LBFGS_MEMORY + 6) + n_train * C * 8 * 4,
                          "train.optimizer other than lbfgs, or " + _IMAGES_FIX))
        return parts

    def gradcheck(self, reg, checks, seed, penalty):
        return check_loss_gradient(self.name, reg, num_checks=checks, seed=seed, penalty=penalty)


MODEL_TYPES = (
    LinearModel("svm", "multiclass SVM (hinge loss), trained by minibatch gradient descent or L-BFGS", "score",
                "LinearSVMClassifier", _USES | {"model.delta", "model.squared_hinge"},
                {**_DEFAULTS, "name": "svm", "model.reg": 3e-3, "train.lr": 3e-3, "train.lr_decay": 0.85}),
    LinearModel("softmax", "softmax (cross-entropy) classifier, trained by minibatch gradient descent or L-BFGS", "probability",
                "SoftmaxClassifier", _USES, {**_DEFAULTS, "name": "softmax", "model.reg": 1e-3, "train.lr": 1e-2, "train.lr_decay": 0.9}),
)
