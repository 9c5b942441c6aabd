"""Histograms of oriented gradients (Dalal and Triggs 2005): per-cell orientation histograms,
normalised over overlapping blocks of cells."""
import numpy as np

from ._common import DEFAULT_MAX_MEMORY, Extractor, check_choice, check_int, chunk_size, progress_bar

BLOCK_NORMS = ("L2-Hys", "L2", "L1")
_EPS = 1e-3
"""Added under the block norm (gradients are on the 0-255 scale), so a flat block stays zero."""
_HYS_CLIP = 0.2


def gradients(images):
    """Gradient magnitude and orientation of uint8 images (N, H, W, C): two float32 (N, H, W).

    Centred differences [-1, 0, 1] inside the image, 0 on its border rows and columns; on
    colour images each pixel takes the channel with the largest gradient magnitude.
    Orientation in degrees, in [0, 360).
    """
    x = images.astype(np.float32)
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1] = x[:, 2:] - x[:, :-2]
    magnitude = np.hypot(gx, gy)
    if x.shape[3] > 1:
        best = magnitude.argmax(axis=3)[..., None]
        gx = np.take_along_axis(gx, best, axis=3)
        gy = np.take_along_axis(gy, best, axis=3)
        magnitude = np.take_along_axis(magnitude, best, axis=3)
    # y grows downwards in an image; flip it so angles run counter-clockwise as usual.
    angle = np.degrees(np.arctan2(-gy[..., 0], gx[..., 0]))
    angle %= 360
    return magnitude[..., 0], angle.astype(np.float32)


def orientation_votes(angle, orientations, signed):
    """Each pixel's two orientation bins and the weight of the lower one (linear interpolation
    between bin centres, wrapping around): (lo, hi) int64 and w_lo float32, all (N, H, W).

    Bin b covers [b, b + 1) * width with its centre at (b + 0.5) * width, width = 360 /
    orientations (signed) or 180 / orientations (unsigned: an edge and its reverse vote alike).
    """
    span = 360.0 if signed else 180.0
    position = (angle % span) / np.float32(span / orientations) - np.float32(0.5)
    lo = np.floor(position)
    w_hi = (position - lo).astype(np.float32)
    lo = lo.astype(np.int64) % orientations
    return lo, (lo + 1) % orientations, 1 - w_hi


class HOG(Extractor):
    """HOG descriptor of each image (nothing to learn).

    Hyperparameters: orientations (bins), unsigned (0-180 degrees) unless signed;
    cell_size (pixels; the last H % cell_size rows and W % cell_size columns are not used);
    block_size (cells per block side; blocks overlap with a stride of one cell);
    block_norm "L2-Hys" (L2, clip at 0.2, L2 again), "L2" or "L1"; max_memory.
    Output: float32 (N, blocks_y * blocks_x * block_size**2 * orientations), block-major.
    """

    def __init__(self, orientations=9, cell_size=4, block_size=2, block_norm="L2-Hys", signed=False,
                 max_memory=DEFAULT_MAX_MEMORY):
        self.orientations = orientations
        self.cell_size = cell_size
        self.block_size = block_size
        self.block_norm = block_norm
        self.signed = signed
        self.max_memory = max_memory

    def _check_params(self, image_shape):
        H, W, _ = image_shape
        check_int("orientations", self.orientations, 1)
        check_int("cell_size", self.cell_size, 1, min(H, W), f" (at most the image side of {H}x{W} images)")
        cells = min(H, W) // self.cell_size
        check_int("block_size", self.block_size, 1, cells,
                  f" (at most the {cells} cells of cell_size {self.cell_size} across {H}x{W} images)")
        check_choice("block_norm", self.block_norm, BLOCK_NORMS)
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"signed: expected true or false, found {self.signed!r}.")

    def _cells(self, image_shape):
        return image_shape[0] // self.cell_size, image_shape[1] // self.cell_size

    def output_dim(self, image_shape):
        cy, cx = self._cells(image_shape)
        b = self.block_size
        return (cy - b + 1) * (cx - b + 1) * b * b * self.orientations

    def _fit(self, images, progress):
        pass

    def cell_histograms(self, images):
        """Orientation histogram of every cell, before block normalisation (for pictures).

        images: uint8 (N, H, W, C). Returns float32 (N, cells_y, cells_x, orientations): the
        gradient magnitude voted into orientation bins (see ``orientation_centers``).
        """
        self.check(images.shape[1:])
        cy, cx = self._cells(images.shape[1:])
        s, B = self.cell_size, self.orientations
        magnitude, angle = gradients(images)
        magnitude, angle = magnitude[:, :cy * s, :cx * s], angle[:, :cy * s, :cx * s]
        lo, hi, w_lo = orientation_votes(angle, B, self.signed)
        hist = np.empty((images.shape[0], cy, cx, B), np.float32)
        for b in range(B):
            vote = magnitude * (w_lo * (lo == b) + (1 - w_lo) * (hi == b))
            hist[..., b] = vote.reshape(-1, cy, s, cx, s).sum(axis=(2, 4))
        return hist

    def orientation_centers(self):
        """Centre of each orientation bin in degrees: float64 (orientations,)."""
        span = 360.0 if self.signed else 180.0
        return (np.arange(self.orientations) + 0.5) * span / self.orientations

    def _normalize(self, v):
        """Normalise block vectors v (..., L) in place."""
        if self.block_norm == "L1":
            v /= np.abs(v).sum(axis=-1, keepdims=True) + np.float32(_EPS)
            return v
        v /= np.sqrt(np.einsum("...i,...i->...", v, v) + np.float32(_EPS ** 2))[..., None]
        if self.block_norm == "L2-Hys":
            np.minimum(v, np.float32(_HYS_CLIP), out=v)
            v /= np.sqrt(np.einsum("...i,...i->...", v, v) + np.float32(_EPS ** 2))[..., None]
        return v

    def _transform(self, images, progress):
        N = images.shape[0]
        H, W, C = images.shape[1:]
        b = self.block_size
        out = np.empty((N, self.output_dim(images.shape[1:])), np.float32)
        # Per image: float32 copies of the image, gradients and votes (about 12 planes).
        step = chunk_size(H * W * (12 * C + 12) * 4, self.max_memory)
        bar = progress_bar(progress, N, "HOG")
        try:
            for start in range(0, N, step):
                hist = self.cell_histograms(images[start:start + step])
                n, cy, cx, B = hist.shape
                blocks = np.lib.stride_tricks.sliding_window_view(hist, (b, b), axis=(1, 2))
                # (n, by, bx, B, b, b) -> (n, by, bx, b, b, B): each block is cells row-major.
                blocks = blocks.transpose(0, 1, 2, 4, 5, 3).copy().reshape(n, cy - b + 1, cx - b + 1, -1)
                out[start:start + n] = self._normalize(blocks).reshape(n, -1)
                bar.update(n)
        finally:
            bar.close()
        return out
