"""Raw pixels as features: scale the values, then subtract the mean training image."""
import numpy as np

_CHUNK = 8192


class Pixels:
    """uint8 images (N, H, W, C) -> float32 rows (N, H*W*C): ``x * scale - mean``.

    Hyperparameters: scale > 0 (pixel values are multiplied by it); subtract_mean (learn
    and subtract the mean training image). Learned: mean_, float32 (H*W*C,), or shape (0,)
    when no mean is subtracted (or fit saw no images).
    """

    def __init__(self, scale=1.0, subtract_mean=True):
        self.scale = scale
        self.subtract_mean = subtract_mean

    def check(self, image_shape):
        if not (isinstance(self.scale, (int, float)) and np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale: expected a finite number > 0, found {self.scale!r}")

    def output_dim(self, image_shape):
        return int(np.prod(image_shape))

    def fit(self, images, progress=None):
        self.check(images.shape[1:])
        if not self.subtract_mean or len(images) == 0:
            self.mean_ = np.zeros(0, np.float32)
            return self
        # float64 accumulation: a float32 running sum over 50,000 images loses digits.
        rows = images.reshape(len(images), -1)
        mean = np.zeros(rows.shape[1], np.float64)
        for start in range(0, len(rows), _CHUNK):
            mean += rows[start : start + _CHUNK].sum(axis=0, dtype=np.float64)
        self.mean_ = ((mean / len(rows)) * self.scale).astype(np.float32)
        return self

    def transform(self, images, progress=None):
        X = images.reshape(len(images), -1).astype(np.float32)
        if self.scale != 1.0:
            X *= np.float32(self.scale)
        if self.mean_.size:
            X -= self.mean_
        return X

    def state(self):
        return {"mean": self.mean_}

    @classmethod
    def from_state(cls, params, arrays):
        self = cls(**params)
        mean = arrays.get("mean")
        if mean is None or not isinstance(mean, np.ndarray) or mean.ndim != 1 or mean.dtype.kind != "f":
            raise ValueError("mean: expected a 1-D float array (the mean image)")
        if not np.isfinite(mean).all():
            raise ValueError("mean: holds NaN or inf")
        self.mean_ = mean.astype(np.float32)
        return self
