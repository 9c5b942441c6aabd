"""`mlcv runs` and `mlcv runs diff`: the commands and their tables (the reading is in runlist.py)."""

from __future__ import annotations

import click

from ..system import output
from . import completion

# cli.py imports this module at its end, so nothing is imported from cli.py at import time.
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

MAX_PARAM_COLUMNS = 8  # more hyperparameter columns than this make the table unreadable; --csv has all
CSV_COLUMNS = ["name", "path", "kind", "model", "dataset", "status", "train", "val", "cv_std", "test", "final_loss", "time", "date", "reason"]


class _RunsGroup(click.Group):
    """`mlcv runs [RUNS_DIR] [OPTIONS]` is short for `mlcv runs list ...`."""

    def parse_args(self, ctx, args):
        # While completing, `mlcv runs <Tab>` offers the subcommands; `mlcv runs` alone lists.
        if (not args and not ctx.resilient_parsing) or (args and args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("runs", cls=_RunsGroup, context_settings=CONTEXT)
def runs():
    """Compare run directories: `mlcv runs [RUNS_DIR]` lists them, `mlcv runs diff A B` compares two.

    \b
    Examples:
      mlcv runs --sort test --top 5
      mlcv runs --filter model.type=svm --filter status=done --sort model.reg
      mlcv runs --filter 'test>=40%' --csv > runs.csv
      mlcv runs diff runs/svm-20261129-101500 runs/svm-20261129-101733
    """


@runs.command("list", context_settings=CONTEXT)
@click.argument("runs_dir", required=False, default="runs", type=click.Path(), shell_complete=completion.complete_directories)
@click.option("--sort", "sort_key", metavar="KEY", shell_complete=completion.complete_runs_keys,
              help="Sort by a column (name, model, dataset, status, val, test, time, date) or a dotted config key "
                   "(model.reg). Accuracies sort best first, the rest ascending.")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", shell_complete=completion.complete_runs_keys,
              help="Keep runs whose KEY equals VALUE (repeatable; also KEY!=V, KEY>V, KEY<V, KEY>=V, KEY<=V; accuracies as 0.4 or 40%).")
@click.option("--top", type=click.IntRange(1), help="Show only the first N runs (after sorting).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every run's full flat config included).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per run, the differing config keys as columns.")
def list_runs(runs_dir, sort_key, reverse, filters, top, as_json, as_csv):
    """List the runs under RUNS_DIR (default runs/) in one table.

    \b
    Columns: name, model, dataset, status, the hyperparameters that differ between the
    listed runs, validation and test accuracy, training time, start date. A cv run shows its
    best setting and the mean ± std of its folds in the val column. Status is done, failed,
    interrupted, running, stale (marked running but its process is gone) or damaged
    (an unreadable file; the reason is printed under the table).
    """
    from ..errors import UsageError
    from ..runs import listing as runlist
    from .render import emit_json

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    result = runlist.listing(runs_dir, filters=filters, sort=sort_key, reverse=reverse, top=top)
    if as_json:
        emit_json(result)
    elif as_csv:
        keys = result["param_keys"]
        writer = output.csv_writer()
        writer.writerow(CSV_COLUMNS + keys)
        for row in result["runs"]:
            writer.writerow([_csv(row.get(c)) for c in CSV_COLUMNS]
                            + [_csv(row["config"].get(k)) if runlist.applies(row, k) else "" for k in keys])
    else:
        _print_listing(result)


def _csv(v):
    return "" if v is None else v


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def _value(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _date(text):
    # ISO 8601 with seconds and offset -> "YYYY-MM-DD HH:MM": enough to tell runs apart.
    return "-" if not text else text[:16].replace("T", " ")


def _print_listing(result):
    from ..runs.listing import applies, short_names

    rows, keys = result["runs"], result["param_keys"]
    if not rows:
        output.echo(f"no runs{' match' if result['total'] else ''} in {result['runs_dir']}"
                    + (f" ({result['total']} in all)" if result["total"] else ""))
        return
    shown_keys = keys[:MAX_PARAM_COLUMNS]
    headers = short_names(shown_keys)
    columns = ["name", "model", "dataset", "status", *[headers[k] for k in shown_keys], "val", "test", "time", "date"]
    right = set(range(4, len(columns)))
    cells = []
    for r in rows:
        val = pct(r["val"]) + (f" ± {100 * r['cv_std']:.2f}" if r.get("cv_std") is not None else "")
        cells.append([
            r["name"],
            (r["model"] or "-") + (" (cv)" if r["kind"] == "cv" else ""),
            r["dataset"] or "-",
            r["status"],
            *[_value(r["config"].get(k)) if applies(r, k) else "" for k in shown_keys],
            val,
            pct(r["test"]),
            _seconds(r["time"]),
            _date(r["date"]),
        ])
    output.echo(f"{len(rows)} of {result['total']} runs in {result['runs_dir']}")
    click.echo(_text_table(columns, cells, right))
    if len(keys) > len(shown_keys):
        output.echo(f"{len(keys) - len(shown_keys)} more config keys differ ({', '.join(keys[len(shown_keys):])}); see --csv or --json")
    for r in rows:
        if r["status"] in ("damaged", "stale", "failed") and r.get("reason"):
            output.echo(f"{r['name']}: {r['status']}: {r['reason']}")


def _text_table(columns, cells, right):
    """Aligned plain-text columns: a thousand rows print in milliseconds (a rich Table takes seconds).
    Cells (run names, config values) are made printable first, so a name cannot break the layout."""
    cells = [[output.printable(v) for v in row] for row in cells]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def _seconds(t):
    if t is None:
        return "-"
    return f"{t:.1f} s" if t >= 1 else f"{t:.2f} s"


@runs.command("diff", context_settings=CONTEXT)
@click.argument("run_a", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
@click.argument("run_b", type=click.Path(exists=True, file_okay=False), shell_complete=completion.complete_run_dirs)
@click.option("--all-classes", is_flag=True, help="List every class's accuracy, not only the 20 that changed most.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def diff_runs(run_a, run_b, all_classes, as_json):
    """Show the config keys that differ between two runs and their metrics side by side.

    Per-class accuracy is compared on the test split (val when a run has none), by class name.
    """
    from ..runs import listing as runlist
    from .render import emit_json, stdout_console

    result = runlist.diff(run_a, run_b)
    if as_json:
        emit_json(result)
        return
    from rich.table import Table

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
            t.add_row(d["key"], _value(d["a"]), _value(d["b"]))
        con.print(t)
    else:
        con.print("the configs are identical (apart from where data and runs live)")
    t = Table(title="metrics", header_style="bold")
    for col, just in (("metric", "left"), ("A", "right"), ("B", "right"), ("B - A", "right")):
        t.add_column(col, justify=just)
    for m in result["metrics"]:
        fmt = pct if m["metric"] in ("train", "val", "cv_std", "test") else _value
        delta = m["b"] - m["a"] if m["a"] is not None and m["b"] is not None else None
        t.add_row({"val": "val (cv mean)" if a["kind"] == "cv" or b["kind"] == "cv" else "val", "time": "time (s)", "cv_std": "cv std"}.get(m["metric"], m["metric"]),
                  fmt(m["a"]), fmt(m["b"]), _signed(delta, percent=fmt is pct))
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
            t.add_row(c["class"], pct(c["a"]), pct(c["b"]), _signed(c["delta"], percent=True))
        con.print(t)


def _signed(x, percent):
    if x is None:
        return "-"
    return f"{100 * x:+.2f}" if percent else f"{x:+.4g}"
