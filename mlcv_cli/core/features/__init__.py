"""Feature extractors: fit/transform objects on uint8 image batches (pure array code, no I/O).

The contract every extractor follows (scikit-learn style):

- ``__init__(**params)`` stores plain Python hyperparameters only (ints, floats, strings,
  bools); ``check(image_shape)`` raises ValueError("<param>: expected ..., found ...") naming
  the parameter, before any work, e.g. a patch larger than the image.
- ``fit(images, progress=None) -> self``: images is a uint8 array (N, H, W, C), C = 1 or 3;
  what is learned lives in attributes ending in ``_``. Unsupervised: no labels.
- ``transform(images, progress=None) -> float32 array (N, D)``, chunked over images so that
  temporaries stay under ``max_memory`` bytes whatever N is.
- ``output_dim(image_shape) -> int``: D for images of shape (H, W, C), known before fitting.
- ``state() -> dict[str, np.ndarray]``: the learned arrays (plain numeric arrays, no objects),
  and ``cls.from_state(params, arrays)``: a fitted extractor rebuilt from them, validated
  (ValueError naming the array on a wrong shape, dtype or non-finite value).
- ``progress`` is ``progress(total, desc)`` returning an object with ``update(n=1)`` and
  ``close()`` (the pipeline passes a tqdm bar factory); None means no progress.

Shared by hog, color_hist and kmeans (features/_common.py, ``Extractor``): every extractor
takes a ``max_memory`` parameter (bytes of temporaries, default 256 MiB; it changes no result,
so a config need not expose it); ``get_params()`` gives the ``params`` for ``from_state``;
``fit_transform``; a batch of 0 images transforms to a (0, D) array; ``state()`` always holds
``input_shape`` (3,) int64, and ``transform`` refuses images of another shape than ``fit`` saw.
For pictures: ``KMeansFeatures.filters()`` -> (K, p, p, C) centroids with the whitening undone
(scale each to [0, 1] to draw); ``HOG.cell_histograms(images)`` -> (N, cells_y, cells_x, B)
and ``HOG.orientation_centers()`` (degrees). ``KMeansFeatures.transform`` runs one worker
thread per CPU and holds BLAS to one thread meanwhile (threadpoolctl, when installed).

``EXTRACTORS`` maps the config's ``features[i].type`` to the class.
"""
import importlib

_MODULES = {
    "pixels": ("pixels", "Pixels"),
    "hog": ("hog", "HOG"),
    "color_hist": ("color_hist", "ColorHistogram"),
    "kmeans": ("kmeans", "KMeansFeatures"),
}


def extractor_class(type_name):
    """The extractor class for a features[i].type name (KeyError when unknown)."""
    module, cls = _MODULES[type_name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


TYPES = tuple(_MODULES)
