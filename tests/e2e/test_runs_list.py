"""`mlcv runs` and `mlcv runs diff` over real, failed, interrupted, stale, cv and damaged runs."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from helpers import clean_env, mlcv, sets, start_mlcv
from helpers import mlcv_uncaught as run
from mlcv_cli.system import locks
from mlcv_cli.runs import listing as runlist

SMALL = sets("data.num_train=300", "data.num_val=100", "data.num_test=100")


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Four real runs, made once: kNN k=1 and k=3, softmax, and a 2-fold kNN cv."""
    root = tmp_path_factory.mktemp("real") / "runs"
    out = ["--set", f"output.dir={root}"]
    for args in (["--model", "knn", "--set", "model.k=1"], ["--model", "knn", "--set", "model.k=3"],
                 ["--model", "softmax", "--set", "train.epochs=1"]):
        assert run("train", *args, *SMALL, *out).exit_code == 0
    r = run("cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", "--set", "data.num_train=200", "--set", "data.num_val=0", *out)
    assert r.exit_code == 0, r.output
    return root


def _by_model(root, model):
    """The real training runs of a model (named MODEL-YYYYMMDD-HHMMSS by mlcv)."""
    return sorted(p for p in root.glob(f"{model}-2*") if p.is_dir())


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def runs_dir(real_runs, tmp_path):
    """The real runs plus copies turned into failed, interrupted, running, stale and damaged runs."""
    root = tmp_path / "runs"
    shutil.copytree(real_runs, root)
    knn1 = _by_model(root, "knn")[0]
    soft = _by_model(root, "softmax")[0]

    def variant(src, name, meta_changes=None, remove=(), write=None):
        d = root / name
        shutil.copytree(src, d)
        if meta_changes is not None:
            meta = json.loads((d / "meta.json").read_text())
            meta.update(meta_changes)
            (d / "meta.json").write_text(json.dumps(meta))
        for f in remove:
            (d / f).unlink()
        for f, text in (write or {}).items():
            (d / f).write_text(text)
        return d

    variant(soft, "failed-run", {"status": "failed", "error": "training diverged at iteration 3"}, remove=["metrics.json", "model.npz"])
    variant(soft, "interrupted-run", {"status": "interrupted"}, remove=["metrics.json", "model.npz"])
    variant(soft, "stale-run", {"status": "running", "pid": _dead_pid()}, remove=["metrics.json", "model.npz"])
    variant(soft, "running-run", {"status": "running", "pid": os.getpid()}, remove=["metrics.json", "model.npz"])
    variant(knn1, "bad-meta", write={"meta.json": "{ not json"})
    variant(knn1, "meta-is-a-list", write={"meta.json": "[1, 2]"})
    variant(knn1, "cut-metrics", write={"metrics.json": (knn1 / "metrics.json").read_text()[:50]})
    variant(knn1, "done-no-metrics", remove=["metrics.json"])
    variant(knn1, "bad-config", write={"config.yaml": "model: [unclosed\n"})
    variant(knn1, "text-accuracy", write={"metrics.json": json.dumps({"test_accuracy": "high", "val_accuracy": 0.2})})
    (root / "not-a-run").mkdir()  # no run files: not listed
    (root / "stray.txt").write_text("hello")
    # A live run holds its lock (here this process does, as mlcv train would).
    with locks.hold(root / "running-run" / ".lock", wait=False):
        yield root


def _rows(root, *args):
    result = run("runs", root, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_statuses_and_damage_reasons(runs_dir):
    rows = {r["name"]: r for r in _rows(runs_dir)["runs"]}
    assert "not-a-run" not in rows and len(rows) == 4 + 10
    assert rows["failed-run"]["status"] == "failed" and "diverged" in rows["failed-run"]["reason"]
    assert rows["interrupted-run"]["status"] == "interrupted" and "--resume" in rows["interrupted-run"]["reason"]
    assert rows["stale-run"]["status"] == "stale" and "is gone" in rows["stale-run"]["reason"]
    assert rows["running-run"]["status"] == "running"
    expected = {"bad-meta": "meta.json is not valid JSON", "meta-is-a-list": "meta.json holds a list", "cut-metrics": "metrics.json is not valid JSON",
                "done-no-metrics": "metrics.json missing", "bad-config": "config.yaml is not valid YAML",
                "text-accuracy": "test value 'high' is not a finite number"}
    for name, fragment in expected.items():
        assert rows[name]["status"] == "damaged", name
        assert fragment in rows[name]["reason"], (name, rows[name]["reason"])
    cv = [r for r in rows.values() if r["kind"] == "cv"]
    assert len(cv) == 1 and cv[0]["status"] == "done" and cv[0]["cv_std"] is not None
    assert cv[0]["config"]["model.k"] in (1, 3)  # listed with its best setting


def test_table_lists_every_run_and_reasons_without_traceback(runs_dir):
    result = run("runs", runs_dir)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "14 of 14 runs" in out
    assert "bad-meta: damaged: meta.json is not valid JSON" in out
    assert "stale-run: stale:" in out
    assert "knn (cv)" in out and " ± " in out
    assert "Traceback" not in result.output


def test_sort_best_first_missing_last_and_reverse(runs_dir):
    rows = _rows(runs_dir, "--sort", "test")["runs"]
    tests = [r["test"] for r in rows]
    present = [t for t in tests if t is not None]
    assert present == sorted(present, reverse=True)
    assert tests[: len(present)] == present  # runs with no test accuracy come last
    rev = [r["test"] for r in _rows(runs_dir, "--sort", "test", "--reverse")["runs"]]
    assert [t for t in rev if t is not None] == sorted(present)
    names = [r["name"] for r in _rows(runs_dir, "--sort", "name")["runs"]]
    assert names == sorted(names)
    ks = [r["config"].get("model.k") for r in _rows(runs_dir, "--sort", "model.k", "--filter", "model.type=knn")["runs"]]
    assert ks == sorted(ks)


def test_filters(runs_dir):
    knn_done = _rows(runs_dir, "--filter", "model.type=knn", "--filter", "status=done")["runs"]
    assert knn_done and all(r["model"] == "knn" and r["status"] == "done" for r in knn_done)
    assert {r["config"]["model.k"] for r in _rows(runs_dir, "--filter", "model.k=3", "--filter", "kind=train")["runs"]} == {3}
    # The short names the table shows work too.
    assert _rows(runs_dir, "--filter", "k=3", "--filter", "kind=train")["runs"] == _rows(runs_dir, "--filter", "model.k=3", "--filter", "kind=train")["runs"]
    running = {r["name"] for r in _rows(runs_dir, "--filter", "status=running")["runs"]}
    assert running == {"running-run", "stale-run"}  # a stale run was running too
    best = _rows(runs_dir, "--sort", "test", "--top", "1")["runs"][0]["test"]
    top = _rows(runs_dir, "--filter", f"test>={100 * best:.4f}%")["runs"]
    assert top and all(r["test"] >= best - 1e-9 for r in top)
    assert len(_rows(runs_dir, "--top", "3")["runs"]) == 3


@pytest.mark.parametrize("args, fragment", [
    (["--sort", "nosuchkey"], "--sort: unknown key 'nosuchkey'"),
    (["--filter", "model.type"], "--filter expects KEY=VALUE"),
    (["--filter", "mdel.type=svm"], "unknown key 'mdel.type'"),
    (["--sort", "dir"], "did you mean data.dir or output.dir?"),
    (["--json", "--csv"], "choose one of --json and --csv"),
])
def test_user_mistakes_are_one_line(runs_dir, args, fragment):
    result = run("runs", runs_dir, *args)
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help():
    for args in (["runs", "--help"], ["runs", "list", "--help"], ["runs", "diff", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Usage: mlcv runs" in result.output


def test_missing_runs_dir_and_single_run(tmp_path, real_runs):
    result = run("runs", tmp_path / "nothing")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    one = next(p for p in real_runs.iterdir() if p.is_dir())
    result = run("runs", one)
    assert result.exit_code == 2 and "single run directory" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("runs", empty)
    assert result.exit_code == 0 and "no runs in" in result.stdout


def test_differing_columns_rule(real_runs, tmp_path):
    rows = runlist.scan(real_runs)
    keys = runlist.differing_keys([r for r in rows if r["kind"] == "train"])
    # k differs among the kNN runs; preprocess.scale differs only between kNN and softmax
    # defaults; the lone softmax run has no learning rate to compare with.
    assert keys == ["model.k"]
    # Two softmax runs with different lr and reg: both are columns, and kNN's k is blank for them.
    root = tmp_path / "runs"
    shutil.copytree(real_runs, root)
    soft = _by_model(root, "softmax")[0]
    other = root / "softmax-other"
    shutil.copytree(soft, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["train"]["lr"], cfg["model"]["reg"] = 0.5, 0.25
    (other / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = run("runs", root, "--csv", "--filter", "kind=train")
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {"model.k", "model.reg", "train.lr"} <= set(table[0])
    by_name = {r["name"]: r for r in table}
    assert by_name["softmax-other"]["train.lr"] == "0.5" and by_name["softmax-other"]["model.k"] == ""
    assert all(r["model.reg"] == "" for r in table if r["model"] == "knn")


def test_json_and_csv_shapes(runs_dir):
    doc = _rows(runs_dir)
    assert set(doc) == {"status", "runs_dir", "total", "runs", "param_keys"} and doc["status"] == "done"
    for r in doc["runs"]:
        assert {"name", "path", "kind", "model", "dataset", "status", "reason", "train", "val", "cv_std", "test", "time", "date", "config"} <= set(r)
    result = run("runs", runs_dir, "--csv")
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0][:6] == ["name", "path", "kind", "model", "dataset", "status"]
    assert len(table) == 1 + doc["total"] and all(len(row) == len(table[0]) for row in table)


def test_row_cache_follows_changes_and_survives_damage(runs_dir):
    first = {r["name"]: r for r in _rows(runs_dir)["runs"]}
    cache = runs_dir / runlist.CACHE_FILE
    assert cache.exists()
    # A run that finishes after the first listing: its new files are read again.
    meta = json.loads((runs_dir / "interrupted-run" / "meta.json").read_text())
    meta["status"] = "done"
    (runs_dir / "interrupted-run" / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.copy(_by_model(runs_dir, "softmax")[0] / "metrics.json", runs_dir / "interrupted-run" / "metrics.json")
    shutil.rmtree(runs_dir / "bad-meta")
    second = {r["name"]: r for r in _rows(runs_dir)["runs"]}
    assert second["interrupted-run"]["status"] == "done" and second["interrupted-run"]["test"] is not None
    assert "bad-meta" not in second and first["failed-run"] == second["failed-run"]
    cache.write_text("{ garbage")
    assert {r["name"]: r for r in _rows(runs_dir)["runs"]} == second


def test_diff_shows_changed_keys_and_metrics(real_runs):
    a, b = _by_model(real_runs, "knn")
    result = run("runs", "diff", a, b, "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert [c["key"] for c in d["config"]] == ["model.k"]
    assert {c["a"] for c in d["config"]} | {c["b"] for c in d["config"]} == {1, 3}
    metrics = {m["metric"]: m for m in d["metrics"]}
    ma = json.loads((a / "metrics.json").read_text())
    assert metrics["test"]["a"] == ma["test_accuracy"]
    assert d["per_class_split"] == "test" and len(d["per_class"]) == 10
    assert [c["a"] for c in d["per_class"]] == ma["splits"]["test"]["per_class_accuracy"]
    table = run("runs", "diff", a, b)
    assert table.exit_code == 0 and "model.k" in table.stdout and "per-class test accuracy" in table.stdout


def test_diff_of_damaged_and_non_run(runs_dir, tmp_path):
    result = run("runs", "diff", runs_dir / "bad-meta", runs_dir / "cut-metrics")
    assert result.exit_code == 0 and "damaged" in result.stdout and "Traceback" not in result.output
    result = run("runs", "diff", runs_dir / "not-a-run", runs_dir / "cut-metrics")
    assert result.exit_code == 2 and "not a run directory" in result.stderr


# -- runs killed by SIGKILL, listings killed while writing their cache (real processes) ----------


def _runs(root):
    result = mlcv("runs", root, "--json")
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads(result.stdout)["runs"]}


def test_a_run_killed_by_sigkill_is_stale_even_when_its_pid_lives_on(tmp_path):
    runs = tmp_path / "runs"
    proc = start_mlcv("train", "--model", "softmax", "--set", "data.num_train=500", "--set", "train.epochs=100000",
                      "--set", f"output.dir={runs}", "--set", "train.checkpoint_every=0",
                      cwd=tmp_path, env=clean_env(MLCV_DATA_DIR=tmp_path / "data"))
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/meta.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [run] = [p.parent for p in runs.glob("*/meta.json")]
    assert _runs(runs)[run.name]["status"] == "running"  # alive: it holds the run's lock
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    row = _runs(runs)[run.name]
    assert row["status"] == "stale" and str(proc.pid) in row["reason"]
    # A pid now used by another process (reuse, or another PID namespace) is not the run.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        meta = json.loads((run / "meta.json").read_text())
        (run / "meta.json").write_text(json.dumps({**meta, "pid": other.pid}))
        assert _runs(runs)[run.name]["status"] == "stale"
    finally:
        other.kill()
        other.wait()


def test_a_listing_killed_while_writing_its_cache_leaves_nothing_for_long(tmp_path):
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "meta.json").write_text(json.dumps({"status": "done", "kind": "train"}))
    leftover = runs / "..mlcv-runs-cache.json.k1ll3d.tmp"  # the name atomic.py gives a half-written cache
    leftover.write_text('{"version"')
    assert list(_runs(runs)) == ["r1"]
    assert not leftover.exists() and (runs / ".mlcv-runs-cache.json").exists()
    assert sorted(p.name for p in runs.iterdir()) == [".mlcv-runs-cache.json", "r1"]
