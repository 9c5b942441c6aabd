"""The page of one training run (also shown inside a cv page for its refit): results, curves,
confusion matrix, per-class accuracy, what the model learned, examples, timing, config, how to
reproduce it. Each section is built from what workflow.report collected; a part that is missing
leaves its section out, and the box at the top says why."""

from __future__ import annotations

import shlex

import numpy as np

from .figures import figure, thumbnail
from .html import Html, el, join, number, pct, seconds

SPLITS = ("train", "val", "test")


def header(page, kind_title, extra=()) -> Html:
    meta = page.get("meta") or {}
    status = meta.get("status") or "unknown"
    model = (page.get("model") or {}).get("title") or meta.get("model")
    bits = [kind_title, model and f"{model}", meta.get("dataset") and f"on {meta['dataset']}",
            meta.get("started") and f"started {meta['started']}", meta.get("ended") and f"ended {meta['ended']}", *extra]
    return el("header", el("h1", page["name"]),
              el("p", el("span", status, class_=f"badge status-{_css_word(status)}"), " ",
                 " · ".join(str(b) for b in bits if b), class_="sub"),
              el("p", el("code", page["path"]), class_="note"))


def _css_word(text):
    return "".join(c for c in str(text) if c.isalnum()) or "unknown"


def missing_box(page, also=()) -> Html | None:
    entries = list(page.get("missing") or []) + list(also)
    if not entries:
        return None
    return el("div", el("strong", "Not shown: "), "some parts of this run could not be read.",
              el("ul", [el("li", el("strong", m["what"]), ": ", m["why"]) for m in entries]), class_="missing", role="note")


def nav(sections) -> Html:
    return el("nav", [el("a", title, href=f"#{sid}") for sid, title, _ in sections])


def section(sid, title, *body) -> tuple:
    """A section as the builders return it: (id, title, its parts)."""
    return sid, title, body


def assemble(built, prefix="", title_prefix="") -> list:
    """[(id, title, Html)] of the sections built (None: left out), ids prefixed (a refit inside a cv page)."""
    out = []
    for made in built:
        if made is not None:
            sid, title, body = made
            out.append((prefix + sid, title_prefix + title, el("section", el("h2", title_prefix + title), body, id=prefix + sid)))
    return out


def sections(page, prefix="", title_prefix="", reproduce=True) -> list:
    """[(id, title, Html)] of a run page's sections (``reproduce``: with how to run it again)."""
    builders = (_results, _curves, _confusion, _learned, _neighbours, _examples, _timing, config_section) + ((_reproduce,) if reproduce else ())
    return assemble([build(page) for build in builders], prefix, title_prefix)


def render(page) -> Html:
    parts = sections(page)
    return join(header(page, "training run"), nav(parts), missing_box(page), [body for _, _, body in parts])


# -- sections ---------------------------------------------------------------------------------


def _results(page):
    m = page.get("metrics")
    if not m:
        return None
    splits = m.get("splits") or {}
    rows = [el("tr", el("td", s), el("td", number((splits.get(s) or {}).get("n")), class_="n"),
               el("td", pct(m.get(f"{s}_accuracy")), class_="n")) for s in SPLITS if splits.get(s) or m.get(f"{s}_accuracy") is not None]
    table = el("table", el("thead", el("tr", el("th", "split"), el("th", "images", class_="n"), el("th", "accuracy", class_="n"))),
               el("tbody", rows))
    notes = []
    last = _last_epoch_loss(page.get("history"))
    if last is not None:
        notes.append(f"training loss: {last:.4f}, the mean over the last epoch (its last minibatch: "
                     f"{float(page['history'][-1]['loss']):.4f})")
    elif m.get("final_loss") is not None:
        notes.append(f"final training loss {m['final_loss']:.4f}")
    if m.get("best_epoch") is not None:
        notes.append(f"the model holds the weights of epoch {m['best_epoch']}, the best validation accuracy (train.keep_best)")
    features = m.get("features") or {}
    if features.get("steps"):
        notes.append("features: " + " → ".join(features["steps"]) + (f" ({features['dim']} dimensions)" if features.get("dim") else ""))
    model = page.get("model") or {}
    if model.get("summary"):
        notes.append(f"{model['type']}: {model['summary']}")
    return section("results", "Results", el("div", table, el("ul", [el("li", n) for n in notes], class_="note"), class_="pair"))


def _last_epoch_loss(history):
    if not history:
        return None
    last = history[-1]["epoch"]
    losses = [float(r["loss"]) for r in history if r["epoch"] == last]
    return float(np.mean(losses)) if losses and np.isfinite(losses).all() else None


def _curves(page):
    history = page.get("history")
    if not history:
        return None
    from ..plots.training import loss_figure

    return section("curves", "Loss and accuracy",
                   figure(loss_figure(history), "training loss per iteration and accuracy per epoch",
                          "Left: the loss of each minibatch (thin) and the mean of each epoch (thick). Right: accuracy at "
                          "the end of each epoch."))


def _split_shown(m):
    splits = m.get("splits") or {}
    return next((s for s in ("test", "val", "train") if splits.get(s)), None)


def _confusion(page):
    m = page.get("metrics")
    split = _split_shown(m) if m else None
    if split is None:
        return None
    from ..plots.training import confusion_figure

    classes, splits = m["classes"], m["splits"]
    cm = np.array(splits[split]["confusion_matrix"])
    fig = figure(confusion_figure(cm, classes, f"{m['model']}: {split} confusion matrix"),
                 f"{split} confusion matrix", "Rows: the true class; columns: the predicted class; each cell counts images.",
                 fmt="png" if len(classes) > 20 else "svg")
    shown = [s for s in SPLITS if (splits.get(s) or {}).get("per_class_accuracy")]
    head = el("tr", el("th", "class"), [el("th", s, class_="n") for s in shown])
    body = []
    for c, name in enumerate(classes):
        cells = []
        for s in shown:
            acc = splits[s]["per_class_accuracy"][c]
            bar = el("span", class_="bar", style=f"width:{0 if acc is None else round(60 * acc)}px") if s == split else None
            cells.append(el("td", pct(acc, 1), bar, class_="n"))
        body.append(el("tr", el("td", name), cells))
    per_class = el("div", el("h3", "Per-class accuracy"), el("div", el("table", el("thead", head), el("tbody", body)), class_="scroll"))
    return section("confusion", "Confusion matrix and per-class accuracy", el("div", fig, per_class, class_="grid wide-first"))


def _learned(page):
    learned = page.get("learned")
    if not learned:
        return None
    from ..plots.features import filters_figure, hog_figure
    from ..plots.training import weights_figure

    parts = []
    w = learned.get("weights")
    if w is not None:
        more = f" (the first {len(w['images'])} of {w['total']})" if w["total"] > len(w["images"]) else ""
        parts.append(figure(weights_figure(w["images"], w["titles"], w["title"] + more), w["title"],
                            "Each weight image is stretched to its own range.", fmt="png"))
    if learned.get("filters") is not None:
        F = learned["filters"]
        parts.append(figure(filters_figure(F), "k-means dictionary",
                            f"{len(F)} centroids, whitening undone, each stretched to its own range.", fmt="png"))
    ex = page.get("examples") or {}
    if ex.get("hog"):
        parts.append(figure(hog_figure(ex["hog"], ex["classes"], len(ex["classes"])), "HOG cell histograms",
                            "One test image per class above its HOG cells: lines along the edge directions, longer for more votes.",
                            fmt="png"))
    if not parts:
        return None
    return section("learned", "What the model learned", parts)


def _neighbours(page):
    near = (page.get("examples") or {}).get("nearest")
    if not near:
        return None
    classes = page["examples"]["classes"]
    rows = []
    for i, q in enumerate(near["queries"]):
        truth = int(near["query_labels"][i])
        cells = [el("td", thumbnail(q, f"{near['split']} image: {classes[truth]}"), el("div", classes[truth], class_="label"), class_="q")]
        for j, image in enumerate(near["neighbors"][i]):
            label = int(near["neighbor_labels"][i][j])
            same = "same" if label == truth else "other"
            cells.append(el("td", thumbnail(image, f"neighbour {j + 1}: {classes[label]}", class_=same),
                            el("div", classes[label], class_="label")))
        rows.append(el("tr", cells))
    return section("neighbours", "Nearest training images",
                   el("p", f"One {near['split']} image per class (left, dark frame) and its nearest training images in "
                           "order; green frame: same class, red: another.", class_="note"),
                   el("div", el("table", el("tbody", rows), class_="nn"), class_="scroll"))


_PLURAL = {"probability": "probabilities", "score": "scores", "votes": "votes"}


def _value_text(kind, value, total):
    if kind == "probability":
        return f"p {value:.2f}"
    if kind == "votes":
        return f"{value:g} of {total:g} votes"
    return f"score {value:.2f}"


def _thumbs(ex, items, wrong):
    classes, kind = ex["classes"], ex["score_kind"]
    out = []
    for e in items:
        true, pred = classes[e["true"]], classes[e["pred"]]
        caption = [el("div", "true ", el("strong", true)),
                   el("div", "predicted ", el("strong", pred), f" ({_value_text(kind, e['value'], e['total'])})")]
        if wrong:
            caption.append(el("div", f"true class: {_value_text(kind, e['true_value'], e['total'])}"))
        alt = f"{ex['split']} image {e['index']}: true {true}, predicted {pred}"
        out.append(el("div", thumbnail(e["image"], alt), caption, el("div", f"#{e['index']}", class_="note"),
                      class_="thumb " + ("wrong" if wrong else "right")))
    return el("div", out, class_="thumbs")


def _examples(page):
    ex = page.get("examples")
    if not ex:
        return None
    of = f"{ex['ranked']} of the {ex['n']}" if ex["ranked"] < ex["n"] else f"the {ex['n']}"
    return section("examples", "Most confident mistakes and correct answers",
                   el("p", f"Among {of} {ex['split']} images, scored again with the saved model ({_PLURAL.get(ex['score_kind'], ex['score_kind'])}; "
                           f"{seconds(ex['seconds'])}). Mistakes are ranked by how much the model preferred the wrong class "
                           "over the true one.", class_="note"),
                   el("h3", "Mistakes"), _thumbs(ex, ex["mistakes"], True) if ex["mistakes"] else el("p", "none"),
                   el("h3", "Correct"), _thumbs(ex, ex["correct"], False) if ex["correct"] else el("p", "none"))


def _timing(page):
    m = page.get("metrics") or {}
    times = m.get("times") if isinstance(m.get("times"), dict) else {}
    rows = [(k[:-2].replace("_", " ") if k.endswith("_s") else k, v) for k, v in times.items() if isinstance(v, (int, float))]
    for event in (m.get("features") or {}).get("cache") or []:
        if isinstance(event, dict) and isinstance(event.get("seconds"), (int, float)):
            rows.append((f"features: {event.get('what')} (cache {event.get('cache')})", event["seconds"]))
    if (page.get("examples") or {}).get("seconds") is not None:
        rows.append(("this report: scoring the examples again", page["examples"]["seconds"]))
    if not rows:
        return None
    body = [el("tr", el("td", what), el("td", seconds(v), class_="n")) for what, v in rows]
    return section("timing", "Time", el("table", el("thead", el("tr", el("th", "stage"), el("th", "time", class_="n"))),
                                          el("tbody", body)))


def config_section(page):
    cfg = page.get("config")
    if not cfg:
        return None
    changed = cfg["changed"]
    rows = [el("tr", el("td", el("code", k)), el("td", _value(v)), el("td", _value(d))) for k, v, d in changed]
    table = (el("table", el("thead", el("tr", el("th", "key"), el("th", "this run"), el("th", "default"))), el("tbody", rows))
             if rows else el("p", "Every key has its default value."))
    return section("config", "Config", el("p", "The keys that differ from the defaults of this model type:", class_="note"),
                   el("div", table, class_="scroll"),
                   el("details", el("summary", "the whole config.yaml"), el("pre", cfg["text"])))



def _value(v):
    if isinstance(v, (dict, list)):
        import json

        return el("code", json.dumps(v, default=str))
    return el("code", number(v))


def reproduce_section(page, command_hint):
    meta = page.get("meta") or {}
    rows = []
    if meta.get("command"):
        rows.append(("command", el("code", meta["command"])))
    rows.append(("again, from its config", el("code", command_hint)))
    if meta.get("seed") is not None:
        rows.append(("seed", number(meta["seed"])))
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    if meta.get("host"):
        rows.append(("host", meta["host"]))
    if meta.get("error"):
        rows.append(("error", meta["error"]))
    return section("reproduce", "Reproduce", el("table", el("tbody", [el("tr", el("th", k), el("td", v)) for k, v in rows])))


def _reproduce(page):
    return reproduce_section(page, f"mlcv train --config {shlex.quote(page['path'] + '/config.yaml')}")
