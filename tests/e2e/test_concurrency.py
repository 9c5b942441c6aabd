"""Several real mlcv processes on one data dir and one run directory at once (no mocks)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIDE = 8


def make_folder(root, seed, classes=("a", "b", "c"), n_train=14, n_test=4):
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 200, (SIDE, SIDE, 3), dtype=np.uint8)
                pixels[..., c % 3] += 50
                Image.fromarray(pixels).save(d / f"{i}.png")
    return root


def env():
    e = dict(os.environ)
    e.pop("MLCV_DEBUG", None)
    return e


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mlcv_cli.cli.app", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=300)


def wait_for(predicate, proc, what, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def data_args(folder, runs):
    return ["--set", "data.dataset=folder", "--set", f"data.path={folder}", "--set", f"data.image_size={SIDE}",
            "--set", "data.num_val=6", "--set", f"output.dir={runs}"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("folders")
    return make_folder(base / "one", seed=1), make_folder(base / "two", seed=2, n_train=10)


# -- a run directory is used by one process at a time ---------------------------------------------


def test_train_resume_of_a_live_run_is_refused_naming_its_pid(folders, tmp_path):
    runs = tmp_path / "runs"
    first = start("train", "--model", "svm", *data_args(folders[0], runs), "--set", "train.epochs=100000",
                  "--set", "train.batch_size=8", "--set", "train.checkpoint_every=20", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/checkpoint.npz")), first, "the first checkpoint")
        [rd] = runs.iterdir()
        second = run("train", "--resume", rd, cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert f"is in use by mlcv process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert json.loads((rd / "meta.json").read_text())["status"] == "running"
    finally:
        kill(first)
    # The kernel dropped the lock with the process: the killed run resumes at once.
    resumed = start("train", "--resume", rd, cwd=tmp_path)
    try:
        wait_for(lambda: json.loads((rd / "meta.json").read_text()).get("resumed"), resumed, "the resume to start")
        assert resumed.poll() is None, resumed.communicate()
    finally:
        kill(resumed)


def test_cv_resume_of_a_live_run_is_refused_naming_its_pid(folders, tmp_path):
    runs = tmp_path / "runs"
    first = start("cv", "--model", "softmax", "--folds", "3", "--grid", "train.lr=0.001,0.002,0.003,0.004,0.005,0.006",
                  *data_args(folders[0], runs), "--set", "train.epochs=3000", cwd=tmp_path)
    try:
        wait_for(lambda: list(runs.glob("*/jobs.jsonl")), first, "the first finished job")
        [rd] = runs.iterdir()
        before = (rd / "jobs.jsonl").read_bytes()
        second = run("cv", "--resume", rd, cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert f"is in use by mlcv process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert (rd / "jobs.jsonl").read_bytes().startswith(before)  # the refused process wrote nothing
    finally:
        kill(first)
    again = start("cv", "--resume", rd, cwd=tmp_path)
    try:
        wait_for(lambda: "resumed" in json.loads((rd / "meta.json").read_text()), again, "the resume to start")
    finally:
        kill(again)


# -- the dataset cache: one importer at a time, readers see one import whole ------------------------


def _decoded(folder):
    from mlcv_cli.data import load_folder

    ds, _ = load_folder(folder, size=SIDE)
    return ds


def _same(a, b):
    return a.classes == b.classes and np.array_equal(a.train_x, b.train_x) and np.array_equal(a.train_y, b.train_y) \
        and np.array_equal(a.test_x, b.test_x) and np.array_equal(a.test_y, b.test_y)


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
                            cwd=Path(stop).parent, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _digest(folder):
    import hashlib

    from mlcv_cli.data import load_folder

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
    result = run("download", "folder", folders[0], "--name", "same", "--data-dir", data, "--size", SIDE, cwd=tmp_path)
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


def test_concurrent_cifar10_imports_into_one_data_dir(tmp_path):
    import io
    import tarfile

    from mlcv_cli.data.cifar10 import FOLDER, encode_batch

    rng = np.random.default_rng(0)
    names = [f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)] + [f"{FOLDER}/test_batch.bin"]
    batches = {n: (rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 20)) for n in names}
    archive = tmp_path / "cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, (images, labels) in batches.items():
            blob = encode_batch(images, labels)
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = tmp_path / "data"
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE, str(data), str(archive)], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    statuses = sorted(o[0].strip() for o in outs)
    assert statuses.count("imported") >= 1 and set(statuses) <= {"imported", "cached"}
    from mlcv_cli.data import load_cifar10

    ds = load_cifar10(data)
    assert np.array_equal(ds.test_x, batches[names[-1]][0])
    assert sorted(p.name for p in (data / "cifar10").iterdir())[0] == "manifest.json"
    assert len(list((data / "cifar10").iterdir())) == 5
