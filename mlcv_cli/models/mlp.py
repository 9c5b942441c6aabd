"""The two-layer network: affine - ReLU - affine - softmax, trained like the linear models."""

from __future__ import annotations

import math

import numpy as np

from ..core.gradcheck import check_mlp_gradient
from ..core.linear import LBFGS_MEMORY
from ..core.mlp import ACTIVATIONS, INITS, OPTIMIZER_NAMES, TwoLayerNet
from ..errors import ConfigError, ModelFileError
from .base import KEEP_BEST, REG, ModelType, checked_weights, key

_IMAGES_FIX = "fewer images (data.num_train)"


class MLPModel(ModelType):
    name = "mlp"
    summary = "two-layer neural network (affine - ReLU - affine - softmax), minibatch gradient descent"
    keys = {
        "model.hidden_size": key(100, int, "mlp: hidden units H", low=1, high=65536),
        "model.activation": key("relu", str, "mlp: relu, or leaky_relu (slope model.leaky_slope below 0)", choices=ACTIVATIONS),
        "model.leaky_slope": key(0.01, float, "mlp: leaky_relu's slope for negative inputs", low=0.0, high=1.0, high_open=True),
        "model.dropout": key(0.0, float, "mlp: probability of dropping a hidden unit in a training step (inverted dropout; 0: off)",
                             low=0.0, high=1.0, high_open=True),
        "model.init": key("he", str, "mlp: he (N(0, 2/fan_in)) or scale (train.init_scale * N(0, 1))", choices=INITS),
        "model.reg": REG,
        "train.keep_best": KEEP_BEST,
    }
    uses = frozenset({"model.hidden_size", "model.activation", "model.leaky_slope", "model.dropout", "model.init", "model.reg",
                      "train.*", "preprocess.scale", "preprocess.subtract_mean"})
    # Measured on the shipped sample (configs/mlp.yaml); CIFAR-10 figures in docs/.
    defaults = {
        "name": "mlp",
        "preprocess.scale": 1.0 / 255.0,
        "model.hidden_size": 200,
        "model.reg": 3e-3,
        "train.optimizer": "adam",
        "train.lr": 1e-3,
        "train.lr_decay": 0.95,
        "train.batch_size": 200,
        "train.epochs": 10,
    }
    default_grid = {"train.lr": [0.0003, 0.001, 0.003], "model.reg": [0.0001, 0.001, 0.01]}
    score_kind = "probability"
    plots = ("loss", "weights")
    weights_title = "first-layer weights (hidden units)"
    sklearn_name = "MLPClassifier"
    gradcheck_penalties = ("l2",)

    def build(self, cfg):
        m, t = cfg.model, cfg.train
        return TwoLayerNet(
            hidden_size=m.hidden_size, reg=m.reg, activation=m.activation, leaky_slope=m.leaky_slope, dropout=m.dropout, init=m.init,
            init_scale=t.init_scale, optimizer=t.optimizer, lr=t.lr, lr_decay=t.lr_decay, batch_size=t.batch_size, epochs=t.epochs,
            momentum=t.momentum, decay_rate=t.decay_rate, beta1=t.beta1, beta2=t.beta2, eps=t.eps, seed=cfg.seed,
            keep_best=t.keep_best,
        )

    def validate(self, cfg):
        if cfg.train.optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(f"train.optimizer: the mlp model trains with {', '.join(OPTIMIZER_NAMES)}; found {cfg.train.optimizer!r}")
        if cfg.train.optimizer == "lbfgs" and cfg.model.dropout > 0:
            raise ConfigError("model.dropout: lbfgs needs a fixed objective and dropout makes each step random; "
                              "set model.dropout=0 or use a first-order optimizer such as adam")

    def param_shapes(self, cfg, D, C):
        H = cfg.model.hidden_size
        return {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}

    # -- model files ---------------------------------------------------------------------

    def arrays(self, cfg, est, splits):
        weights = {name: getattr(est, name + "_").astype(np.float32) for name in est.WEIGHTS}
        return {**weights, "activation": np.array(est.activation), "leaky_slope": np.array(float(est.leaky_slope))}

    def check_arrays(self, path, data, D, C, pixels_dim):
        # H is what most of W1, b1 and W2 say, so the one damaged array is the one named
        said = [a.shape[axis] for a, axis in ((data.get("W1"), 1), (data.get("b1"), 0), (data.get("W2"), 0))
                if a is not None and a.ndim > axis]
        H = max(set(said), key=said.count) if said else 0
        W1 = data.get("W1")
        weights, missing = checked_weights(path, data, {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)})
        activation, slope = data.get("activation"), data.get("leaky_slope")
        missing += [name for name, a in (("activation", activation), ("leaky_slope", slope)) if a is None]
        if missing:
            raise ModelFileError(f"{path}: an mlp model needs {', '.join(missing)}; the file is incomplete")
        if H < 1:
            raise ModelFileError(f"{path}: W1 must be ({D}, H) with H >= 1; found {None if W1 is None else W1.shape}")
        if activation.dtype.kind != "U" or activation.ndim != 0 or str(activation) not in ACTIVATIONS:
            raise ModelFileError(f"{path}: entry 'activation' must be one of {', '.join(ACTIVATIONS)}; the file is damaged")
        if slope.dtype.kind != "f" or slope.ndim != 0 or not (0 <= float(slope) < 1):
            raise ModelFileError(f"{path}: entry 'leaky_slope' must be a number in [0, 1); the file is damaged")
        return {**weights, "activation": activation, "leaky_slope": slope}

    def from_arrays(self, arrays, C, rows, config_yaml):
        est = TwoLayerNet(hidden_size=arrays["W1"].shape[1], activation=str(arrays["activation"]),
                          leaky_slope=float(arrays["leaky_slope"]))
        for name in est.WEIGHTS:
            setattr(est, name + "_", np.asarray(arrays[name], np.float32))
        est.num_classes_ = C
        return est

    def weight_images(self, arrays, image_shape):
        W1 = np.asarray(arrays["W1"], np.float64)
        return np.moveaxis(W1, 1, 0).reshape(W1.shape[1], *image_shape), [f"unit {i}" for i in range(W1.shape[1])]

    # -- resources ------------------------------------------------------------------------------

    def memory_parts(self, cfg, n_train, D, C, raw_pixels, n_queries):
        H = cfg.model.hidden_size
        P = D * H + H + H * C + C
        batch = min(cfg.train.batch_size, n_train)
        parts = [(f"weights, gradients and optimizer state {D:,} x {H:,} + {H:,} x {C}", 5 * P * 4,
                  "a smaller model.hidden_size or smaller features"),
                 (f"minibatch {batch:,} x ({D:,} + 3 x {H:,})", batch * (2 * D + 3 * H + 2 * C) * 4, "a smaller train.batch_size")]
        if cfg.train.optimizer == "lbfgs":
            parts.append(("L-BFGS history and full-batch activations", P * 8 * (2 * LBFGS_MEMORY + 6) + n_train * (2 * H + 2 * C) * 8,
                          "train.optimizer other than lbfgs, or " + _IMAGES_FIX))
        # scoring a chunk of queries holds its hidden layer
        parts.append(("scoring activations", min(n_queries, 2000) * H * 4 * 2, "a smaller model.hidden_size"))
        return parts

    def gradcheck(self, reg, checks, seed, penalty):
        return check_mlp_gradient(reg, num_checks=max(1, math.ceil(checks / 4)), seed=seed)


MODEL_TYPES = (MLPModel(),)
