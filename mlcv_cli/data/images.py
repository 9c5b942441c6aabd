"""Decode one image file (any mode, any size) into a uint8 (size, size, 3) RGB array.

Colour handling: every mode becomes RGB. An alpha channel is dropped (the colour
channels are kept as stored, not composited), 16-bit and 32-bit greyscale is scaled
to 0..255, CMYK and palettes are converted by Pillow. Images are stretched (not
cropped) to size x size, and EXIF rotation is honoured.
"""

from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import DataError
from ..system.output import printable

# Pixel count refused before decoding: a 40-megapixel RGB image is 120 MB of memory.
MAX_PIXELS = 40_000_000

# What image folders may contain (lower-case suffixes).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# Decoders Pillow may use: a small set of raster formats. Keeping out EPS/PDF and the
# long tail of plugins means a hostile file cannot reach an exotic decoder (or Ghostscript).
_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "PPM")


_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_image_name(name):
    """True when a file name has one of IMAGE_EXTENSIONS (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def read_image(source, size=32, *, name=None):
    """Decode an image file into an RGB array of shape (size, size, 3), dtype uint8.

    ``source`` is a path or the file's bytes; ``name`` is what error messages call it
    (defaults to the path). Raises DataError for empty, truncated, non-image and
    oversized (more than MAX_PIXELS) files.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if len(source) == 0:
            raise DataError(f"{label} is an empty (0-byte) file, not an image")
        fh = io.BytesIO(source)
    else:
        label = name or os.fspath(source)
        try:
            if os.path.getsize(source) == 0:
                raise DataError(f"{label} is an empty (0-byte) file, not an image")
            fh = open(source, "rb")
        except OSError as exc:
            raise DataError(f"could not read image {label}: {exc.strerror or exc}") from exc
    with fh:
        return _decode(fh, size, label)


def header_size(path):
    """(width, height) of an image file from its header (nothing decoded), or None if unreadable."""
    try:
        with Image.open(path, formats=_FORMATS) as im:
            return im.size
    except Exception:  # noqa: BLE001 - read_image reports what is wrong with the file
        return None


def _decode(fh, size, label):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=_FORMATS) as im:
                width, height = im.size  # from the header: nothing decoded yet
                if width * height > MAX_PIXELS:
                    raise DataError(_bomb_message(label, f"{width}x{height}"))
                if width == 0 or height == 0:
                    raise DataError(f"{label} has no pixels ({width}x{height})")
                # JPEG only: let libjpeg decode at 1/2..1/8 scale when the target is small.
                im.draft("RGB", (size, size))
                im.load()
                im = _upright(im)
                im = _to_rgb(im)
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
                return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_bomb_message(label, str(exc).split(",")[0])) from exc
    except UnidentifiedImageError as exc:
        raise DataError(
            f"{label} is not an image Pillow can read (expected {', '.join(IMAGE_EXTENSIONS)})"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError) as exc:
        # Pillow's truncated/corrupt-file errors come through as these types.
        raise DataError(f"{label} is damaged or truncated ({exc})") from exc


def _bomb_message(label, found):
    return (
        f"{label} is too large to decode (found {found}; the limit is {MAX_PIXELS:,} pixels, "
        "it may be a decompression bomb)"
    )


def _upright(im):
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block should not lose an otherwise good image
        return im
    method = _TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def _to_rgb(im):
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        # Wide greyscale: scale to 8 bits (16-bit range unless the values already fit).
        grey = np.asarray(im, dtype=np.float64)
        peak = grey.max() if grey.size else 0
        if peak > 255:
            grey = grey * (255.0 / 65535.0) if peak <= 65535 else grey * (255.0 / peak)
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in im.info:
        # Going via RGBA avoids Pillow's "palette with transparency" warning; alpha is then dropped.
        return im.convert("RGBA").convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        return im.convert("RGBA").convert("RGB")


def read_images(paths, size=32, skip_bad=False, *, read=None, progress=False, what="images"):
    """Decode many images into one array.

    ``paths`` are file paths, or names that ``read(name) -> bytes`` resolves (zip members).
    Returns ``(images, ok_paths, bad)``: images of shape (N, size, size, 3) uint8 for the
    N readable files in ``paths`` order, their paths, and ``bad``, a list of
    ``(path, reason)``. Unless ``skip_bad``, any bad file raises one DataError listing them.
    """
    paths = list(paths)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    ok, bad = [], []
    for path in _progress(paths, progress, what):
        try:
            if read is None:
                pixels = read_image(path, size)
            else:
                pixels = read_image(_read_or_fail(read, path), size, name=str(path))
        except DataError as exc:
            bad.append((str(path), str(exc)))
            continue
        out[len(ok)] = pixels
        ok.append(path)
    if bad and not skip_bad:
        raise DataError(describe_bad(bad))
    return out[: len(ok)], ok, bad


def _read_or_fail(read, path):
    try:
        return read(path)
    except DataError:
        raise
    except Exception as exc:  # zip member errors: bad CRC, encryption, zlib errors...
        raise DataError(f"could not read {path}: {exc}") from exc


def describe_bad(bad, limit=5):
    """One-line summary of unreadable files: the first few names, the count, and the fix."""
    names = ", ".join(path for path, _ in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    first_reason = bad[0][1]
    return (
        f"{len(bad)} unreadable image file(s): {names}{more} (first: {first_reason}); "
        "remove or fix them, or leave them out with --skip-bad (mlcv download folder) or --set data.skip_bad=true"
    )


def _progress(items, enabled, what):
    if not enabled:
        return items

    return tqdm(items, desc=f"decoding {printable(what)}", unit="img", file=sys.stderr, leave=False, disable=None)
