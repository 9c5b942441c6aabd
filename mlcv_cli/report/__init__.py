"""`mlcv report`: one self-contained HTML page for a run, a cross-validation run or a folder of runs.

The page is a single file: figures embedded as data: URIs (SVG curves, PNG pictures), CSS inline,
no script but the few lines that sort the runs table, and a Content-Security-Policy that lets it
fetch nothing, so it opens the same from scp, a CI artifact or a laptop offline. The data comes
from workflow.report; html.py escapes every name; run_page, cv_page and runs_page lay it out.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..system import atomic
from ..workflow import report as collect
from . import cv_page, run_page, runs_page
from .html import SORT_SCRIPT, document, el, join

REPORT_FILE = collect.REPORT_FILE


def write(target, out=None, with_examples=True) -> dict:
    """Write the report of ``target`` (a run directory, a cv run directory or a folder of runs) to
    ``out`` (default TARGET/report.html); returns {"report", "kind", "bytes", "seconds", "missing"}."""
    t0 = time.perf_counter()
    target = Path(target)
    kind = collect.kind_of(target)
    out = Path(out) if out is not None else target / REPORT_FILE
    if kind == "runs":
        page = collect.runs_page(target)
        body, title, scripts = runs_page.render(page, out.resolve().parent), f"mlcv runs: {page['name']}", [SORT_SCRIPT]
    elif kind == "cv":
        page = collect.cv_page(target, with_examples)
        body, title, scripts = cv_page.render(page), f"mlcv cv run: {page['name']}", []
    else:
        page = collect.run_page(target, with_examples)
        body, title, scripts = run_page.render(page), f"mlcv run: {page['name']}", []
    text = document(title, join(body, _footer()), scripts)
    data = text.encode("utf-8")
    atomic.write_bytes(out, data)
    missing = list(page.get("missing", [])) + [{"what": f"refit: {m['what']}", "why": m["why"]}
                                                for m in (page.get("refit") or {}).get("missing", [])]
    return {"report": str(out), "kind": kind, "target": str(target), "bytes": len(data),
            "seconds": round(time.perf_counter() - t0, 3), "missing": missing}


def _footer():
    from .. import __version__

    return el("footer", f"Written by mlcv {__version__} (mlcv report). A single file: it loads nothing from anywhere else.")
