"""Hue histograms against the standard library's colorsys, pixel by pixel."""
import colorsys

import numpy as np
import pytest

from mlcv_cli.core.features.color_hist import ColorHistogram


@pytest.mark.parametrize("bins", [1, 6, 7, 10])
def test_hue_histogram_against_colorsys(bins):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 9, 7, 3), dtype=np.uint8)
    images[0, 0] = [[v, v, v] for v in range(0, 256, 37)]  # greys: hue 0
    images[1, 0] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255], [255, 128, 0]]
    got = ColorHistogram(bins=bins).fit(images).transform(images)
    for img, row in zip(images, got):
        want = np.zeros(bins)
        for r, g, b in img.reshape(-1, 3) / 255.0:
            h = colorsys.rgb_to_hsv(r, g, b)[0]
            want[min(int(h * bins), bins - 1)] += 1
        np.testing.assert_allclose(row, want / (9 * 7), rtol=1e-6)
        assert row.sum() == pytest.approx(1.0)


def test_pure_colours_land_in_their_bins():
    img = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]], np.uint8)  # hues 0, 1/3, 2/3
    np.testing.assert_allclose(ColorHistogram(bins=3).fit(img).transform(img), [[1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_grayscale_images_are_refused_naming_the_parameter():
    gray = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(ValueError, match=r"^image_shape: color_hist expected colour images with 3 channels, found 1"):
        ColorHistogram().fit(gray)
    with pytest.raises(ValueError, match=r"^bins: expected"):
        ColorHistogram(bins=0).check((8, 8, 3))


def test_chunking_changes_nothing():
    images = np.random.default_rng(1).integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
    whole = ColorHistogram().fit(images).transform(images)
    np.testing.assert_array_equal(ColorHistogram(max_memory=2**20).fit(images).transform(images), whole)
