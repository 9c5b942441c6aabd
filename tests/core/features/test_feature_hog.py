"""HOG against a per-pixel loop reference on tiny images."""
import math

import numpy as np
import pytest

from mlcv_cli.core.features import hog
from mlcv_cli.core.features.hog import HOG


def _loop_cells(img, B, cs, signed):
    H, W, C = img.shape
    x = img.astype(np.float64)
    cy, cx = H // cs, W // cs
    hist = np.zeros((cy, cx, B))
    span = 360.0 if signed else 180.0
    for r in range(cy * cs):
        for c in range(cx * cs):
            best = (-1.0, 0.0, 0.0)
            for ch in range(C):
                gx = x[r, c + 1, ch] - x[r, c - 1, ch] if 0 < c < W - 1 else 0.0
                gy = x[r + 1, c, ch] - x[r - 1, c, ch] if 0 < r < H - 1 else 0.0
                m = math.hypot(gx, gy)
                if m > best[0]:
                    best = (m, gx, gy)
            m, gx, gy = best
            angle = math.degrees(math.atan2(-gy, gx)) % 360.0  # counter-clockwise, y up
            pos = (angle % span) / (span / B) - 0.5
            lo = math.floor(pos)
            w = pos - lo
            hist[r // cs, c // cs, lo % B] += m * (1 - w)
            hist[r // cs, c // cs, (lo + 1) % B] += m * w
    return hist


def _loop_hog(img, B, cs, bs, norm, signed):
    hist = _loop_cells(img, B, cs, signed)
    cy, cx = hist.shape[:2]
    out = []
    for by in range(cy - bs + 1):
        for bx in range(cx - bs + 1):
            v = np.concatenate([hist[by + i, bx + j] for i in range(bs) for j in range(bs)])
            if norm == "L1":
                v = v / (np.abs(v).sum() + hog._EPS)
            else:
                v = v / math.sqrt(sum(v * v) + hog._EPS ** 2)
                if norm == "L2-Hys":
                    v = np.minimum(v, 0.2)
                    v = v / math.sqrt(sum(v * v) + hog._EPS ** 2)
            out.append(v)
    return np.concatenate(out)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("B,cs,bs,norm,signed", [
    (9, 3, 2, "L2-Hys", False),
    (6, 2, 3, "L2", True),
    (4, 4, 1, "L1", False),
    (5, 3, 2, "L2-Hys", True),
])
def test_hog_against_loop_reference(channels, B, cs, bs, norm, signed):
    images = np.random.default_rng(0).integers(0, 256, (3, 11, 13, channels), dtype=np.uint8)
    images[0, :, :6] = 40  # flat regions and a straight edge, besides noise
    extractor = HOG(orientations=B, cell_size=cs, block_size=bs, block_norm=norm, signed=signed).fit(images)
    got = extractor.transform(images)
    assert got.shape == (3, extractor.output_dim(images.shape[1:]))
    for img, row in zip(images, got):
        np.testing.assert_allclose(row, _loop_hog(img, B, cs, bs, norm, signed), rtol=1e-4, atol=1e-5)
    cells = extractor.cell_histograms(images)
    for img, h in zip(images, cells):
        np.testing.assert_allclose(h, _loop_cells(img, B, cs, signed), rtol=1e-4, atol=1e-2)


def test_vertical_edge_votes_for_horizontal_gradient():
    img = np.zeros((1, 8, 8, 1), np.uint8)
    img[0, :, 4:] = 200  # dark left, bright right: the gradient points along +x (0 degrees)
    extractor = HOG(orientations=4, cell_size=8, block_size=1)
    hist = extractor.cell_histograms(img)[0, 0, 0]
    # Columns 3 and 4 of all 8 rows see a difference of 200: 3200 in all. 0 degrees lies
    # halfway between the last bin (157.5) and the first (22.5): half each.
    centers = extractor.orientation_centers()
    np.testing.assert_allclose(centers, [22.5, 67.5, 112.5, 157.5])
    np.testing.assert_allclose(hist, [1600.0, 0, 0, 1600.0])


def test_flat_image_gives_zero_features():
    img = np.full((2, 16, 16, 3), 77, np.uint8)
    out = HOG(cell_size=4).fit(img).transform(img)
    assert np.all(out == 0) and np.isfinite(out).all()


def test_chunking_changes_nothing():
    images = np.random.default_rng(1).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    whole = HOG().fit(images).transform(images)
    np.testing.assert_array_equal(HOG(max_memory=2**20).fit(images).transform(images), whole)


@pytest.mark.parametrize("params,name", [
    (dict(cell_size=33), "cell_size"),
    (dict(cell_size=0), "cell_size"),
    (dict(cell_size=8, block_size=5), "block_size"),
    (dict(orientations=0), "orientations"),
    (dict(block_norm="L3"), "block_norm"),
    (dict(signed=1), "signed"),
    (dict(max_memory=10), "max_memory"),
])
def test_bad_parameters_name_the_parameter(params, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        HOG(**params).check((32, 32, 3))
