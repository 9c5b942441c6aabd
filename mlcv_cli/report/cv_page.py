"""The page of a cross-validation run: the best setting, the cv figure with every grid key labelled,
the table of grid points (mean ± std and each fold), and the refit's run page inline."""

from __future__ import annotations

import shlex

from . import run_page
from .figures import figure
from .html import el, join, number, pct, seconds


def render(page):
    built = [_best(page), _accuracy(page)]
    refit = page.get("refit")
    refit_sections = run_page.sections(refit, prefix="refit-", title_prefix="Refit: ", reproduce=False) if refit else []
    tail = run_page.assemble([run_page.config_section(page), _reproduce(page)])
    parts = run_page.assemble(built) + refit_sections + tail
    also = [{"what": f"refit: {m['what']}", "why": m["why"]} for m in (refit or {}).get("missing", [])]
    return join(run_page.header(page, "cross-validation run"), run_page.nav(parts), run_page.missing_box(page, also),
                [body for _, _, body in parts])


def _best(page):
    s = page.get("summary")
    if not s:
        return None
    best = s.get("best_params") or {}
    rows = [("best setting", ", ".join(f"{k}={number(v)}" for k, v in best.items()) or "the defaults"),
            ("cv accuracy", f"{pct(s.get('best_mean'))} ± {pct(s.get('best_std'))[:-1]} (mean ± std over {s['folds']} folds)"),
            ("images", f"{number(s.get('n_images'))} {s['dataset']} training images"),
            ("grid", f"{len(s['summary'])} points, {number(s.get('jobs'))} jobs in {seconds(s.get('time_s'))}"
                     + (f" ({s['jobs_resumed']} resumed)" if s.get("jobs_resumed") else ""))]
    refit = page.get("refit")
    if refit and (refit.get("metrics") or {}).get("test_accuracy") is not None:
        rows.append(("refit test accuracy", pct(refit["metrics"]["test_accuracy"]) + " (best setting retrained on all training images)"))
    notes = [el("p", el("strong", "Warning: "), s["warning"], class_="missing")] if s.get("warning") else []
    if s.get("note"):
        notes.append(el("p", s["note"], class_="note"))
    return run_page.section("best", "Best setting", el("table", el("tbody", [el("tr", el("th", k), el("td", v)) for k, v in rows])),
                            notes)


def _accuracy(page):
    """The cv figure next to the table of grid points."""
    s = page.get("summary")
    if not s or not s["summary"]:
        return None
    from ..plots.cv import cv_figure

    drawn = figure(cv_figure(s), "cross-validation accuracy of every grid point",
                   "Every swept key is on an axis or in a panel title; keys with one value are named as fixed.")
    swept = [k for k in s["grid"] if len({repr(r["params"].get(k)) for r in s["summary"]}) > 1]
    # A curve of one key fits beside the table; heat maps need the width.
    return run_page.section("accuracy", "Cross-validation accuracy",
                            el("div", drawn, _points(s), class_="grid" if len(swept) <= 1 else None))


def _points(s):
    keys = list(s["grid"])
    head = el("tr", el("th", "rank", class_="n"), [el("th", el("code", k), class_="n") for k in keys],
              el("th", "accuracy (mean ± std)", class_="n"), el("th", "folds (%)"), el("th", "time", class_="n"))
    rows = []
    ranked = sorted(s["summary"], key=lambda r: -r["mean"])
    for rank, r in enumerate(ranked, start=1):
        rows.append(el("tr", el("td", rank, class_="n"), [el("td", number(r["params"].get(k)), class_="n") for k in keys],
                       el("td", f"{pct(r['mean'])} ± {100 * r['std']:.2f}", class_="n"),
                       el("td", " ".join(f"{100 * a:.1f}" for a in r["folds"])),
                       el("td", seconds(r.get("time_s")), class_="n"), class_="best" if rank == 1 else None))
    return el("div", el("h3", "Grid points, best first"), el("div", el("table", el("thead", head), el("tbody", rows), class_="points"), class_="scroll"))


def _reproduce(page):
    return run_page.reproduce_section(page, f"mlcv cv --config {shlex.quote(page['path'] + '/config.yaml')}")
