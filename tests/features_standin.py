"""A tiny stand-in for a learned extractor, registered as "kmeans" by the ``standin_kmeans``
fixture so the pipeline's feature path is tested without the real encoder's cost."""
import numpy as np


class StandinKMeans:
    """Centroids: the mean colours of randomly chosen training patches; features: a
    triangle-style activation of each image quadrant's mean colour against each centroid."""

    def __init__(self, num_centroids=4, patch_size=2, stride=1, contrast_eps=10.0, whiten=True, whiten_eps=0.1,
                 num_patches=50, iterations=1, seed=0, encoder="triangle", alpha=0.5, pooling="quadrants", mirror=False):
        self.num_centroids = num_centroids
        self.patch_size = patch_size
        self.stride = stride
        self.num_patches = num_patches
        self.seed = seed
        self.fit_calls = 0

    def check(self, image_shape):
        if self.patch_size > min(image_shape[:2]):
            raise ValueError(f"patch_size: expected at most {min(image_shape[:2])} (the image size), found {self.patch_size}")

    def output_dim(self, image_shape):
        return 4 * self.num_centroids

    def fit(self, images, progress=None):
        StandinKMeans.fits += 1
        rng = np.random.default_rng(self.seed)
        n, h, w, _ = images.shape
        p = self.patch_size
        picks = rng.integers(0, n, self.num_centroids)
        ys = rng.integers(0, h - p + 1, self.num_centroids)
        xs = rng.integers(0, w - p + 1, self.num_centroids)
        self.centroids_ = np.stack([images[i, y:y + p, x:x + p].reshape(-1, 3).mean(0) for i, y, x in zip(picks, ys, xs)]).astype(np.float32)
        return self

    def transform(self, images, progress=None):
        StandinKMeans.transforms += 1
        h, w = images.shape[1] // 2, images.shape[2] // 2
        x = images.astype(np.float32)
        quads = np.stack([x[:, :h, :w], x[:, :h, w:], x[:, h:, :w], x[:, h:, w:]], 1).mean(axis=(2, 3))  # (N, 4, 3)
        d = np.sqrt(((quads[:, :, None, :] - self.centroids_[None, None]) ** 2).sum(-1))  # (N, 4, K)
        return np.maximum(0, d.mean(-1, keepdims=True) - d).reshape(len(images), -1).astype(np.float32)

    def state(self):
        return {"centroids": self.centroids_}

    @classmethod
    def from_state(cls, params, arrays):
        self = cls(**params)
        c = arrays.get("centroids")
        if c is None or c.shape != (self.num_centroids, 3) or c.dtype != np.float32:
            raise ValueError(f"centroids: expected float32 ({self.num_centroids}, 3)")
        self.centroids_ = c
        return self


StandinKMeans.fits = 0
StandinKMeans.transforms = 0


def install(monkeypatch):
    from mlcv_cli.core import features

    original = features.extractor_class
    monkeypatch.setattr(features, "extractor_class", lambda name: StandinKMeans if name == "kmeans" else original(name))
    StandinKMeans.fits = StandinKMeans.transforms = 0
    return StandinKMeans
