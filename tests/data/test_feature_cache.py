"""data/feature_cache.py shared by processes: simultaneous writers and killed writers (real processes, no mocks)."""

import json
import signal
import subprocess
import sys
import time

import numpy as np

from mlcv_cli import config
from mlcv_cli.config import features as feature_config
from mlcv_cli.data.feature_cache import FeatureStore

ENCODE = """
import json, sys
import numpy as np

from mlcv_cli import config
from mlcv_cli.config import features as feature_config
from mlcv_cli.data.feature_cache import FeatureStore
cfg = config.resolve(model_type="softmax", overrides=["features.0.type=hog"])
images = np.random.default_rng(int(sys.argv[2])).integers(0, 256, (600, 32, 32, 3), dtype=np.uint8)
store = FeatureStore(sys.argv[1])
chain, X = store.fit(feature_config.build_chain(cfg), images)
store.transform(chain, images[:200], what="val")
print(json.dumps([e["cache"] for e in store.events]))
"""

# Writes one big feature entry after another (new keys each time) until killed.
WRITE_FOREVER = """
import sys
import numpy as np
from mlcv_cli.data.feature_cache import FeatureStore
store = FeatureStore(sys.argv[1])
X = np.random.default_rng(0).random((150_000, 64), dtype=np.float32)
i = 0
print("ready", flush=True)
while True:
    i += 1
    store._save_features(None, f"images-{i}", X, chain_fp=f"chain-{i}")
"""


def _python(code, *args, **kw):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True, **kw)


def _hog_chain():
    return feature_config.build_chain(config.resolve(model_type="softmax", overrides=["features.0.type=hog"]))


def _entries_all_valid(directory):
    names = sorted(p.name for p in directory.iterdir())
    assert not [n for n in names if n.endswith(".tmp")], names
    for npy in directory.glob("*.npy"):
        manifest = json.loads(npy.with_suffix(".json").read_text())
        X, problem = FeatureStore(directory)._read_features(manifest["images"], manifest["chain"], *manifest["shape"])
        assert problem is None and X is not None, (npy.name, problem)
    return names


def test_two_processes_encoding_the_same_features_both_end_with_a_correct_cache(tmp_path):
    cache = tmp_path / "features"
    for round_ in range(2):
        procs = [_python(ENCODE, cache, 7) for _ in range(3)]
        outcomes = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
        assert all(p.returncode == 0 for p in procs)
        if round_:
            assert all(o == ["hit", "hit", "hit"] for o in outcomes), outcomes
    _entries_all_valid(cache)
    # What the cache gives is what encoding without a cache gives.
    images = np.random.default_rng(7).integers(0, 256, (600, 32, 32, 3), dtype=np.uint8)
    store = FeatureStore(cache)
    chain, X = store.fit(_hog_chain(), images)
    assert [e["cache"] for e in store.events] == ["hit", "hit"]
    np.testing.assert_array_equal(X, _hog_chain().fit_transform(images))


def test_what_a_killed_cache_writer_left_is_removed_by_the_next_writer(tmp_path):
    cache = tmp_path / "features"
    rng = np.random.default_rng(3)
    leftovers = []
    for _ in range(20):  # until a kill lands in the middle of a write
        proc = _python(WRITE_FOREVER, cache)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.2, 0.8)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers = [p.name for p in cache.iterdir()
                     if p.name.endswith(".tmp") or (p.suffix == ".npy" and not p.with_suffix(".json").exists())]
        if leftovers:
            break
    assert leftovers, "no kill landed inside a write"
    store = FeatureStore(cache)
    chain, X = store.fit(_hog_chain(), np.zeros((20, 32, 32, 3), np.uint8))
    names = _entries_all_valid(cache)
    assert not set(leftovers) & set(names), leftovers
