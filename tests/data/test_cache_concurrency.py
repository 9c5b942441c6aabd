"""Several real mlcv processes importing into and reading one dataset cache at once (no mocks)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SIDE, clean_env, make_folder, run_mlcv
from mlcv_cli.data import load_cifar10, load_folder
from mlcv_cli.data.cifar10 import FOLDER


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("folders")
    return make_folder(base / "one", seed=1), make_folder(base / "two", seed=2, n_train=10)


WORKER = """
import hashlib, json, os, sys, time
from mlcv_cli.data import import_folder, load_imported
from mlcv_cli.errors import DataError
role, data, folders, n, stop = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def digest(ds):
    h = hashlib.sha256()
    for a in (ds.train_x, ds.train_y, ds.test_x, ds.test_y):
        h.update(a.tobytes())
    return h.hexdigest()
out = []
for i in range(n):
    if role == "writer":
        import_folder(folders[i % len(folders)], data, "same", size=8, progress=False)
    elif os.path.exists(stop):
        break
    else:
        try:
            out.append(digest(load_imported(data, "same", mmap=False)))
        except DataError as exc:
            out.append("error: " + str(exc))
print(json.dumps(out))
"""


def _worker(role, data, folders, n, stop):
    return subprocess.Popen([sys.executable, "-c", WORKER, role, str(data), json.dumps([str(f) for f in folders]), str(n), str(stop)],
                            cwd=Path(stop).parent, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _digest(folder):
    ds, _ = load_folder(folder, size=SIDE)
    h = hashlib.sha256()
    for a in (ds.train_x, ds.train_y, ds.test_x, ds.test_y):
        h.update(a.tobytes())
    return h.hexdigest()


def _check_one_generation(data):
    names = sorted(p.name for p in (data / "folders" / "same").iterdir())
    assert len(names) == 5 and names[0] == "manifest.json", names  # one generation, no leftovers
    assert sorted(p.name for p in (data / "folders").iterdir()) == ["same"]  # no lock file left


def test_concurrent_imports_of_one_name_all_succeed_and_leave_one_whole_import(folders, tmp_path):
    data = tmp_path / "data"
    writers = [_worker("writer", data, folders[i:] + folders[:i], 5, tmp_path / "stop") for i in range(3)]
    outs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0] * 3, outs

    reader = _worker("reader", data, folders, 1, tmp_path / "stop")
    [seen] = json.loads(reader.communicate(timeout=300)[0])
    assert seen in {_digest(folders[0]), _digest(folders[1])}
    _check_one_generation(data)
    # The CLI says which import it replaced and leaves the same single generation.
    result = run_mlcv("download", "folder", folders[0], "--name", "same", "--data-dir", data, "--size", SIDE, cwd=tmp_path,
                      env=clean_env(), timeout=300)
    assert result.returncode == 0, result.stderr
    _check_one_generation(data)


def test_readers_see_the_old_or_the_new_import_whole_while_it_is_replaced(folders, tmp_path):
    data = tmp_path / "data"
    stop = tmp_path / "stop"
    first = _worker("writer", data, folders, 1, stop)
    assert first.communicate(timeout=300) and first.returncode == 0
    readers = [_worker("reader", data, folders, 100000, stop) for _ in range(2)]
    writer = _worker("writer", data, folders[::-1], 16, stop)
    out, err = writer.communicate(timeout=300)
    stop.write_text("")
    assert writer.returncode == 0, err
    whole = {_digest(folders[0]), _digest(folders[1])}
    for reader in readers:
        out, err = reader.communicate(timeout=300)
        assert reader.returncode == 0, err
        seen = json.loads(out)
        assert seen and set(seen) <= whole, [s for s in seen if s not in whole][:3]
    _check_one_generation(data)


PREPARE = """
import sys
from mlcv_cli.data.cifar10 import prepare_cifar10
print(prepare_cifar10(sys.argv[1], archive=sys.argv[2], md5=None, progress=False, records_per_batch=20)["status"])
"""


def test_concurrent_cifar10_imports_into_one_data_dir(tmp_path, make_archive):
    archive, batches = make_archive("cifar.tar.gz", records=20)
    data = tmp_path / "data"
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE, str(data), str(archive)], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    statuses = sorted(o[0].strip() for o in outs)
    assert statuses.count("imported") >= 1 and set(statuses) <= {"imported", "cached"}
    ds = load_cifar10(data)
    assert np.array_equal(ds.test_x, batches[f"{FOLDER}/test_batch.bin"][0])
    assert sorted(p.name for p in (data / "cifar10").iterdir())[0] == "manifest.json"
    assert len(list((data / "cifar10").iterdir())) == 5
