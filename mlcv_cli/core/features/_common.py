"""What every extractor shares: parameter checks, image checks, chunk sizes, state validation."""
import numpy as np

from ..model_selection import ParamsMixin

DEFAULT_MAX_MEMORY = 256 * 2**20
"""Bytes of temporaries a transform may hold at once (besides its output), unless told otherwise."""


class Extractor(ParamsMixin):
    """Base of the extractors: the shared half of the contract in features/__init__.py.

    Subclasses define ``_check_params(image_shape)``, ``_fit(images, progress)``,
    ``_transform(images, progress)``, ``output_dim(image_shape)``, and list their learned
    arrays in ``_learned`` as ``name -> (attribute, dtype, shape function of (params, input
    shape))``; ``input_shape_`` (H, W, C) is learned by every extractor.
    """

    _learned = {}

    def check(self, image_shape):
        """Raise ValueError("<param>: expected ..., found ...") for parameters unusable on images
        of shape (H, W, C); returns None."""
        image_shape = _image_shape(image_shape)
        check_int("max_memory", self.max_memory, 2**20)
        self._check_params(image_shape)

    def fit(self, images, progress=None):
        """Learn from uint8 images (N, H, W, C); returns self."""
        images = check_images(images)
        self.check(images.shape[1:])
        if images.shape[0] == 0:
            raise ValueError("images: expected at least one image to fit on, found 0.")
        self._fit(images, progress)
        self.input_shape_ = np.array(images.shape[1:], np.int64)
        return self

    def transform(self, images, progress=None):
        """Features of uint8 images (N, H, W, C): float32 (N, D)."""
        if not hasattr(self, "input_shape_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet; call fit(images) first.")
        images = check_images(images)
        if images.shape[1:] != tuple(self.input_shape_):
            raise ValueError(
                f"images: expected shape (N, {', '.join(map(str, self.input_shape_))}) as in fit, "
                f"found {images.shape}; resize them like the training images."
            )
        out = self._transform(images, progress)
        assert out.shape == (images.shape[0], self.output_dim(images.shape[1:]))
        return out

    def fit_transform(self, images, progress=None):
        return self.fit(images, progress).transform(images, progress)

    def state(self):
        """The learned arrays: dict name -> np.ndarray (numeric, no objects)."""
        if not hasattr(self, "input_shape_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet; there is no state to save.")
        arrays = {"input_shape": self.input_shape_.copy()}
        for name, (attr, _, _) in self._active_learned().items():
            arrays[name] = np.array(getattr(self, attr), copy=True)
        return arrays

    @classmethod
    def from_state(cls, params, arrays):
        """A fitted extractor from its hyperparameters and the arrays of ``state()``.

        Raises ValueError naming the parameter or array that is wrong.
        """
        obj = cls(**params)
        arrays = {key: np.asarray(arrays[key]) for key in arrays}
        shape = _state_array(arrays, "input_shape", np.int64, (3,))
        obj.check(tuple(int(v) for v in shape))
        expected = {"input_shape"} | set(obj._active_learned())
        extra = sorted(set(arrays) - expected)
        if extra:
            raise ValueError(f"{', '.join(extra)}: unexpected arrays for {cls.__name__} with these parameters.")
        for name, (attr, dtype, shape_of) in obj._active_learned().items():
            setattr(obj, attr, _state_array(arrays, name, dtype, shape_of(obj, tuple(shape))))
        obj.input_shape_ = shape
        return obj

    def _active_learned(self):
        return self._learned


def _state_array(arrays, name, dtype, shape):
    if name not in arrays:
        raise ValueError(f"{name}: expected a stored array, found none; the model file is incomplete.")
    value = arrays[name]
    if not (np.issubdtype(value.dtype, np.number) and np.can_cast(value.dtype, dtype, "same_kind")):
        raise ValueError(f"{name}: expected a {np.dtype(dtype).name} array, found dtype {value.dtype}.")
    if value.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, found {value.shape}.")
    value = value.astype(dtype)
    if not np.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values, found NaN or infinity.")
    return value


def _image_shape(image_shape):
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
        raise ValueError(f"image_shape: expected (H, W, C) with C = 1 or 3, found {tuple(image_shape)}.")
    return shape


def check_images(images):
    """images as a uint8 (N, H, W, C) array with C = 1 or 3 (ValueError otherwise)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images: expected dtype uint8 (pixel values 0-255), found {images.dtype}.")
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"images: expected shape (N, H, W, C) with C = 1 or 3, found {images.shape}.")
    return images


def check_int(name, value, low, high=None, what=""):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name}: expected {bound}{what}, found {value!r}.")


def check_float(name, value, low, strict=False):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{name}: expected a finite number {'>' if strict else '>='} {low}, found {value!r}.")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(str, choices))}, found {value!r}.")


def chunk_size(bytes_per_item, max_memory):
    """How many items fit in max_memory bytes of temporaries (at least one)."""
    return max(1, int(max_memory // max(1, bytes_per_item)))


class _NoProgress:
    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(progress, total, desc):
    """progress(total, desc), or a bar that shows nothing when progress is None."""
    return _NoProgress() if progress is None else progress(total, desc)
