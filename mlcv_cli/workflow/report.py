"""What a report page shows, collected from run directories as plain data (dicts, lists, NumPy
arrays); mlcv_cli/report/ writes it as HTML.

Collecting never stops at a damaged or missing part: each part that cannot be read becomes an
entry in the page's ``missing`` list ({"what", "why"}) and every other part is still collected.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import config as config_mod
from ..errors import MlcvError
from ..models import registry
from ..runs import listing, rows
from ..runs.files import read_cv_summary, read_history, read_metrics
from ..runs.rundir import RunDir
from . import examples

REPORT_FILE = "report.html"


def kind_of(path) -> str:
    """"run", "cv" (a cross-validation run) or "runs" (a folder of runs) for a directory."""
    path = Path(path)
    if not path.is_dir():
        raise MlcvError(f"{path} is not a directory; give a run directory or a folder of runs")
    if rows.is_run_dir(path) or (path / "cv_plan.json").is_file():
        return "cv" if (path / "cv_summary.json").is_file() or (path / "cv_plan.json").is_file() else "run"
    return "runs"


class _Page(dict):
    """A page's data; ``attempt`` runs one part's reader and notes what it could not read."""

    def attempt(self, what, fn, *args):
        try:
            return fn(*args)
        except FileNotFoundError as exc:
            self["missing"].append({"what": what, "why": f"{Path(exc.filename or what).name} is missing"})
        except (MlcvError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            self["missing"].append({"what": what, "why": str(exc) or type(exc).__name__})
        return None

    def has(self, path, why="is missing"):
        """True when the file exists; otherwise it is noted as missing."""
        if Path(path).exists():
            return True
        self["missing"].append({"what": Path(path).name, "why": f"{Path(path).name} {why}"})
        return False


def _page(kind, path):
    return _Page(kind=kind, path=str(path), name=Path(path).resolve().name, missing=[], collected_s=None)


def run_page(run_dir, with_examples=True) -> dict:
    """A training run: meta, config (with what differs from the defaults), metrics, history, what the
    model learned as images, and (``with_examples``) examples scored on the test split again."""
    t0 = time.perf_counter()
    path = Path(run_dir)
    page = _page("run", path)
    page["meta"] = page.attempt("meta.json", _meta, path) or {}
    page["config"] = page.attempt("config.yaml", config_of, path)
    page["metrics"] = page.attempt("metrics.json", read_metrics, path / "metrics.json")
    model = (page["metrics"] or {}).get("model") or page["meta"].get("model") or (page["config"] or {}).get("flat", {}).get("model.type")
    model_type = registry.get(model) if model in registry.names() else None
    page["model"] = _model_info(model, model_type)
    page["history"] = None
    iterative = model_type is not None and model_type.iterative
    if (path / "history.csv").exists() or (iterative and page.has(path / "history.csv", f"is missing (a {model} run writes one)")):
        page["history"] = page.attempt("history.csv", read_history, path)
    page["learned"] = page["examples"] = None
    if (path / "model.npz").exists() or page["meta"].get("status") == "done":
        from ..models import modelfile

        mf = page.attempt("model.npz", modelfile.load, path / "model.npz")
        if mf is not None:
            page["learned"] = page.attempt("weights and filters", _learned, mf)
            if with_examples:
                page["examples"] = page.attempt("test examples", _examples, path, mf)
    page["collected_s"] = round(time.perf_counter() - t0, 3)
    return page


def cv_page(run_dir, with_examples=True) -> dict:
    """A cross-validation run: meta, config, the summary of every grid point, and the refit's run page."""
    t0 = time.perf_counter()
    path = Path(run_dir)
    page = _page("cv", path)
    page["meta"] = page.attempt("meta.json", _meta, path) or {}
    page["config"] = page.attempt("config.yaml", config_of, path, "cv")
    status = page["meta"].get("status", "unknown")
    page["summary"] = None
    if page.has(path / "cv_summary.json", "is missing" + ("" if status == "done" else f" (the cv run has not finished: status {status}; "
                                                                                       "finish it with mlcv cv --resume)")):
        page["summary"] = page.attempt("cv_summary.json", read_cv_summary, path / "cv_summary.json")
    page["refit"] = None
    if (path / "refit").is_dir():
        page["refit"] = run_page(path / "refit", with_examples)
        page["refit"]["name"] = "refit"
    page["collected_s"] = round(time.perf_counter() - t0, 3)
    return page


def runs_page(runs_dir, report_name=REPORT_FILE) -> dict:
    """A folder of runs: the `mlcv runs` listing, which runs have a report, and for each differing
    hyperparameter the (value, val, test) points of the runs it applies to."""
    t0 = time.perf_counter()
    page = _page("runs", runs_dir)
    result = listing.listing(runs_dir)
    page.update(runs=result["runs"], total=result["total"], param_keys=result["param_keys"],
                short_names=listing.short_names(result["param_keys"]))
    for row in page["runs"]:
        row["report"] = (Path(row["path"]) / report_name).is_file()
    keys = result["param_keys"]
    page["scatter"] = [(key, groups) for key in keys if (groups := _points(page["runs"], keys, key))]
    page["collected_s"] = round(time.perf_counter() - t0, 3)
    return page


def _points(rows, keys, key):
    """The runs that differ in ``key`` and in no other differing key, in groups of the same model,
    dataset and other values: [[(value, val, test), ...], ...] (each group with two values or more)."""
    groups = {}
    for r in rows:
        v = r["config"].get(key)
        if not listing.applies(r, key) or v is None or isinstance(v, (dict, list)) or (r["val"] is None and r["test"] is None):
            continue
        rest = (r["kind"], r["model"], r["dataset"], *(repr(r["config"].get(k)) for k in keys if k != key))
        groups.setdefault(rest, []).append((v, r["val"], r["test"]))
    return [g for g in groups.values() if len({repr(p[0]) for p in g}) > 1]


# -- parts of a run -------------------------------------------------------------------------


def _meta(path):
    if not (path / "meta.json").exists():
        raise FileNotFoundError(2, "missing", str(path / "meta.json"))
    return RunDir(path).read_meta()


def config_of(run_dir, kind="train") -> dict:
    """A run's config.yaml: {"text", "flat" {dotted key: value}, "changed" [(key, value, default)]},
    the defaults being those `mlcv train --model TYPE` starts from."""
    text = (Path(run_dir) / "config.yaml").read_text(encoding="utf-8")
    data = config_mod.safe_load_text(text, f"{run_dir}/config.yaml")
    if not isinstance(data, dict):
        raise MlcvError(f"{run_dir}/config.yaml does not hold a mapping; the run directory is damaged")
    flat = rows.flatten_config(data)
    model = flat.get("model.type")
    defaults = rows.flatten_config(config_mod.resolve(None, model_type=model if model in registry.names() else None).to_dict())
    probe = {"model": model, "kind": kind}
    changed = [(k, v, defaults.get(k)) for k, v in flat.items()
               if (k not in defaults or defaults[k] != v) and listing.applies(probe, k)]
    changed += [(k, None, v) for k, v in defaults.items() if k not in flat and listing.applies(probe, k)]
    return {"text": text, "flat": flat, "changed": changed}


def _model_info(name, model_type):
    if model_type is None:
        return {"type": name, "title": name, "known": False, "plots": (), "score_kind": None}
    return {"type": name, "title": model_type.title or name, "summary": model_type.summary, "known": True,
            "plots": tuple(model_type.plots), "score_kind": model_type.score_kind, "iterative": model_type.iterative}


def _learned(mf):
    return {"weights": examples.weight_images(mf), "filters": examples.kmeans_filters(mf), "image_size": mf.image_size}


def _examples(path, mf, n_mistakes=12, n_correct=6):
    """The test split scored again with the saved model (cached features make this quick): the most
    confident mistakes and correct answers, nearest training images, HOG cells of one image per class."""
    t0 = time.perf_counter()
    scored = examples.score_split(path)
    out = examples.confident(scored, n_mistakes, n_correct)
    out["classes"] = list(mf.classes)
    out["split"] = scored.split
    out["nearest"] = examples.nearest(scored)
    pick = examples.one_per_class(scored.y, 20)
    out["hog"] = examples.hog_cells(mf, scored.images[pick], scored.y[pick])
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
