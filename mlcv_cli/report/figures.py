"""Pictures embedded in a page: matplotlib figures from plots/ (SVG for curves, which stay sharp when
printed; PNG for pictures made of pixels) and image thumbnails (PNG, drawn pixel for pixel by the browser)."""

from __future__ import annotations

import io

import numpy as np

from .html import Html, el, img


def figure(fig, alt, caption=None, fmt="svg") -> Html:
    """<figure> holding a matplotlib figure (from plots/) as an embedded image."""
    from .. import plots

    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return el("figure", img(mime, plots.figure_bytes(fig, fmt), alt), el("figcaption", caption) if caption else None)


def thumbnail(image, alt, **attrs) -> Html:
    """A uint8 (H, W, C) image (C 1 or 3) as an embedded PNG at its own size; CSS scales it up, pixelated."""
    from PIL import Image

    a = np.asarray(image, np.uint8)
    picture = Image.fromarray(a[..., 0], "L") if a.shape[-1] == 1 else Image.fromarray(a, "RGB")
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return img("image/png", buf.getvalue(), alt, **attrs)
