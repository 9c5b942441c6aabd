"""data/channels.py: colour and gray conversions."""

import numpy as np
from PIL import Image

from mlcv_cli.data.channels import is_gray, match_channels, to_gray, to_rgb


def test_colour_and_gray_conversions_match_pillow():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 9, 7, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb])[..., None]
    np.testing.assert_array_equal(to_gray(rgb), expected)
    gray = expected
    np.testing.assert_array_equal(to_gray(to_rgb(gray)), gray)  # a gray image survives the round trip
    assert to_rgb(gray).shape == (5, 9, 7, 3) and match_channels(rgb, 3) is rgb and match_channels(gray, 1) is gray
    assert is_gray(to_rgb(gray)) and not is_gray(rgb)
