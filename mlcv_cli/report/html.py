"""HTML from parts that escape what they are given: a str is text, only ``Html`` is markup.

Names are data: a class called ``<script>alert(1)</script>`` goes through ``el``/``esc`` and is
shown as those characters. The page also carries a Content-Security-Policy that allows images
from data: URIs only, inline styles, and no script but the one mlcv writes (by its hash), so
even markup that slipped through could neither run nor fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html

from ..system.output import printable


class Html(str):
    """Markup: escaped text, or tags mlcv wrote."""

    __slots__ = ()


def esc(value) -> Html:
    """Text as HTML: escaped, control characters shown as backslash escapes (line by line), None as ''."""
    if isinstance(value, Html):
        return value
    text = "" if value is None else str(value)
    return Html(html.escape("\n".join(printable(line) for line in text.split("\n")), quote=True))


def _flat(children):
    for child in children:
        if isinstance(child, (list, tuple)) or (hasattr(child, "__next__")):
            yield from _flat(child)
        elif child is not None and child is not False:
            yield esc(child)


def el(tag, *children, **attrs) -> Html:
    """<tag attrs>children</tag>; ``class_`` is class, ``data_v`` is data-v; None or False leaves an
    attribute out, True writes it bare. Children may be text, Html, None, or lists of them."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    head = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Html(head)
    return Html(head + "".join(_flat(children)) + f"</{tag}>")


_VOID = {"img", "meta", "br", "hr", "col", "input", "link"}


def join(*parts) -> Html:
    return Html("".join(_flat(parts)))


def data_uri(mime, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def img(mime, payload, alt, **attrs) -> Html:
    """An image embedded in the page (a data: URI): nothing is fetched."""
    return el("img", src=data_uri(mime, payload), alt=alt, **attrs)


def pct(x, digits=2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def number(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def seconds(t) -> str:
    if t is None:
        return "–"
    return f"{t:.2f} s" if t < 10 else f"{t:.1f} s" if t < 600 else f"{t / 60:.1f} min"


# Sorting the runs table is the one thing the page does in the browser: a click on a column
# header sorts by it (numbers as numbers, from each cell's data-v), a second click reverses.
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    var button = th.querySelector('button');
    if (!button) return;
    button.addEventListener('click', function () {
      var state = th.getAttribute('aria-sort');
      var down = state ? state === 'ascending' : th.getAttribute('data-first') === 'descending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', down ? 'descending' : 'ascending');
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute('data-v'), t = cell.textContent.trim();
        if (v !== null) return [0, parseFloat(v)];
        return (t === '' || t === '\u2013') ? [2, ''] : [1, t];
      }
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];  /* numbers, then text, then blanks, either way */
        var c = x[0] === 0 ? x[1] - y[1] : x[1].localeCompare(y[1]);
        return down ? -c : c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _sha256(text):
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def document(title, body, scripts=()) -> str:
    """A complete page: its CSS inline, ``scripts`` (mlcv's own, allowed by hash) at the end."""
    allowed = " ".join(f"'sha256-{_sha256(s)}'" for s in scripts) or "'none'"
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {allowed}; base-uri 'none'; form-action 'none'"
    head = join(
        Html('<meta charset="utf-8">'),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("meta", http_equiv="Content-Security-Policy", content=csp),
        el("meta", name="referrer", content="no-referrer"),
        el("meta", name="generator", content="mlcv report"),
        el("title", title),
        Html(f"<style>{CSS}</style>"),
    )
    tail = "".join(f"<script>{s}</script>" for s in scripts)
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>{head}</head>\n<body>\n{body}\n{tail}</body>\n</html>\n'


CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --panel: #f6f8fb; --accent: #2357a5;
        --good: #1a7f37; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0 auto; max-width: 1180px; padding: 20px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02rem; margin: 14px 0 6px; }
header .sub { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: .92rem; margin: 8px 0 18px; }
a { color: var(--accent); }
section { margin: 0 0 26px; break-inside: avoid-page; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 18px; align-items: start; }
.grid.wide-first { grid-template-columns: minmax(0, 3fr) minmax(280px, 2fr); }
.pair { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: flex-start; }
.pair ul { margin: 0; padding-left: 18px; max-width: 60ch; }
.sortable td, .points td { white-space: nowrap; } .sortable td:last-child { white-space: normal; min-width: 18em; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption, .note { color: var(--muted); font-size: .88rem; margin-top: 4px; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.n, th.n { text-align: right; }
.scroll { overflow-x: auto; max-width: 100%; }
.badge { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: .82rem; font-weight: 600; background: var(--panel); border: 1px solid var(--line); }
.status-done { color: var(--good); } .status-failed, .status-damaged, .status-stale { color: var(--bad); }
.status-interrupted, .status-running { color: var(--warn); }
.missing { border-left: 4px solid var(--warn); background: #fff8e6; padding: 8px 12px; margin: 0 0 18px; }
.missing ul { margin: 4px 0 0; padding-left: 20px; }
.bar { display: inline-block; height: 9px; background: var(--accent); opacity: .55; vertical-align: middle; margin-left: 6px; }
pre, code { font: .85rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 10px; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumb { width: 118px; font-size: .78rem; line-height: 1.25; overflow-wrap: anywhere; }
.thumb img { width: 96px; height: 96px; image-rendering: pixelated; border: 3px solid var(--line); display: block; }
.thumb.wrong img { border-color: var(--bad); } .thumb.right img { border-color: var(--good); }
.nn td { padding: 2px; border: 0; } .nn img { width: 56px; height: 56px; image-rendering: pixelated; display: block; border: 2px solid var(--line); }
.nn img.same { border-color: var(--good); } .nn img.other { border-color: var(--bad); } .nn .q img { border-color: var(--fg); }
.nn .label { font-size: .7rem; max-width: 60px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
th button { all: unset; cursor: pointer; } th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort=ascending] button::after { content: " ▲"; } th[aria-sort=descending] button::after { content: " ▼"; }
.best td { font-weight: 600; background: #eef6ee; }
footer { color: var(--muted); font-size: .8rem; margin-top: 30px; border-top: 1px solid var(--line); padding-top: 8px; }
@media (max-width: 760px) { .grid.wide-first { grid-template-columns: 1fr; } body { padding: 12px; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  nav, th button::after { display: none; }
  details::details-content { content-visibility: visible; height: auto; }
  a { color: inherit; text-decoration: none; }
  section { break-inside: auto; } figure, table { break-inside: avoid; }
}
"""
