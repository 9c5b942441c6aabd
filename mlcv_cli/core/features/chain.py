"""FeatureChain: an ordered list of extractors as ONE fitted object (outputs concatenated,
then standardised), whose learned state is a flat dict of plain arrays."""
import hashlib
import json

import numpy as np

from .. import features as registry

_CHUNK_BYTES = 64 << 20


class StepError(ValueError):
    """An extractor's parameter problem; ``index`` is the step's position in the chain."""

    def __init__(self, index, error):
        super().__init__(f"{index}.{error}")
        self.index = index
        self.error = str(error)


class FeatureChain:
    """uint8 images (N, H, W, C) -> float32 features (N, D), D the sum of the steps' dims.

    Hyperparameters: steps, a list of (type name, params dict) in order (see
    ``core.features.TYPES``); standardize: True, False or "auto" (True unless every step
    is ``pixels``, so raw pixels keep exactly their usual numbers). Standardisation
    subtracts each feature's training mean and divides by sqrt(var + 0.01 * mean var): the
    floor, relative to the features' own scale, keeps rarely active features from being
    blown up.

    Learned: extractors_ (the fitted extractors), mean_ and scale_ (D,) float32 when
    standardising (else None), image_shape_.
    """

    def __init__(self, steps, standardize="auto"):
        self.steps = steps
        self.standardize = standardize

    # -- parameters ---------------------------------------------------------------------

    @property
    def standardizes(self):
        if self.standardize == "auto":
            return any(name != "pixels" for name, _ in self.steps)
        return bool(self.standardize)

    @property
    def pixels_only(self):
        return all(name == "pixels" for name, _ in self.steps)

    def _build(self):
        if not self.steps:
            raise ValueError("steps: expected at least one extractor, found none")
        built = []
        for i, (name, params) in enumerate(self.steps):
            try:
                cls = registry.extractor_class(name)
            except KeyError:
                raise StepError(i, f"type: unknown feature type {name!r}") from None
            built.append(cls(**params))
        return built

    def check(self, image_shape):
        """Raise StepError naming the step and parameter that cannot work on images of image_shape."""
        for i, ext in enumerate(self._build()):
            try:
                ext.check(tuple(image_shape))
            except ValueError as exc:
                raise StepError(i, exc) from None

    def output_dim(self, image_shape):
        return sum(ext.output_dim(tuple(image_shape)) for ext in self._build())

    # -- fitting and applying -------------------------------------------------------------

    def fit(self, images, progress=None):
        self.fit_transform(images, progress)
        return self

    def fit_transform(self, images, progress=None):
        """Fit every step (and the standardisation) on images; return their features (N, D)."""
        self.fit_steps(images, progress)
        return self.fit_standardization(self.encode(images, progress))

    # Fitting in three stages lets a caller keep each stage's result (the feature cache keeps
    # the fitted steps and the encoded rows chunk by chunk, so an interrupted fit goes on):
    # fit_steps(images), then encode(images) in any row chunks, then fit_standardization(X).

    def fit_steps(self, images, progress=None):
        """Fit every step on images (N, H, W, C), not the standardisation yet; returns self."""
        self.check(images.shape[1:])
        extractors = self._build()
        for ext in extractors:
            ext.fit(images, progress=progress)
        self.extractors_ = extractors
        self.image_shape_ = tuple(images.shape[1:])
        self.mean_ = self.scale_ = None
        return self

    def encode(self, images, progress=None):
        """The fitted steps' features of images, concatenated, not standardised: float32 (N, D).

        Row by row: an image's features do not depend on the other images encoded with it."""
        self._check_shape(images)
        return self._concatenated(images, progress)

    def fit_standardization(self, X):
        """Learn the standardisation from the encoded training rows X (N, D) (when the chain
        standardises) and apply it to X in place; returns X."""
        if self.standardizes:
            self.mean_, self.scale_ = _mean_and_scale(X)
            _standardize_inplace(X, self.mean_, self.scale_)
        return X

    def transform(self, images, progress=None):
        """Features (N, D) float32 of images shaped like the training images."""
        X = self.encode(images, progress)
        if self.mean_ is not None:
            _standardize_inplace(X, self.mean_, self.scale_)
        return X

    def _check_shape(self, images):
        if tuple(images.shape[1:]) != self.image_shape_:
            raise ValueError(f"images: expected shape (N, {', '.join(map(str, self.image_shape_))}), found {images.shape}")

    def _concatenated(self, images, progress):
        if len(self.extractors_) == 1:  # no copy: plain pixels stay bit for bit what they were
            return np.ascontiguousarray(self.extractors_[0].transform(images, progress=progress), np.float32)
        dims = [ext.output_dim(self.image_shape_) for ext in self.extractors_]
        out = np.empty((len(images), sum(dims)), np.float32)
        start = 0
        for ext, d in zip(self.extractors_, dims):
            out[:, start : start + d] = ext.transform(images, progress=progress)
            start += d
        return out

    # -- state ----------------------------------------------------------------------------------

    def spec(self):
        """The hyperparameters as JSON-able data: {"steps": [{"type": ..., **params}], "standardize": ...}.

        A parameter an extractor lists in ``ADDED_LATER`` is left out while it holds the value
        that means "as before it existed": the spec, and so the cache keys and fingerprints,
        of such a chain stay those of chains saved before the parameter was added.
        """
        steps = []
        for name, params in self.steps:
            before = getattr(registry.extractor_class(name), "ADDED_LATER", {})
            steps.append({"type": name, **{k: v for k, v in params.items() if not (k in before and v == before[k])}})
        return {"steps": steps, "standardize": self.standardize}

    def state(self):
        """Learned arrays, flat: '<step>.<name>' for each step's state, 'mean'/'scale' for standardisation."""
        arrays = {"image_shape": np.array(self.image_shape_, np.int64)}
        for i, ext in enumerate(self.extractors_):
            for name, value in ext.state().items():
                arrays[f"{i}.{name}"] = np.asarray(value)
        if self.mean_ is not None:
            arrays["mean"] = self.mean_
            arrays["scale"] = self.scale_
        return arrays

    def fingerprint(self):
        """sha256 hex of the hyperparameters and every learned array (names, dtypes, shapes, bytes)."""
        h = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode())
        for name, value in sorted(self.state().items()):
            value = np.ascontiguousarray(value)
            h.update(f"|{name}|{value.dtype.str}|{value.shape}|".encode())
            h.update(value.tobytes())
        return h.hexdigest()

    @classmethod
    def from_spec(cls, spec):
        """An unfitted chain from ``spec()`` data (ValueError when malformed)."""
        if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
            raise ValueError("spec: expected {'steps': [...], 'standardize': ...}")
        steps = []
        for i, step in enumerate(spec["steps"]):
            if not isinstance(step, dict) or not isinstance(step.get("type"), str):
                raise StepError(i, "type: missing")
            params = {k: v for k, v in step.items() if k != "type"}
            steps.append((step["type"], params))
        standardize = spec.get("standardize", "auto")
        if standardize not in ("auto", True, False):
            raise ValueError(f"standardize: expected auto, true or false, found {standardize!r}")
        return cls(steps, standardize)

    @classmethod
    def from_state(cls, spec, arrays, steps_only=False):
        """A fitted chain rebuilt from ``spec()`` and ``state()``; ValueError naming the bad array.

        ``steps_only``: the state of a chain after ``fit_steps``, before its standardisation."""
        self = cls.from_spec(spec)
        shape = arrays.get("image_shape")
        if shape is None or shape.ndim != 1 or shape.dtype.kind not in "iu" or len(shape) != 3 or (shape < 1).any():
            raise ValueError("image_shape: expected 3 positive integers (H, W, C)")
        self.image_shape_ = tuple(int(v) for v in shape)
        known = {"image_shape", "mean", "scale"}
        extractors = []
        try:
            built = self._build()
        except TypeError as exc:  # a parameter this version's extractor does not take
            raise ValueError(f"spec: {exc}") from None
        for i, ((name, params), ext) in enumerate(zip(self.steps, built)):
            prefix = f"{i}."
            mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            known.update(prefix + k for k in mine)
            try:
                ext.check(self.image_shape_)
                fitted = type(ext).from_state(params, mine)
            except ValueError as exc:
                raise StepError(i, exc) from None
            if name == "pixels" and fitted.mean_.size not in (0, int(np.prod(self.image_shape_))):
                raise StepError(i, f"mean: expected {int(np.prod(self.image_shape_))} values or none, found {fitted.mean_.size}")
            extractors.append(fitted)
        self.extractors_ = extractors
        extra = sorted(set(arrays) - known)
        if extra:
            raise ValueError(f"{extra[0]}: not an array of this chain")
        D = sum(ext.output_dim(self.image_shape_) for ext in extractors)
        self.mean_ = self.scale_ = None
        if self.standardizes and not steps_only:
            for name in ("mean", "scale"):
                value = arrays.get(name)
                if value is None or value.shape != (D,) or value.dtype.kind != "f" or not np.isfinite(value).all():
                    raise ValueError(f"{name}: expected ({D},) finite floats (the feature standardisation)")
            if (arrays["scale"] <= 0).any():
                raise ValueError("scale: expected values > 0")
            self.mean_ = arrays["mean"].astype(np.float32)
            self.scale_ = arrays["scale"].astype(np.float32)
        elif "mean" in arrays or "scale" in arrays:
            what = "is fitted up to its standardisation" if steps_only else "does not standardise"
            raise ValueError(f"mean: this chain {what}, but the file holds a standardisation")
        return self


def _rows_per_chunk(D):
    return max(1, _CHUNK_BYTES // (8 * max(D, 1)))


def _mean_and_scale(X):
    """Per-feature mean and sqrt(var + 0.01 * mean var), accumulated in float64 over row chunks."""
    N, D = X.shape
    step = _rows_per_chunk(D)
    total = np.zeros(D, np.float64)
    for s in range(0, N, step):
        total += X[s : s + step].sum(axis=0, dtype=np.float64)
    mean = total / max(N, 1)
    sq = np.zeros(D, np.float64)
    for s in range(0, N, step):
        block = X[s : s + step].astype(np.float64) - mean
        sq += np.einsum("ij,ij->j", block, block)
    var = sq / max(N, 1)
    floor = 0.01 * var.mean() if var.mean() > 0 else 1.0
    return mean.astype(np.float32), np.sqrt(var + floor).astype(np.float32)


def _standardize_inplace(X, mean, scale):
    step = _rows_per_chunk(X.shape[1])
    inv = (1.0 / scale).astype(np.float32)
    for s in range(0, len(X), step):
        block = X[s : s + step]
        block -= mean
        block *= inv
