"""matplotlib set up once for every figure: the Agg backend, names drawn as written, a figure
turned into PNG or SVG bytes, and the small helpers the figures share (tick labels, colours)."""

from __future__ import annotations

import io

from ..errors import UsageError


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        # Class names and config keys are shown as written: a '$' in one is not mathtext. Tick
        # labels that matplotlib writes as mathtext (log axes) are replaced by plain_ticks().
        matplotlib.rcParams["text.parse_math"] = False
        # SVG text as paths: the figure looks the same without the fonts, and holds no markup.
        matplotlib.rcParams["svg.fonttype"] = "path"
        matplotlib.rcParams["svg.hashsalt"] = "mlcv"  # the same figure gives the same bytes
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib; install it with: pip install 'mlcv[plot]'") from None
    return plt


def encode(fig, fmt="png", dpi=110) -> bytes:
    """The figure as PNG or SVG bytes; the figure is closed."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_METADATA[fmt])
    finally:
        pyplot().close(fig)
    return buf.getvalue()


# No creation date or software version in the bytes: the same figure is the same file.
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def label(value) -> str:
    """A grid or config value as a tick label: 0.001 -> '0.001', 1e-05 -> '1e-05', 'l2' -> 'l2'."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def short(text, limit=24) -> str:
    """A name cut to ``limit`` characters (with an ellipsis) where a figure has no room for more."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_log(values) -> bool:
    """Numbers spanning a factor of 20 or more, all positive: drawn on a log axis."""
    nums = [v for v in values if is_number(v)]
    return bool(nums) and len(nums) == len(values) and min(nums) > 0 and max(nums) / min(nums) >= 20


def sort_key(value):
    return (0, float(value)) if is_number(value) else (1, str(value))


def plain_ticks(axis, values=None):
    """Plain tick labels ('0.001', not mathtext) on a log or linear axis; with ``values``, a tick
    at each of them (the grid values of a cv plot) and no others."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    if values is not None:
        axis.set_major_locator(FixedLocator([float(v) for v in values]))
        axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def text_color(image, value):
    """Black or white, whichever reads on the cell colour ``image`` gives ``value`` (by its luminance)."""
    r, g, b, _ = image.cmap(image.norm(value))
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "black" if luminance > 0.18 else "white"


def show(ax, image):
    """An (H, W, 1) image in shades of gray, an (H, W, 3) one in colour."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1 if image.dtype.kind == "f" else 255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


def finish_panels(axes, used, ylabel):
    """Label the first column of a grid of panels and hide the panels past the ``used`` ones."""
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
