"""`mlcv report`: the pages' structure read back with an HTML parser, names kept as text, damaged
runs, size and speed, the command; then every kind of page opened in a real headless Chromium."""

import json
import os
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_folder, mlcv, mlcv_uncaught
from mlcv_cli import config, report
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv.refit import refit_best
from mlcv_cli.workflow.train import train

HOSTILE = ['"><img src=x onerror=alert(1)>', "<svg onload=alert(2)>", "<script>alert(3)<\\script>", "a&amp;b $x$"]
SCRIPT_NAME = "<script>alert(1)</script>"  # has a '/', so it can be no folder's name: put in metrics.json instead


def folder(root, classes):
    """Classes 0 and 3 share a tint (helpers.make_folder tints channel index % 3), so there are mistakes to show."""
    return make_folder(root, classes, n_train=24, n_test=6, noise=80, tint=150)


def cfg(tmp, model, folder, **values):
    base = {"data.dataset": "folder", "data.path": str(folder), "data.image_size": 8, "data.dir": str(tmp / "data"),
            "output.dir": str(tmp / "runs")}
    return config.replace(config.resolve(model_type=model), {**base, **values})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder of runs: softmax at two model.reg values, kNN, a two-layer net, an HOG svm, a cv run with its refit, on plain class names; and a
    softmax run on hostile class names, copied under a hostile directory name."""
    tmp = tmp_path_factory.mktemp("report")
    plain = folder(tmp / "plain", ["cat", "dog", "fox", "owl"])
    made = {
        "softmax": train(cfg(tmp, "softmax", plain, **{"train.epochs": 3, "train.batch_size": 20}))["run_dir"],
        "softmax_reg": train(cfg(tmp, "softmax", plain, **{"train.epochs": 3, "train.batch_size": 20, "model.reg": 0.1}))["run_dir"],
        "knn": train(cfg(tmp, "knn", plain, **{"model.k": 3}))["run_dir"],
        "mlp": train(cfg(tmp, "mlp", plain, **{"train.epochs": 2, "model.hidden_size": 12, "train.keep_best": True}))["run_dir"],
        "hog": train(cfg(tmp, "svm", plain, **{"train.epochs": 2, "features": [{"type": "hog", "cell_size": 4}]}))["run_dir"],
    }
    cv_run = crossval.cross_validate(cfg(tmp, "softmax", plain, **{"cv.folds": 2, "train.epochs": 2,
                                                                   "cv.grid": {"train.lr": [0.001, 0.01, 0.1], "model.reg": [0.001, 0.01]}}))
    refit_best(cv_run["run_dir"])
    made["cv"] = cv_run["run_dir"]
    hostile = folder(tmp / "hostile", HOSTILE)
    first = train(cfg(tmp, "softmax", hostile, **{"train.epochs": 2, "output.name": "evil"}))["run_dir"]
    made["hostile"] = str(Path(first).parent / HOSTILE[0])
    shutil.move(first, made["hostile"])
    metrics = Path(made["hostile"]) / "metrics.json"
    doc = json.loads(metrics.read_text())
    doc["classes"][1] = SCRIPT_NAME
    metrics.write_text(json.dumps(doc))
    return {k: Path(v) for k, v in made.items()}


class Page(HTMLParser):
    """A parsed page: its elements (tag, attrs), ids, scripts, and visible text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements, self.text, self.scripts, self._in_script = [], [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)

    @property
    def ids(self):
        return {a["id"] for _, a in self.elements if "id" in a}

    def tags(self, name):
        return [a for t, a in self.elements if t == name]

    @property
    def all_text(self):
        return "".join(self.text)


def written(target, **kwargs):
    result = report.write(target, **kwargs)
    return result, Page(Path(result["report"]).read_text(encoding="utf-8"))


def assert_self_contained(page):
    """Every image a data: URI, no script but mlcv's sorter, no link off the page but to run reports."""
    assert page.tags("img") and all(a["src"].startswith("data:image/") for a in page.tags("img"))
    for tag in ("iframe", "object", "embed", "link", "form", "base"):
        assert not page.tags(tag), tag
    assert all(not a.get("src") for a in page.tags("script")) and len(page.scripts) <= 1
    for a in page.tags("a"):
        assert a["href"].startswith("#") or (a["href"].endswith("report.html") and ":" not in a["href"]), a["href"]
    for _, attrs in page.elements:
        assert not any(k.startswith("on") for k in attrs), attrs
    [csp] = [a["content"] for a in page.tags("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    assert "unsafe" not in directives["script-src"]  # only mlcv's own script, by its hash


def test_run_page_has_every_section(runs):
    result, page = written(runs["softmax"])
    assert Path(result["report"]) == runs["softmax"] / "report.html" and result["kind"] == "run" and not result["missing"]
    assert {"results", "curves", "confusion", "learned", "examples", "timing", "config", "reproduce"} <= page.ids
    assert "neighbours" not in page.ids  # a linear model keeps no training images
    text = page.all_text
    assert "mean over the last epoch" in text and "Per-class accuracy" in text and "Mistakes" in text
    assert "train.epochs" in text and "mlcv train --config" in text and "numpy" in text
    assert_self_contained(page)
    assert not page.scripts  # nothing to sort on a run page


def test_each_model_type_shows_what_it_offers(runs):
    _, knn = written(runs["knn"])
    assert "neighbours" in knn.ids and "curves" not in knn.ids and "votes" in knn.all_text
    assert not any("weights" in (a.get("alt") or "") for a in knn.tags("img"))
    _, hog = written(runs["hog"])
    assert any(a.get("alt") == "HOG cell histograms" for a in hog.tags("img"))
    assert not any("weights" in (a.get("alt") or "") for a in hog.tags("img"))  # weights are not images on HOG features
    _, mlp = written(runs["mlp"])  # the two-layer net: first-layer weights as images, asked of the registry
    assert any("first-layer weights" in (a.get("alt") or "") for a in mlp.tags("img"))
    assert {"curves", "examples"} <= mlp.ids and "probabilities" in mlp.all_text and "train.keep_best" in mlp.all_text


def test_cv_page_labels_the_grid_and_shows_the_refit_inline(runs):
    result, page = written(runs["cv"])
    assert result["kind"] == "cv"
    assert {"best", "accuracy", "refit-results", "refit-confusion", "refit-examples", "config", "reproduce"} <= page.ids
    text = page.all_text
    assert "train.lr" in text and "model.reg" in text and "refit test accuracy" in text
    points = [r for r in page.tags("tr")]
    assert len(points) >= 6
    assert_self_contained(page)


def test_runs_page_table_links_and_sorting(runs):
    written(runs["softmax"])
    result, page = written(runs["softmax"].parent, out=runs["softmax"].parent.parent / "all.html")
    assert result["kind"] == "runs"
    [table] = [a for a in page.tags("table") if a.get("class") == "sortable"]
    assert table is not None and len(page.tags("button")) >= 10 and len(page.scripts) == 1
    links = [a["href"] for a in page.tags("a") if not a["href"].startswith("#")]
    assert "runs/" + runs["softmax"].name + "/report.html" in links
    assert "accuracy" in page.ids  # the runs differ in hyperparameters
    assert_self_contained(page)


def test_hostile_names_are_text(runs):
    result, page = written(runs["hostile"])
    text = page.all_text
    for name in HOSTILE[1:] + [SCRIPT_NAME]:
        assert name in text, name
    assert HOSTILE[0] in text  # the run directory's name, in the title and header
    assert all(a["src"].startswith("data:") for a in page.tags("img"))
    assert not page.tags("svg") and not page.tags("script")
    _, listing = written(runs["hostile"].parent)
    assert HOSTILE[0] in listing.all_text
    assert_self_contained(listing)


def test_damaged_run_says_what_is_missing_and_renders_the_rest(runs, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(runs["softmax"], damaged)
    (damaged / "metrics.json").write_text("{not json")
    (damaged / "history.csv").unlink()
    (damaged / "report.html").unlink(missing_ok=True)
    result, page = written(damaged)
    missing = {m["what"]: m["why"] for m in result["missing"]}
    assert "metrics.json" in missing and "history.csv" in missing
    assert "Not shown" in page.all_text and "history.csv is missing" in page.all_text
    assert {"config", "reproduce", "learned", "examples"} <= page.ids and "results" not in page.ids
    unfinished = tmp_path / "unfinished-cv"
    shutil.copytree(runs["cv"], unfinished)
    (unfinished / "cv_summary.json").unlink()
    meta = json.loads((unfinished / "meta.json").read_text())
    (unfinished / "meta.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    result, page = written(unfinished)
    assert result["kind"] == "cv" and "mlcv cv --resume" in page.all_text and "refit-results" in page.ids


def test_report_command_out_open_and_json(runs, tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.get", lambda *a: type("B", (), {"open": lambda self, url: opened.append(url) or True})())
    out = tmp_path / "page.html"
    done = mlcv_uncaught("report", runs["knn"], "--out", out, "--open", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["status"] == "done" and doc["report"] == str(out) and doc["opened"] is True
    assert opened == [out.resolve().as_uri()] and out.stat().st_size > 10_000
    missing = mlcv("report", tmp_path / "nope")
    assert missing.exit_code == 2


def test_train_report_writes_the_page(tmp_path, monkeypatch, tiny):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLCV_DATA_DIR", str(tmp_path / "data"))
    args = ["train", "--model", "softmax", "--set", "train.epochs=1", "--report", "--json"]
    for item in tiny:
        args += ["--set", item]
    done = mlcv_uncaught(*args)
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["report"] == str(Path(doc["run_dir"]) / "report.html") and Path(doc["report"]).is_file()


def test_a_thousand_runs_in_seconds(runs, tmp_path):
    """A sweep's folder: 1,000 runs (their meta, config and metrics) on one page in under 5 s."""
    src = runs["softmax"]
    meta = json.loads((src / "meta.json").read_text())
    cfg_text = (src / "config.yaml").read_text()
    metrics = (src / "metrics.json").read_text()
    root = tmp_path / "sweep"
    for i in range(1000):
        d = root / f"softmax-{i:04d}"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps(meta))
        (d / "config.yaml").write_text(cfg_text.replace("reg: 0.001", f"reg: {10.0 ** -(1 + i % 5):.1e}")
                                       .replace("lr: 0.01", f"lr: {(i % 7 + 1) / 1000}"))
        (d / "metrics.json").write_text(metrics)
    t0 = time.perf_counter()
    result, page = written(root)
    took = time.perf_counter() - t0
    assert len([t for t in page.tags("tr")]) == 1001
    assert took < 5.0, f"{took:.1f} s for 1,000 runs"
    assert result["bytes"] < 3e6


# -- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from headless_browser import Browser  # a missing Chromium fails here, loudly, with how to install it

    b = Browser()
    yield b
    b.close()


def _not_blank(png):
    import io

    with Image.open(io.BytesIO(png)) as im:
        gray = np.asarray(im.convert("L"), np.float64)
    return gray.std() > 10 and (gray < 128).mean() > 0.005


@pytest.mark.parametrize("which", ["softmax", "knn", "mlp", "hog", "cv", "hostile", "runs"])
def test_pages_render_in_a_real_browser(runs, browser, which, tmp_path):
    target = runs["softmax"].parent if which == "runs" else runs[which]
    result = report.write(target)
    page = browser.load(result["report"])
    shots = os.environ.get("MLCV_REPORT_SHOTS")
    if shots:  # keep the screenshots to look at them
        Path(shots).mkdir(parents=True, exist_ok=True)
        (Path(shots) / f"{which}.png").write_bytes(page["full_screenshot"])
    assert _not_blank(page["screenshot"]), "the page looks blank"
    assert page["pictures"], "no figure on the page"
    for picture in page["pictures"]:
        assert picture["complete"] and min(picture["box"]) > 0, picture
    assert page["errors"] == []
    off_page = [u for u in page["requests"] if u != page["url"] and not u.startswith("data:")]
    assert off_page == []
    assert page["dialogs"] == [] and page["opened_dialogs"] == []
    assert "mlcv" in page["title"]
    if which == "hostile":
        for name in HOSTILE + [SCRIPT_NAME]:
            assert name in page["text"], name


def test_runs_table_sorts_in_the_browser(runs, browser):
    result = report.write(runs["softmax"].parent)
    script = """(() => {
      const heads = Array.from(document.querySelectorAll('table.sortable th'));
      const col = heads.findIndex(th => th.textContent.trim().startsWith('test'));
      const cells = () => Array.from(document.querySelectorAll('table.sortable tbody tr')).map(r => r.cells[col].getAttribute('data-v'));
      heads[col].querySelector('button').click();
      const first = cells();
      heads[col].querySelector('button').click();
      return [first, cells()];
    })()"""
    first, second = browser.evaluate(result["report"], script)
    numbers = [float(v) for v in first if v is not None]
    assert len(first) == len(runs_in(runs["softmax"].parent)) and len(numbers) >= 4
    assert first[: len(numbers)] == [repr(v) for v in sorted(numbers, reverse=True)]  # best first, blanks last
    assert second[: len(numbers)] == [repr(v) for v in sorted(numbers)] and second[len(numbers):] == first[len(numbers):]


def runs_in(folder):
    return [d for d in Path(folder).iterdir() if d.is_dir() and (d / "meta.json").exists()]
