"""The page of a folder of runs: the table `mlcv runs` prints (every differing hyperparameter a
column), sortable by a click on a header, with a link to each run's own report, and accuracy
against each hyperparameter the runs differ in."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from ..runs.listing import applies
from . import run_page
from .figures import figure
from .html import el, join, number, pct, seconds

_SCATTER_PANELS = 6


def render(page, out_dir):
    built = [_scatter(page), _table(page, out_dir)]
    parts = run_page.assemble(built)
    counts = Counter(r["status"] for r in page["runs"])
    summary = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    head = el("header", el("h1", page["name"]),
              el("p", f"{len(page['runs'])} runs" + (f": {summary}" if summary else ""), class_="sub"),
              el("p", el("code", page["path"]), class_="note"))
    return join(head, run_page.nav(parts), run_page.missing_box(page), [body for _, _, body in parts])


def _scatter(page):
    panels = page["scatter"][:_SCATTER_PANELS]
    if not panels:
        return None
    from ..plots.runs import runs_figure

    more = len(page["scatter"]) - len(panels)
    caption = ("Validation (orange; for a cv run, the best mean) and test (blue) accuracy against each hyperparameter the runs "
               "differ in; a line joins runs that differ in that key alone (same model, data and other keys).")
    if more:
        caption += f" {more} more differing keys are in the table."
    return run_page.section("accuracy", "Accuracy against hyperparameters",
                            figure(runs_figure(panels), "accuracy of each run against its hyperparameters", caption))


_COLUMNS = [("name", None), ("model", None), ("dataset", None), ("status", None)]
_AFTER = [("train", "n"), ("val", "n"), ("test", "n"), ("time", "n"), ("date", None)]


def _header(title, numeric, note=None):
    return el("th", el("button", title, type="button", title=note), class_="n" if numeric else None, scope="col",
              data_first="descending" if numeric else "ascending")


def _table(page, out_dir):
    rows, keys, short = page["runs"], page["param_keys"], page["short_names"]
    if not rows:
        return run_page.section("runs", "Runs", el("p", f"No runs in {page['path']}."))
    head = el("tr", [_header(c, False) for c, _ in _COLUMNS], [_header(short[k], True, k) for k in keys],
              [_header(c, kind == "n") for c, kind in _AFTER], el("th", "note"))
    body = [_row(r, keys, out_dir) for r in rows]
    return run_page.section("runs", "Runs",
                            el("p", "Click a column header to sort by it. A name links to the run's own report where it has one.",
                               class_="note"),
                            el("div", el("table", el("thead", head), el("tbody", body), class_="sortable"), class_="scroll"))


def _row(r, keys, out_dir):
    name = r["name"]
    if r.get("report"):
        href = os.path.relpath(Path(r["path"]) / "report.html", out_dir)
        name_cell = el("td", el("a", name, href=quote(href.replace(os.sep, "/"))))
    else:
        name_cell = el("td", name)
    model = (r["model"] or "–") + (" (cv)" if r["kind"] == "cv" else "")
    cells = [name_cell, el("td", model), el("td", r["dataset"] or "–"),
             el("td", r["status"], class_=f"status-{''.join(c for c in r['status'] if c.isalnum())}")]
    for k in keys:
        v = r["config"].get(k) if applies(r, k) else None
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        cells.append(el("td", "" if v is None else number(v), class_="n", data_v=repr(float(v)) if numeric else None))
    val = pct(r["val"]) + (f" ± {100 * r['cv_std']:.2f}" if r.get("cv_std") is not None else "")
    for key, text in (("train", pct(r["train"])), ("val", val), ("test", pct(r["test"])), ("time", seconds(r["time"]))):
        v = r.get(key)
        cells.append(el("td", text, class_="n", data_v=repr(float(v)) if v is not None else None))
    cells.append(el("td", (r.get("date") or "")[:19].replace("T", " ")))
    cells.append(el("td", r.get("reason") or ""))
    return el("tr", cells)
