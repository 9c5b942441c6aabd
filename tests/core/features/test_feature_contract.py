"""The extractor contract (features/__init__.py) for hog, color_hist and kmeans."""
import numpy as np
import pytest

from mlcv_cli.core.features import extractor_class

CASES = {
    "hog": dict(cell_size=4, block_size=2),
    "color_hist": dict(bins=8),
    "kmeans": dict(num_centroids=6, patch_size=3, num_patches=300, iterations=2, seed=4),
}


def _images(n, seed, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 12, 12, channels), dtype=np.uint8)


@pytest.fixture(params=sorted(CASES))
def fitted(request):
    name = request.param
    cls = extractor_class(name)
    return name, cls, cls(**CASES[name]).fit(_images(20, 0))


def test_registry_names_the_classes():
    assert [extractor_class(n).__name__ for n in ("hog", "color_hist", "kmeans")] == ["HOG", "ColorHistogram", "KMeansFeatures"]


def test_state_round_trip_transforms_identically(fitted):
    name, cls, extractor = fitted
    arrays = extractor.state()
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "iuf" for v in arrays.values())
    rebuilt = cls.from_state(extractor.get_params(), arrays)
    images = _images(7, 1)
    np.testing.assert_array_equal(rebuilt.transform(images), extractor.transform(images))
    assert extractor.transform(images).dtype == np.float32
    assert extractor.transform(images).shape == (7, extractor.output_dim((12, 12, 3)))


def test_from_state_refuses_damaged_arrays_naming_them(fitted):
    name, cls, extractor = fitted
    params, arrays = extractor.get_params(), extractor.state()
    for key, value in arrays.items():
        wrong_shape = {**arrays, key: np.zeros(value.shape + (2,), value.dtype)}
        with pytest.raises(ValueError, match=rf"^{key}: expected shape"):
            cls.from_state(params, wrong_shape)
        missing = {k: v for k, v in arrays.items() if k != key}
        with pytest.raises(ValueError, match=rf"^{key}: expected a stored array"):
            cls.from_state(params, missing)
        with pytest.raises(ValueError, match=rf"^{key}: expected a"):
            cls.from_state(params, {**arrays, key: value.astype(str)})
        if value.dtype.kind == "f":
            nan = value.copy()
            nan.flat[0] = np.nan
            with pytest.raises(ValueError, match=rf"^{key}: expected finite values"):
                cls.from_state(params, {**arrays, key: nan})
    with pytest.raises(ValueError, match=r"^extra: unexpected arrays"):
        cls.from_state(params, {**arrays, "extra": np.zeros(1)})


def test_test_images_never_change_what_was_fitted(fitted):
    name, cls, _ = fitted
    train = _images(20, 0)
    test_a, test_b = _images(9, 2), _images(9, 3)
    first = cls(**CASES[name]).fit(train)
    before = first.state()
    first.transform(test_a)
    second = cls(**CASES[name]).fit(train)
    second.transform(test_b)
    for key, value in before.items():
        np.testing.assert_array_equal(first.state()[key], value)
        np.testing.assert_array_equal(second.state()[key], value)


def test_fit_is_deterministic(fitted):
    name, cls, extractor = fitted
    again = cls(**CASES[name]).fit(_images(20, 0))
    for key, value in extractor.state().items():
        np.testing.assert_array_equal(again.state()[key], value)


def test_misuse_is_a_clear_value_error(fitted):
    name, cls, extractor = fitted
    with pytest.raises(ValueError, match="not fitted"):
        cls(**CASES[name]).transform(_images(2, 0))
    with pytest.raises(ValueError, match="not fitted"):
        cls(**CASES[name]).state()
    with pytest.raises(ValueError, match=r"^images: expected shape \(N, 12, 12, 3\) as in fit"):
        extractor.transform(np.zeros((2, 10, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r"^images: expected dtype uint8"):
        extractor.transform(np.zeros((2, 12, 12, 3), np.float32))
    with pytest.raises(ValueError, match=r"^images: expected at least one image"):
        cls(**CASES[name]).fit(np.zeros((0, 12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r"^image_shape: expected \(H, W, C\)"):
        extractor.check((12, 12, 4))


def test_empty_batch_transforms_to_no_rows(fitted):
    name, cls, extractor = fitted
    out = extractor.transform(np.zeros((0, 12, 12, 3), np.uint8))
    assert out.shape == (0, extractor.output_dim((12, 12, 3)))


@pytest.mark.parametrize("name", ["hog", "kmeans"])
def test_grayscale_images(name):
    cls = extractor_class(name)
    gray = _images(10, 5, channels=1)
    extractor = cls(**CASES[name]).fit(gray)
    assert extractor.transform(gray).shape == (10, extractor.output_dim((12, 12, 1)))


def test_progress_reports_every_image(fitted):
    name, cls, extractor = fitted
    seen = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            seen.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    cls(**CASES[name]).fit(_images(20, 0), progress=Bar)
    extractor.transform(_images(13, 1), progress=Bar)
    assert seen and all(bar.closed and bar.n == bar.total for bar in seen)
    assert seen[-1].total == 13


def test_extractors_import_no_cli_library_and_load_numba_lazily():
    import subprocess
    import sys

    code = (
        "import sys; import mlcv_cli.core.features.hog, mlcv_cli.core.features.color_hist, "
        "mlcv_cli.core.features.kmeans; "
        "bad = [m for m in ('click', 'yaml', 'rich', 'tqdm', 'PIL', 'sklearn', 'numba', 'threadpoolctl') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
