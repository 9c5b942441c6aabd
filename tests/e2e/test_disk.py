"""Disk that grows: `mlcv cache` (sizes, prune least recently used first, clear) and `mlcv runs rm`
/ `mlcv runs --size`, never removing what a running process holds."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from helpers import mlcv_uncaught as run
from mlcv_cli import data as datasets
from mlcv_cli.core.features.chain import FeatureChain
from mlcv_cli.data.feature_cache import FeatureStore
from mlcv_cli.data.feature_chunks import Parts
from mlcv_cli.runs.rundir import RunDir

SMALL = ["--set", "data.num_train=300", "--set", "data.num_val=100", "--set", "data.num_test=100"]


# -- the feature cache ---------------------------------------------------------------------------


def chain():
    return FeatureChain([("hog", {"cell_size": 8})])


@pytest.fixture
def cache(tmp_path):
    """A data dir whose feature cache holds a fitted chain and three feature matrices, used one
    day, two days and three days ago (oldest first: the 40 test images, then the 60, then the 100)."""
    images = datasets.load_sample(32).train_x
    store = FeatureStore(tmp_path / "data" / "features")
    fitted, _ = store.fit(chain(), images[:100])
    store.transform(fitted, images[100:160])
    store.transform(fitted, images[160:200])
    now = time.time()
    markers = sorted((tmp_path / "data/features").glob("*.json"), key=lambda p: json.loads(p.read_text())["shape"][0])
    for days, marker in zip((3, 2, 1), markers):  # 40, 60 and 100 rows
        os.utime(marker, (now - days * 86400, now - days * 86400))
    return tmp_path / "data", images, fitted


def sizes(data_dir):
    return {e["name"]: e for e in json.loads(run("cache", "--data-dir", data_dir, "--json").stdout)["entries"]}


def test_cache_lists_entries_least_recently_used_first_with_the_total(cache):
    data_dir, _, _ = cache
    result = run("cache", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["size", "last", "used", "kind", "entry"]
    assert ["(40 x" in lines[1], "(60 x" in lines[2], "(100 x" in lines[3], "chain-" in lines[4]] == [True] * 4
    assert lines[-1].endswith(f"in 4 entries in {data_dir / 'features'}")
    total = sum(f.stat().st_size for f in (data_dir / "features").iterdir() if not f.name.startswith("."))
    listed = json.loads(run("cache", "--data-dir", data_dir, "--json").stdout)
    assert listed["bytes"] == total and [e["kind"] for e in listed["entries"]][:3] == ["features"] * 3
    assert [e["detail"].split(" x ")[0] for e in listed["entries"][:3]] == ["40", "60", "100"]


def test_a_hit_records_the_entry_as_used(cache):
    data_dir, images, fitted = cache
    FeatureStore(data_dir / "features").transform(fitted, images[160:200])  # the 40 images: the oldest entry
    after = json.loads(run("cache", "--data-dir", data_dir, "--json").stdout)["entries"]
    assert after[-1]["detail"].startswith("40 x") and [e["detail"][:3] for e in after[:2]] == ["60 ", "100"]


def test_prune_removes_least_recently_used_until_the_cache_fits(cache):
    data_dir, _, _ = cache
    before = sizes(data_dir)
    oldest = sorted(before.values(), key=lambda e: e["last_used"])
    cap = sum(e["bytes"] for e in before.values()) - oldest[0]["bytes"]  # room for all but the oldest
    dry = run("cache", "prune", "--max-size", cap, "--data-dir", data_dir, "--dry-run")
    assert dry.exit_code == 0 and f"would remove features {oldest[0]['name']}" in dry.output
    assert sizes(data_dir) == before
    done = run("cache", "prune", "--max-size", cap, "--data-dir", data_dir, "--json")
    result = json.loads(done.stdout)
    assert [e["name"] for e in result["removed"]] == [oldest[0]["name"]] and result["bytes"] <= cap
    assert set(sizes(data_dir)) == set(before) - {oldest[0]["name"]}
    assert json.loads(run("cache", "prune", "--max-size", "0", "--data-dir", data_dir, "--json").stdout)["bytes"] == 0


def test_clear_asks_first_and_never_removes_what_a_running_process_holds(cache):
    data_dir, images, fitted = cache
    refused = run("cache", "clear", "--data-dir", data_dir)
    assert refused.exit_code == 2 and "--yes" in refused.stderr and len(sizes(data_dir)) == 4
    mapped = FeatureStore(data_dir / "features").transform(fitted, images[100:160])  # a run reading it now
    assert isinstance(mapped, np.memmap)
    parts = Parts(data_dir / "features", "f" * 32, "images-being-encoded", "chain", (10, 4))
    with parts.in_use():  # a run encoding now
        parts.write(0, np.zeros((10, 4), np.float32))
        cleared = run("cache", "clear", "--data-dir", data_dir, "--yes")
        assert cleared.exit_code == 0, cleared.output
        left = sizes(data_dir)
    assert {e["kind"] for e in left.values()} == {"features", "part"} and all(e["in_use"] for e in left.values())
    assert "in use by a running process" in cleared.output
    del mapped
    assert run("cache", "clear", "--data-dir", data_dir, "--yes").exit_code == 0 and sizes(data_dir) == {}


@pytest.mark.parametrize("value, expected", [("2G", 2 << 30), ("500M", 500 << 20), ("1.5GiB", 3 << 29), ("0", 0), ("123", 123)])
def test_sizes_read_like_du(value, expected, tmp_path):
    result = run("cache", "prune", "--max-size", value, "--data-dir", tmp_path, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["max_bytes"] == expected


def test_a_size_that_is_not_one_is_a_usage_error(tmp_path):
    result = run("cache", "prune", "--max-size", "lots", "--data-dir", tmp_path)
    assert result.exit_code == 2 and "expected a size such as 2G" in result.stderr


# -- run directories ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("made") / "runs"
    for k in (1, 3, 5):
        assert run("train", "--model", "knn", "--set", f"model.k={k}", *SMALL, "--set", f"output.dir={root}").exit_code == 0
    return root


@pytest.fixture
def runs_dir(made_runs, tmp_path):
    """Three kNN runs: one failed, one stale (marked running, its process gone), one done."""
    root = tmp_path / "runs"
    shutil.copytree(made_runs, root)
    failed, stale, _ = sorted(p for p in root.iterdir() if p.is_dir())
    RunDir(failed).update_meta(status="failed", error="boom")
    RunDir(stale).update_meta(status="running", pid=2**22 + 1)
    return root


def names(result):
    return sorted(os.path.basename(r["path"]) for r in result)


def test_runs_rm_removes_what_the_filter_picks_after_a_dry_run(runs_dir):
    failed = next(p.name for p in sorted(runs_dir.iterdir()) if p.is_dir())
    dry = run("runs", "rm", runs_dir, "--filter", "status=failed", "--dry-run")
    assert dry.exit_code == 0 and f"would remove {runs_dir / failed} (failed, " in dry.output and (runs_dir / failed).exists()
    refused = run("runs", "rm", runs_dir, "--filter", "status=failed")  # not a terminal: never without --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr and (runs_dir / failed).exists()
    done = run("runs", "rm", runs_dir, "--filter", "status=failed", "--yes")
    assert done.exit_code == 0 and done.output.splitlines()[0].startswith(f"removed {runs_dir / failed} (failed, ")
    assert not (runs_dir / failed).exists() and len([p for p in runs_dir.iterdir() if p.is_dir()]) == 2


def test_runs_rm_never_removes_a_running_run_but_does_a_stale_one(runs_dir):
    live = sorted(p for p in runs_dir.iterdir() if p.is_dir())[2]
    RunDir(live).update_meta(status="running")
    with RunDir(live).locked():  # its process is alive and writing it
        result = run("runs", "rm", runs_dir, "--filter", "status=running", "--yes", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["status"] for r in out["removed"]] == ["stale"] and [r["reason"] for r in out["left"]] == ["running"]
    assert live.exists() and out["freed"] > 0


def test_runs_rm_needs_a_filter(runs_dir):
    result = run("runs", "rm", runs_dir, "--yes")
    assert result.exit_code == 2 and "at least one --filter" in result.stderr


def test_runs_size_adds_a_column_and_bytes(runs_dir):
    table = run("runs", runs_dir, "--size")
    assert table.exit_code == 0 and "size" in table.output.splitlines()[1] and " on disk" in table.output.splitlines()[0]
    rows = json.loads(run("runs", runs_dir, "--size", "--json").stdout)["runs"]
    assert all(r["bytes"] > 1000 for r in rows)
