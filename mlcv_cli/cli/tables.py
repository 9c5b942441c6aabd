"""The tables a person reads for each kind of result (rich tables on a terminal, plain lines when
piped); render.py picks one by the result's kind. The formatting helpers are in text.py."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from ..runs.listing import applies, short_names
from ..system import output
from .text import date, describe, fmt_value, human_bytes, pct, seconds, signed, stdout_console, text_table, value, when

MAX_PARAM_COLUMNS = 8  # more hyperparameter columns than this make the runs table unreadable; --csv has all


def train(r):
    table = Table(title=f"{r['model']} on {r['dataset']}", show_header=True, header_style="bold")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_row("train", str(r["n_train"]), pct(r["train_accuracy"]))
    table.add_row("val", str(r["n_val"]), pct(r["val_accuracy"]))
    table.add_row("test", str(r["n_test"]), pct(r["test_accuracy"]))
    con = stdout_console()
    con.print(table)
    if describe(r.get("features")):
        con.print(describe(r.get("features")))
    if r.get("final_loss") is not None:
        con.print(f"loss {r['final_loss']:.4f} (mean over the last epoch); trained in {r['fit_s']:.1f} s ({r['total_s']:.1f} s in all)")
    elif r.get("total_s") is not None:
        con.print(f"fitted in {r['fit_s']:.1f} s ({r['total_s']:.1f} s in all)")
    if r.get("best_epoch") is not None:
        con.print(f"kept the weights of epoch {r['best_epoch']} of {r['epochs']} (best validation accuracy; train.keep_best)")
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']}")


def cv(r):
    con = stdout_console()
    keys = list(r["grid"])
    table = Table(title=f"{r['folds']}-fold cross-validation of {r['model']} on {r['n_images']} {r['dataset']} training images", header_style="bold")
    table.add_column("rank", justify="right")
    for k in keys:
        table.add_column(k, justify="right")
    table.add_column("accuracy (mean ± std)", justify="right")
    table.add_column("folds", justify="left")
    for rank, s in enumerate(r["summary"], start=1):
        style = "bold green" if rank == 1 else None
        table.add_row(
            str(rank),
            *[fmt_value(s["params"].get(k)) for k in keys],
            f"{100 * s['mean']:.2f}% ± {100 * s['std']:.2f}",
            " ".join(f"{100 * a:.1f}" for a in s["folds"]),
            style=style,
        )
    con.print(table)
    if r.get("warning"):
        con.print(Text.assemble(("Warning:", "yellow"), " ", output.printable(r["warning"])))
    best = ", ".join(f"{k}={fmt_value(v)}" for k, v in r["best_params"].items())
    con.print(f"best: {best} ({100 * r['best_mean']:.2f}% ± {100 * r['best_std']:.2f}); {r['jobs']} jobs in {r['time_s']:.1f} s"
              + (f" ({r['jobs_resumed']} resumed)" if r.get("jobs_resumed") else ""))
    for p in r.get("plots", []):
        con.print(f"plot: {p}")
    con.print(f"run directory: {r['run_dir']} (best config: {r['run_dir']}/best.yaml)")


def refit(f):
    stdout_console().print(
        f"refit on {f['n_train'] + f['n_val']} images: test accuracy {pct(f['test_accuracy'])}; model: {f['run_dir']}/model.npz"
    )


def evaluation(r):
    con = stdout_console()
    classes = r["classes"]
    con.print(f"{r['model']} model {r['model_path']} on {r['dataset']} {r['split']} ({r['n']} images): accuracy {pct(r['accuracy'])}")
    per = Table(title="per-class accuracy", header_style="bold")
    per.add_column("class")
    per.add_column("accuracy", justify="right")
    for name, acc in zip(classes, r["per_class_accuracy"]):
        per.add_row(name, pct(acc))
    con.print(per)
    if len(classes) > 20:
        _top_confusions(con, classes, r["confusion_matrix"])
        for p in r.get("plots", []):
            con.print(f"plot: {p}")
        return
    cm = Table(title="confusion matrix (rows: true class, columns: predicted)", header_style="bold")
    cm.add_column("")
    for name in classes:
        cm.add_column(name[:5], justify="right")
    for name, row in zip(classes, r["confusion_matrix"]):
        cm.add_row(name, *[str(v) for v in row])
    con.print(cm)
    for p in r.get("plots", []):
        con.print(f"plot: {p}")


def _top_confusions(con, classes, matrix, n=20):
    """With many classes a full matrix is unreadable: the largest off-diagonal counts instead."""
    cells = [(v, i, j) for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    t = Table(title=f"the {min(n, len(cells))} largest confusions ({len(classes)} classes; --json has the full matrix)", header_style="bold")
    for col, just in (("true class", "left"), ("predicted", "left"), ("images", "right"), ("of the class", "right")):
        t.add_column(col, justify=just)
    for v, i, j in cells[:n]:
        total = sum(matrix[i])
        t.add_row(classes[i], classes[j], str(v), f"{100 * v / total:.1f}%" if total else "-")
    con.print(t)


def predictions(r):
    if not r["predictions"]:
        return
    table = Table(header_style="bold")
    table.add_column("image")
    table.add_column("rank", justify="right")
    table.add_column("class")
    table.add_column(r["value"] or "value", justify="right")
    for p in r["predictions"]:
        small = " (upscaled from {}x{})".format(*p["upscaled_from"]) if p.get("upscaled_from") else ""
        for rank, t in enumerate(p["top"], start=1):
            v = t[r["value"]]
            table.add_row(p["path"] + small if rank == 1 else "", str(rank), t["class"], f"{v:.4f}" if isinstance(v, float) else str(v))
    stdout_console().print(table)


def runs(result):
    rows, keys = result["runs"], result["param_keys"]
    if not rows:
        output.echo(f"no runs{' match' if result['total'] else ''} in {result['runs_dir']}"
                    + (f" ({result['total']} in all)" if result["total"] else ""))
        return
    shown_keys = keys[:MAX_PARAM_COLUMNS]
    headers = short_names(shown_keys)
    sized = "bytes" in rows[0]  # mlcv runs --size
    columns = ["name", "model", "dataset", "status", *[headers[k] for k in shown_keys], "val", "test", "time", "date"]
    columns += ["size"] if sized else []
    right = set(range(4, len(columns)))
    cells = []
    for r in rows:
        val = pct(r["val"]) + (f" ± {100 * r['cv_std']:.2f}" if r.get("cv_std") is not None else "")
        cells.append([
            r["name"],
            (r["model"] or "-") + (" (cv)" if r["kind"] == "cv" else ""),
            r["dataset"] or "-",
            r["status"],
            *[value(r["config"].get(k)) if applies(r, k) else "" for k in shown_keys],
            val,
            pct(r["test"]),
            seconds(r["time"]),
            date(r["date"]),
            *([human_bytes(r["bytes"])] if sized else []),
        ])
    output.echo(f"{len(rows)} of {result['total']} runs in {result['runs_dir']}"
                + (f", {human_bytes(sum(r['bytes'] for r in rows))} on disk" if sized else ""))
    click.echo(text_table(columns, cells, right))
    if len(keys) > len(shown_keys):
        output.echo(f"{len(keys) - len(shown_keys)} more config keys differ ({', '.join(keys[len(shown_keys):])}); see --csv or --json")
    for r in rows:
        if r["status"] in ("damaged", "stale", "failed") and r.get("reason"):
            output.echo(f"{r['name']}: {r['status']}: {r['reason']}")


def runs_removed(result):
    """`mlcv runs rm`: one line per run removed (or that would be), then what was kept and the space freed."""
    verb = "would remove" if result["dry_run"] else "removed"
    for r in result["removed"]:
        output.echo(f"{verb} {r['path']} ({r['status']}, {human_bytes(r['bytes'])})")
    for r in result["left"]:
        output.echo(f"kept {r['path']}: {r['reason']}")
    if not result["removed"] and not result["left"]:
        output.echo(f"no runs match in {result['runs_dir']}")
    else:
        output.echo(f"{'would free' if result['dry_run'] else 'freed'} {human_bytes(result['freed'])}")


def cache(result):
    """`mlcv cache`: one line per entry, least recently used first, then the total."""
    if not result["entries"]:
        output.echo(f"the feature cache {result['directory']} is empty")
        return
    output.echo(f"{'size':>10}  {'last used':<16}  {'kind':<10}  entry")
    for e in result["entries"]:
        output.echo(f"{human_bytes(e['bytes']):>10}  {when(e['last_used'])}  {e['kind']:<10}  {e['name']}"
                    + (f"  ({e['detail']})" if e["detail"] else "") + ("  [in use]" if e["in_use"] else ""))
    output.echo(f"{human_bytes(result['bytes'])} in {len(result['entries'])} entries in {result['directory']}")


def cache_trimmed(result):
    """`mlcv cache prune/clear`: one line per entry removed (or that would be), what a process holds, the space freed."""
    verb = "would remove" if result["dry_run"] else "removed"
    for e in result["removed"]:
        output.echo(f"{verb} {e['kind']} {e['name']} ({human_bytes(e['bytes'])}, last used {when(e['last_used'])})")
    for e in result["in_use"]:
        output.echo(f"kept {e['kind']} {e['name']} ({human_bytes(e['bytes'])}): in use by a running process")
    freed, holds = ("would free", "would hold") if result["dry_run"] else ("freed", "holds")
    output.echo(f"{freed} {human_bytes(result['freed'])}; the cache {holds} {human_bytes(result['bytes'])} in {result['directory']}")


def runs_diff(result, all_classes=False):
    con = stdout_console()
    a, b = result["a"], result["b"]
    con.print(f"A: {a['path']} ({a['model']} {a['kind']} on {a['dataset']}, {a['status']})", markup=False)
    con.print(f"B: {b['path']} ({b['model']} {b['kind']} on {b['dataset']}, {b['status']})", markup=False)
    for side in (a, b):
        if side["status"] in ("damaged", "stale", "failed") and side.get("reason"):
            con.print(f"{side['name']}: {side['status']}: {side['reason']}", markup=False)
    if result["config"]:
        t = Table(title="config keys that differ", header_style="bold")
        for col in ("key", "A", "B"):
            t.add_column(col)
        for d in result["config"]:
            t.add_row(d["key"], value(d["a"]), value(d["b"]))
        con.print(t)
    else:
        con.print("the configs are identical (apart from where data and runs live)")
    t = Table(title="metrics", header_style="bold")
    for col, just in (("metric", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        t.add_column(col, justify=just)
    for m in result["metrics"]:
        fmt = pct if m["metric"] in ("train", "val", "cv_std", "test") else value
        delta = m["b"] - m["a"] if m["a"] is not None and m["b"] is not None else None
        t.add_row({"val": "val (cv mean)" if a["kind"] == "cv" or b["kind"] == "cv" else "val", "time": "time (s)", "cv_std": "cv std"}.get(m["metric"], m["metric"]),
                  fmt(m["a"]), fmt(m["b"]), signed(delta, percent=fmt is pct))
    con.print(t)
    per = result["per_class"]
    if not per:
        con.print("no per-class accuracies to compare (a cv run has none; `mlcv cv --refit` makes a model that does)")
    else:
        picked = per if all_classes or len(per) <= 20 else sorted(per, key=lambda c: -abs(c["delta"] or 0))[:20]
        title = f"per-class {result['per_class_split']} accuracy" + ("" if picked is per else f" (the 20 of {len(per)} classes that changed most; --all-classes for every one)")
        t = Table(title=title, header_style="bold")
        for col, just in (("class", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
            t.add_column(col, justify=just)
        for c in picked:
            t.add_row(c["class"], pct(c["a"]), pct(c["b"]), signed(c["delta"], percent=True))
        con.print(t)


def report(r):
    output.echo(f"report: {r['report']} ({r['kind']} page, {r['bytes'] / 1e6:.2f} MB, written in {r['seconds']:.1f} s)")
    for m in r["missing"]:
        output.echo(f"not shown: {m['what']}: {m['why']}")


def configs(result):
    table = Table(title=f"shipped configs ({result['directory']})", header_style="bold")
    for col in ("name", "model", "what it is"):
        table.add_column(col)
    for c in result["configs"]:
        table.add_row(c["name"], str(c["model"]), c["summary"])
    stdout_console().print(table)


def gradcheck(result):
    table = Table(title=f"{result['model']} gradient check (reg={result['reg']:g}, penalty {result['penalty']})", header_style="bold")
    for col in ("index", "analytic", "numerical", "relative error", ""):
        table.add_column(col, justify="right")
    for row in result["rows"]:
        table.add_row(str(row["index"]), f"{row['analytic']:.8g}", f"{row['numerical']:.8g}", f"{row['relative_error']:.2e}", row["note"])
    con = stdout_console()
    con.print(table)
    kinks = sum(row["note"] == "kink" for row in result["rows"])
    if kinks:
        con.print(f"{kinks} entries sit at a kink of the loss (max(0, .)), where the numerical gradient straddles it; they are not counted.")
    con.print(f"max relative error {result['max_relative_error']:.2e}: {'PASS' if result['passed'] else 'FAIL'}")
