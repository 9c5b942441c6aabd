"""Hue histograms: the colour of an image regardless of where it is, as a fraction of pixels per hue bin."""
import numpy as np

from ._common import DEFAULT_MAX_MEMORY, Extractor, check_int, chunk_size, progress_bar


def hue(images):
    """HSV hue of uint8 RGB images (N, H, W, 3): float64 (N, H, W) in [0, 1).

    The same arithmetic as the standard library's colorsys.rgb_to_hsv; grey pixels
    (r = g = b, no hue) get hue 0.
    """
    x = images.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    maxc = x.max(axis=-1)
    span = maxc - x.min(axis=-1)
    grey = span == 0
    span[grey] = 1.0
    rc, gc, bc = (maxc - r) / span, (maxc - g) / span, (maxc - b) / span
    h = np.where(r == maxc, bc - gc, np.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
    h = (h / 6.0) % 1.0
    h[grey] = 0.0
    return h


class ColorHistogram(Extractor):
    """Histogram of the hue of every pixel (nothing to learn).

    Hyperparameters: bins, equal widths over the hue circle [0, 1) starting at red;
    max_memory. Needs colour images (C = 3). Output: float32 (N, bins), each row the fraction
    of the image's pixels in each bin (sums to 1), so image size does not matter.
    """

    def __init__(self, bins=10, max_memory=DEFAULT_MAX_MEMORY):
        self.bins = bins
        self.max_memory = max_memory

    def _check_params(self, image_shape):
        check_int("bins", self.bins, 1)
        if image_shape[2] != 3:
            raise ValueError(
                f"image_shape: color_hist expected colour images with 3 channels, found {image_shape[2]} "
                "(grayscale images have no hue); remove color_hist from the features."
            )

    def output_dim(self, image_shape):
        return int(self.bins)

    def _fit(self, images, progress):
        pass

    def _transform(self, images, progress):
        N = images.shape[0]
        pixels = images.shape[1] * images.shape[2]
        out = np.empty((N, self.bins), np.float32)
        step = chunk_size(pixels * 8 * 10, self.max_memory)
        bar = progress_bar(progress, N, "colour histograms")
        try:
            for start in range(0, N, step):
                h = hue(images[start:start + step])
                n = h.shape[0]
                which = np.minimum((h * self.bins).astype(np.int64), self.bins - 1)
                which += (np.arange(n) * self.bins)[:, None, None]
                counts = np.bincount(which.ravel(), minlength=n * self.bins).reshape(n, self.bins)
                out[start:start + n] = counts / pixels
                bar.update(n)
        finally:
            bar.close()
        return out
