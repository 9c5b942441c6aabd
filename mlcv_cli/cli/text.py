"""Text for people: the console stdout gets, and how numbers, dates and features read."""

from __future__ import annotations

import sys
from datetime import datetime

from ..system import output


def stdout_console():
    """Rich output, strings as plain text; when piped, lines are not wrapped at 80 columns (scripts grep them)."""
    piped = not sys.stdout.isatty()
    return output.console(soft_wrap=piped, width=200 if piped else None)


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def value(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def date(text):
    # ISO 8601 with seconds and offset -> "YYYY-MM-DD HH:MM": enough to tell runs apart.
    return "-" if not text else text[:16].replace("T", " ")


def seconds(t):
    if t is None:
        return "-"
    return f"{t:.1f} s" if t >= 1 else f"{t:.2f} s"


def signed(x, percent):
    if x is None:
        return "-"
    return f"{100 * x:+.2f}" if percent else f"{x:+.4g}"


def text_table(columns, cells, right):
    """Aligned plain-text columns: a thousand rows print in milliseconds (a rich Table takes seconds).
    Cells (run names, config values) are made printable first, so a name cannot break the layout."""
    cells = [[output.printable(v) for v in row] for row in cells]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def describe(features_doc) -> str:
    """One line for people: the chain, its size, and what the cache did (None for plain pixels)."""
    if not features_doc or features_doc.get("steps") == ["pixels"]:
        return None
    line = f"features: {' + '.join(features_doc['steps'])}, {features_doc['dim']} per image"
    line += " (standardized)" if features_doc.get("standardized") else ""
    events = [e for e in features_doc.get("cache", []) if e["cache"] != "off"]
    hits = [e for e in events if e["cache"] == "hit"]
    if events and len(hits) == len(events):
        line += f"; read from the feature cache in {sum(e['seconds'] for e in hits):.1f} s"
    elif events:
        computed = sum(e["seconds"] for e in events if e["cache"] != "hit")
        line += f"; computed in {computed:.1f} s"
        rebuilt = [e["cache"][len("rebuilt: "):] for e in events if e["cache"].startswith("rebuilt")]
        failed = [e["cache"] for e in events if e["cache"].startswith("failed")]
        if rebuilt:
            line += f" (cache entry rebuilt: {rebuilt[0]})"
        if failed:
            line += f" (not cached: {failed[0]})"
        elif not rebuilt:
            line += ", cached for the next run"
    return line


def human_bytes(n):
    """1.3 GiB, 28.8 MiB, 512 B (powers of 1024, as du -h counts)."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def when(epoch_seconds):
    """A file time as YYYY-MM-DD HH:MM (local time)."""
    return datetime.fromtimestamp(epoch_seconds).strftime("%Y-%m-%d %H:%M") if epoch_seconds else "-"
