"""Grayscale and colour: one channel stays one channel, converted only where a model needs the other.

Colour -> grayscale uses Pillow's own integer luma (ITU-R 601-2, L = R 299/1000 + G 587/1000
+ B 114/1000, rounded), so an array converted here equals the file converted by Pillow.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 4096  # images per step: bounds the int32 temporaries of to_gray


def to_gray(images):
    """uint8 (N, H, W, 3) -> uint8 (N, H, W, 1); (N, H, W, 1) is returned as it is."""
    if images.shape[-1] == 1:
        return images
    out = np.empty(images.shape[:-1] + (1,), np.uint8)
    for start in range(0, len(images), _CHUNK):
        rgb = np.asarray(images[start : start + _CHUNK], np.uint32)
        luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
        out[start : start + _CHUNK, ..., 0] = (luma >> 16).astype(np.uint8)
    return out


def to_rgb(images):
    """uint8 (N, H, W, 1) -> (N, H, W, 3) by repeating the channel (for a colour model only)."""
    if images.shape[-1] == 3:
        return images
    return np.repeat(images, 3, axis=-1)


def match_channels(images, channels):
    """Images with the channel count a model was trained on (1 or 3)."""
    return to_gray(images) if channels == 1 else to_rgb(images)


def is_gray(images):
    """True when every pixel of (N, H, W, 3) images has R == G == B (a grayscale folder read as RGB)."""
    if images.shape[-1] == 1:
        return True
    for start in range(0, len(images), _CHUNK):
        part = images[start : start + _CHUNK]
        if not (np.array_equal(part[..., 0], part[..., 1]) and np.array_equal(part[..., 0], part[..., 2])):
            return False
    return True
