"""Hostile and broken input, faults and divergence, driven through the real `mlcv` command.

Each case checks the exit code (2 for config/usage mistakes, 1 for runtime failures), a
one-line ``Error: ...`` naming the file or key, no traceback, and that nothing was written
that looks complete and nothing earlier was lost. We run as root, so permission and
disk-full faults are simulated by monkeypatching, or by a path whose parent is a file.
"""

import errno
import io
import json
import os
import struct
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import SIDE, folder_args, make_folder, mlcv, start_mlcv
from mlcv_cli.system import atomic
from mlcv_cli.data import download
from mlcv_cli.runs.rundir import RunDir

N_TRAIN, N_TEST = 12, 4
pytestmark = pytest.mark.usefixtures("in_tmp")


# -- helpers ------------------------------------------------------------------------------


def assert_fails(result, code, *fragments):
    """Exit ``code``, no traceback, and an `Error:` line on stderr holding every fragment."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors, result.stderr
    for fragment in fragments:
        assert any(str(fragment) in line for line in errors), (fragment, result.stderr)


def strict_json(path):
    """Parse a JSON file, failing on NaN/Infinity (json.dumps writes them; JSON has none)."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def snapshot(root):
    """{relative path: bytes} of every file under root."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def tinted_folder(root, classes=("a", "b", "c"), n_train=N_TRAIN, n_test=N_TEST, constant=False, test_classes=None):
    """ROOT/{train,test}/<class>/<i>.png of SIDE x SIDE images; each class has its own tint (constant: all grey)."""
    colours = dict(base=128, noise=1, tint=0) if constant else dict(noise=80, tint=170)
    return make_folder(root, classes, n_train, n_test, test_classes=test_classes, **colours)


def only_run(runs):
    dirs = [p for p in Path(runs).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def bomb_png(width, height):
    """A tiny PNG whose header declares width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished softmax and kNN run on a 3-class 8x8 folder: (folder, {model: run dir})."""
    base = tmp_path_factory.mktemp("trained")
    folder = tinted_folder(base / "imgs")
    runs = {}
    for model in ("softmax", "knn"):
        result = mlcv("train", "--model", model, *folder_args(folder, base / model), "--set", "train.epochs=2", "--json")
        assert result.exit_code == 0, result.output
        runs[model] = Path(json.loads(result.stdout)["run_dir"])
    return folder, runs


# -- model files -----------------------------------------------------------------------------


class _Marker:
    """Unpickling this creates a directory: proof that mlcv never unpickles."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _with(arrays, **changes):
    out = dict(arrays)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _bad_models(good_softmax, good_knn, marker):
    soft = dict(np.load(good_softmax, allow_pickle=False))
    knn = dict(np.load(good_knn, allow_pickle=False))
    W = soft["W"]

    def npz(arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def zip_of(**members):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
        return buf.getvalue()

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (200_000, 200_000)})
    lying = io.BytesIO(npz(_with(soft, W=None)))
    with zipfile.ZipFile(lying, "a") as z:
        z.writestr("W.npy", header.getvalue() + bytes(64))  # declares 160 GB in a few bytes

    nan_w = W.copy()
    nan_w[0, 0] = np.nan
    good = Path(good_softmax).read_bytes()
    return {
        "random-zip": (zip_of(**{"hello.txt": b"hi", "x.npy": b"nope"}), "not an mlcv model"),
        "not-a-zip": (b"just some text\n" * 10, "not an mlcv model"),
        "zero-bytes": (b"", "not an mlcv model"),
        "truncated": (good[: len(good) // 2], "not an mlcv model"),
        "pickled": (npz(_with(soft, evil=np.array([_Marker(str(marker))], dtype=object))), "pickled objects"),
        "version-99": (npz(_with(soft, format_version=np.array(99))), "format 99"),
        "other-format": (npz(_with(soft, mlcv_format=np.array("keras"))), "not an mlcv model"),
        "W-wrong-shape": (npz(_with(soft, W=W[:-5])), "W must be"),
        "W-missing": (npz(_with(soft, W=None)), "needs W"),
        "lying-header": (lying.getvalue(), "declares 160,000,000,000 bytes"),
        "nan-weights": (npz(_with(soft, W=nan_w)), "NaN or inf"),
        "nan-mean": (npz(_with(soft, **{"features.0.mean": np.full_like(soft["features.0.mean"], np.nan)})), "features.0.mean"),
        "zero-scale": (npz(_with(soft, features_spec=np.array(str(soft["features_spec"]).replace('"scale": 0.0039', '"scale": -0.0039')))), "features.0.scale"),
        "spec-not-json": (npz(_with(soft, features_spec=np.array("{"))), "features_spec"),
        "mean-wrong-size": (npz(_with(soft, **{"features.0.mean": soft["features.0.mean"][:-1]})), "features.0.mean"),
        "foreign-array": (npz(_with(soft, **{"features.7.centroids": np.zeros(3, np.float32)})), "features.7.centroids"),
        "knn-k-text": (npz(_with(knn, k=np.array("three"))), "'k'"),
        "knn-k-too-big": (npz(_with(knn, k=np.array(10_000))), "'k'"),
        "knn-bad-metric": (npz(_with(knn, metric=np.array("cosine"))), "'metric'"),
        "knn-float-images": (npz(_with(knn, X_train=knn["X_train"].astype(np.float64) * np.nan)), "X_train"),
        "config-alias": (npz(_with(soft, config_yaml=np.array("a: &x [1]\nb: *x\n"))), "config"),
    }


@pytest.fixture(scope="module")
def bad_models(trained, tmp_path_factory):
    _, runs = trained
    d = tmp_path_factory.mktemp("badmodels")
    marker = d / "UNPICKLED"
    cases = {}
    for name, (data, fragment) in _bad_models(runs["softmax"] / "model.npz", runs["knn"] / "model.npz", marker).items():
        path = d / name / "model.npz"
        path.parent.mkdir()
        path.write_bytes(data)
        cases[name] = (path, fragment)
    return cases, marker


BAD_MODEL_NAMES = ["random-zip", "not-a-zip", "zero-bytes", "truncated", "pickled", "version-99", "other-format",
                   "W-wrong-shape", "W-missing", "lying-header", "nan-weights", "nan-mean", "zero-scale", "spec-not-json", "mean-wrong-size", "foreign-array", "knn-k-text",
                   "knn-k-too-big", "knn-bad-metric", "knn-float-images", "config-alias"]


@pytest.mark.parametrize("name", BAD_MODEL_NAMES)
def test_bad_model_file_is_refused_by_predict_and_evaluate(bad_models, trained, name):
    cases, marker = bad_models
    path, fragment = cases[name]
    before = path.read_bytes()
    image = next((trained[0] / "test" / "a").iterdir())
    pr = mlcv("predict", path, image, "--json")
    if name != "config-alias":  # predict does not read the saved config; evaluate refuses it
        assert_fails(pr, 1, path, fragment)
        out = json.loads(pr.stdout)  # no predictions from a bad model: only the failure, as JSON
        assert out["status"] == "failed" and "predictions" not in out
    ev = mlcv("evaluate", path)
    assert_fails(ev, 1, path, fragment)
    assert path.read_bytes() == before
    assert not marker.exists()  # nothing was unpickled


# -- configs ---------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)

BAD_CONFIGS = {
    "alias-bomb": (BOMB, "aliases are not allowed"),
    "python-tag": ("model: !!python/object/apply:os.mkdir ['TAGGED']\n", "only plain YAML"),
    "list-top": ("- model\n- train\n", "expected a mapping"),
    "scalar-top": ("just a string\n", "expected a mapping"),
    "deep-nesting": ("model: " + "[" * 20000 + "]" * 20000 + "\n", "not valid YAML"),
    "not-utf8": (b"model:\n  type: \xff\xfe\n", "cannot read config"),
    "unknown-key": ("model:\n  typo: 3\n", "model.typo"),
    "bad-value": ("train:\n  lr: .nan\n", "train.lr"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_is_refused_with_exit_2(tmp_path, name):
    text, fragment = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = mlcv("train", "--config", path, "--set", f"output.dir={tmp_path / 'runs'}")
    assert_fails(result, 2, path.name, fragment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "TAGGED").exists()


def test_set_override_with_a_tag_is_plain_text(tmp_path):
    result = mlcv("train", "--model", "knn", "--set", "data.path=!!python/object/apply:os.mkdir ['X']", "--print-config")
    assert result.exit_code == 0 and not (tmp_path / "X").exists()


# -- images given to predict ------------------------------------------------------------------


def test_predict_reports_each_bad_image_by_path_and_predicts_the_rest(trained, tmp_path):
    _, runs = trained
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(d / "good.png")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    bad = {
        "zero.png": b"",
        "truncated.jpg": buf.getvalue()[: len(buf.getvalue()) // 2],
        "text.png": b"this is a text file, not a PNG\n",
        "bomb.png": bomb_png(100_000, 100_000),  # Pillow's own bomb limit
        "large.png": bomb_png(8_000, 8_000),  # under Pillow's limit, over mlcv's MAX_PIXELS
    }
    for name, data in bad.items():
        (d / name).write_bytes(data)
    missing = d / "missing.png"
    for model, run in runs.items():
        result = mlcv("predict", run, *sorted(d.iterdir()), missing, "--json")
        assert result.exit_code == 1 and "Traceback" not in result.output
        out = json.loads(result.stdout)
        assert [Path(p["path"]).name for p in out["predictions"]] == ["good.png"]
        assert sorted(Path(f["path"]).name for f in out["failed"]) == sorted([*bad, "missing.png"])
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == len(bad) + 1
        for name in [*bad, "missing.png"]:
            assert any(str(d / name) in line for line in errors), (name, result.stderr)
        assert "NaN" not in result.stdout
    assert "too large" in result.stderr and "empty" in result.stderr and "truncated" in result.stderr


def test_predict_with_huge_softmax_scores_gives_finite_probabilities(trained, tmp_path):
    _, runs = trained
    arrays = dict(np.load(runs["softmax"] / "model.npz", allow_pickle=False))
    arrays["W"] = arrays["W"] * np.float32(1e6)  # scores far beyond exp's range
    path = tmp_path / "huge" / "model.npz"
    path.parent.mkdir()
    np.savez(path, **arrays)
    image = next((trained[0] / "test" / "b").iterdir())
    result = mlcv("predict", path, image, "--json", "--top", "3")
    assert result.exit_code == 0, result.output
    probs = [t["probability"] for t in json.loads(result.stdout)["predictions"][0]["top"]]
    assert all(np.isfinite(probs)) and sum(probs) == pytest.approx(1.0)


# -- hostile archives -------------------------------------------------------------------------


def _zip_with(path, evil_name, evil_data=b"x", symlink=False):
    png = io.BytesIO()
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(png, "PNG")
    with zipfile.ZipFile(path, "w") as z:
        for c in ("a", "b"):
            for i in range(3):
                z.writestr(f"train/{c}/{i}.png", png.getvalue())
        info = zipfile.ZipInfo(evil_name)
        if symlink:
            info.external_attr = (0o120777 << 16)
        z.writestr(info, evil_data)
    return path


@pytest.mark.parametrize(
    "member, symlink, fragment",
    [
        ("../evil.png", False, "outside the archive"),
        ("train/a/../../../evil.png", False, "outside the archive"),
        ("/tmp/evil.png", False, "outside the archive"),
        ("C:/evil.png", False, "outside the archive"),
        ("train/a/link.png", True, "link"),
    ],
)
def test_download_folder_refuses_escaping_zip_members(tmp_path, member, symlink, fragment):
    archive = _zip_with(tmp_path / "hostile.zip", member, b"/etc/passwd" if symlink else b"x", symlink)
    data = tmp_path / "data"
    result = mlcv("download", "folder", archive, "--name", "hostile", "--data-dir", data, "--size", SIDE)
    assert_fails(result, 1, archive, "refusing")
    assert fragment in result.stderr
    assert not data.exists()  # nothing written inside the data dir...
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()  # ...or outside it


def _tar_with(path, *members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, (data if info.isfile() else None)


BATCH = "cifar-10-batches-bin/data_batch_1.bin"


@pytest.mark.parametrize(
    "member, fragment",
    [
        (_member(BATCH, type=tarfile.SYMTYPE, linkname="/etc/passwd"), "is a link"),
        (_member(BATCH, type=tarfile.LNKTYPE, linkname="cifar-10-batches-bin/readme.html"), "is a link"),
        (_member("../evil.bin", b"x"), "'..'"),
        (_member("/tmp/evil.bin", b"x"), "absolute path"),
        (_member("cifar-10-batches-bin/dev", type=tarfile.CHRTYPE), "special file"),
        (_member("cifar-10-batches-bin/huge.bin", bytes(2 << 20)), "unexpected member"),
        (_member(BATCH, b"\0" * 1000), "expected 30,730,000"),
    ],
)
def test_download_cifar10_refuses_hostile_archive(tmp_path, member, fragment):
    import hashlib

    archive = _tar_with(tmp_path / "cifar-10-binary.tar.gz", _member("cifar-10-batches-bin/readme.html", b"hi"), member)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    data = tmp_path / "data"
    result = mlcv("download", "cifar10", "--archive", archive, "--md5", md5, "--data-dir", data)
    assert_fails(result, 1, archive, fragment)
    assert not (data / "cifar10").exists()
    assert not (tmp_path / "evil.bin").exists() and not Path("/tmp/evil.bin").exists()


# -- disk full and unwritable directories -----------------------------------------------------


@pytest.fixture
def disk_full(monkeypatch):
    """disk_full(*names): writes to those files store half their bytes, then ENOSPC; disk_full() frees it."""
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
    doomed = {}
    names = []

    def mkstemp(*args, **kwargs):
        fd, tmp = real_mkstemp(*args, **kwargs)
        if any(os.path.basename(tmp).startswith(f".{n}") for n in names):
            doomed[fd] = tmp
        return fd, tmp

    class Full(io.RawIOBase):
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(bytes(data)[: len(data) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def writable(self):
            return True

        def fileno(self):
            return self.fh.fileno()

        def close(self):
            self.fh.close()
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        if doomed.pop(fd, None) is None:
            return real_fdopen(fd, mode, *args, **kwargs)
        raw = Full(real_fdopen(fd, "wb"))
        return raw if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", newline="")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(atomic.os, "fdopen", fdopen)
    def fill(*victims):
        names[:] = victims

    return fill


@pytest.mark.parametrize("victim", ["model.npz", "metrics.json", "history.csv"])
def test_disk_full_while_saving_a_run(tmp_path, disk_full, victim):
    folder = tinted_folder(tmp_path / "imgs")
    runs = tmp_path / "runs"
    earlier = mlcv("train", "--model", "softmax", *folder_args(folder, runs), "--set", "train.epochs=1", "--json")
    assert earlier.exit_code == 0
    before = snapshot(runs)
    disk_full(victim)
    result = mlcv("train", "--model", "softmax", *folder_args(folder, runs), "--set", "train.epochs=1", "--set", "output.name=full")
    assert_fails(result, 1, victim, "No space left on device", "free some disk space")
    new = next(p for p in runs.iterdir() if p.name.startswith("full-"))
    assert not (new / "model.npz").exists()
    assert not [p.name for p in new.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind
    assert strict_json(new / "meta.json")["status"] == "failed"
    assert {k: v for k, v in snapshot(runs).items() if not k.startswith("full-")} == before


def test_disk_full_while_importing_keeps_the_earlier_import(tmp_path, disk_full):
    # The cache's manifest is renamed into place last and names fresh array files, so a
    # failed re-import leaves the earlier import complete and in use.
    folder = tinted_folder(tmp_path / "imgs")
    source = snapshot(folder)
    data = tmp_path / "data"
    first = mlcv("download", "folder", folder, "--name", "pets", "--data-dir", data, "--size", SIDE)
    assert first.exit_code == 0, first.output
    cache = data / "folders" / "pets"
    before = snapshot(cache)
    disk_full("test_x-")
    again = mlcv("download", "folder", folder, "--name", "pets", "--data-dir", data, "--size", SIDE)
    assert_fails(again, 1, "test_x-", "No space left on device")
    assert snapshot(cache) == before  # the earlier import, byte for byte, and no leftovers
    assert snapshot(folder) == source
    args = ["--set", "data.dataset=folder", "--set", "data.path=pets", "--set", f"data.image_size={SIDE}",
            "--set", "data.num_val=6", "--data-dir", data, "--set", f"output.dir={tmp_path / 'runs'}"]
    assert mlcv("train", "--model", "knn", *args).exit_code == 0
    disk_full()  # the disk has room again
    assert mlcv("download", "folder", folder, "--name", "pets", "--data-dir", data, "--size", SIDE).exit_code == 0
    assert mlcv("train", "--model", "knn", *args).exit_code == 0


def test_disk_full_during_download_leaves_no_file(tmp_path, monkeypatch):
    source = tmp_path / "src.tar.gz"
    source.write_bytes(os.urandom(3 << 20))
    data = tmp_path / "data"
    (data / "cifar10").mkdir(parents=True)
    (data / "cifar10" / "keep.txt").write_text("earlier results")
    real_open = open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, block):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return Full(fh) if str(path).endswith(".part") and ("w" in mode or "a" in mode) else fh

    monkeypatch.setattr(download, "open", fake_open, raising=False)
    result = mlcv("download", "cifar10", "--url", source.as_uri(), "--data-dir", data)
    assert_fails(result, 1, "free some disk space")
    assert sorted(p.name for p in data.iterdir()) == ["cifar10"]  # no archive, no .part
    assert (data / "cifar10" / "keep.txt").read_text() == "earlier results"


def test_runs_dir_not_writable(tmp_path, monkeypatch):
    folder = tinted_folder(tmp_path / "imgs")
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file")
    result = mlcv("train", "--model", "knn", *folder_args(folder, blocker / "runs"))
    assert_fails(result, 1, blocker / "runs", "output.dir")
    result = mlcv("train", "--model", "knn", *folder_args(folder, blocker))
    assert_fails(result, 1, blocker, "output.dir")
    assert blocker.read_text() == "a regular file"

    from pathlib import Path as P

    real_mkdir = P.mkdir

    def denied(self, *args, **kwargs):
        if self.parent == tmp_path / "runs":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(P, "mkdir", denied)
    result = mlcv("train", "--model", "knn", *folder_args(folder, tmp_path / "runs"))
    assert_fails(result, 1, tmp_path / "runs", "Permission denied", "output.dir")


@pytest.mark.parametrize("command", ["folder", "folder-denied", "cifar10"])
def test_data_dir_not_writable(tmp_path, monkeypatch, command):
    folder = tinted_folder(tmp_path / "imgs")
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file")
    data = blocker / "data"
    if command == "folder-denied":
        data = tmp_path / "data"

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

        monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
        result = mlcv("download", "folder", folder, "--name", "pets", "--data-dir", data, "--size", SIDE)
        assert "Permission denied" in result.stderr
        assert not list(data.rglob("manifest.json"))
    elif command == "folder":
        result = mlcv("download", "folder", folder, "--name", "pets", "--data-dir", data, "--size", SIDE)
    else:
        source = tmp_path / "src.tar.gz"
        source.write_bytes(b"x" * 1000)
        result = mlcv("download", "cifar10", "--url", source.as_uri(), "--data-dir", data)
    assert_fails(result, 1, data, "writable")
    assert blocker.read_text() == "a regular file"


# -- divergence --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["svm", "softmax"])
def test_divergence_stops_marks_failed_and_keeps_history(tmp_path, model):
    folder = tinted_folder(tmp_path / "imgs")
    runs = tmp_path / "runs"
    result = mlcv("train", "--model", model, *folder_args(folder, runs), "--set", "train.lr=1e30",
                  "--set", "train.batch_size=5", "--set", "train.epochs=50", "--set", "train.checkpoint_every=0")
    assert_fails(result, 1, "diverged at iteration", "train.lr=")
    iteration = int(result.stderr.split("diverged at iteration ")[1].split()[0])
    assert "too high" in result.stderr
    run = only_run(runs)
    assert strict_json(run / "meta.json")["status"] == "failed"
    assert not (run / "model.npz").exists() and not (run / "metrics.json").exists()
    rows = (run / "history.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) - 1 == iteration
    ev = mlcv("evaluate", run)
    assert_fails(ev, 1, "no model.npz", "failed")


# -- concurrent runs ---------------------------------------------------------------------------


def test_two_runs_started_at_once_get_their_own_directories(tmp_path):
    folder = tinted_folder(tmp_path / "imgs")
    procs = [start_mlcv("train", "--model", "knn", *folder_args(folder, tmp_path / "runs"), "--json", cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    dirs = {json.loads(out)["run_dir"] for out, _ in outs}
    assert len(dirs) == 2
    for d in dirs:
        assert strict_json(Path(tmp_path, d) / "meta.json")["status"] == "done"
        assert (Path(tmp_path, d) / "model.npz").is_file()
    # Within one second the names collide; mkdir is atomic, so the second gets a suffix.
    made = {RunDir.create(tmp_path / "same", "x").path.name for _ in range(5)}
    assert len(made) == 5


# -- numerical corner cases ---------------------------------------------------------------------


@pytest.mark.parametrize("model", ["knn", "softmax", "svm"])
def test_constant_images_give_finite_metrics(tmp_path, model):
    folder = tinted_folder(tmp_path / "imgs", constant=True)
    k = ["--set", "model.k=3"] if model == "knn" else []  # model.k is refused for a linear model
    result = mlcv("train", "--model", model, *folder_args(folder, tmp_path / "runs"), *k, "--json")
    assert result.exit_code == 0, result.output
    metrics = strict_json(only_run(tmp_path / "runs") / "metrics.json")
    assert 0 <= metrics["test_accuracy"] <= 1


def test_single_class_dataset(tmp_path):
    folder = tinted_folder(tmp_path / "imgs", classes=("only",))
    runs = tmp_path / "runs"
    for model in ("knn", "softmax"):
        result = mlcv("train", "--model", model, *folder_args(folder, runs / model), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["test_accuracy"] == 1.0
        strict_json(only_run(runs / model) / "metrics.json")
    cv = mlcv("cv", "--model", "knn", "--folds", "3", *folder_args(folder, runs / "cv"))
    assert_fails(cv, 1, "two classes")


def test_k_larger_than_training_set_is_a_config_error(tmp_path):
    folder = tinted_folder(tmp_path / "imgs")
    result = mlcv("train", "--model", "knn", *folder_args(folder, tmp_path / "runs"), "--set", "model.k=100")
    assert_fails(result, 2, "model.k", "100", "30")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    cv = mlcv("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,50", *folder_args(folder, tmp_path / "runs"))
    assert_fails(cv, 2, "model.k")


def test_absent_and_rare_classes_give_null_not_nan(tmp_path):
    # Class c: one training image (so some CV folds lack it) and no test images.
    folder = tinted_folder(tmp_path / "imgs", n_train={"a": 12, "b": 12, "c": 1}, test_classes=("a", "b"))
    runs = tmp_path / "runs"
    cv = mlcv("cv", "--model", "knn", "--folds", "3", "--grid", "model.k=1,3", "--refit", *folder_args(folder, runs, num_val=0), "--json")
    assert cv.exit_code == 0, cv.output
    run = only_run(runs)
    summary = strict_json(run / "cv_summary.json")
    assert summary["warning"] and all(np.isfinite(s["mean"]) for s in summary["summary"])
    metrics = strict_json(run / "refit" / "metrics.json")
    assert metrics["splits"]["test"]["per_class_accuracy"][2] is None
    assert "NaN" not in (run / "cv_results.csv").read_text()

    soft = mlcv("cv", "--model", "softmax", "--folds", "3", "--grid", "model.reg=0.001,0.01",
                *folder_args(folder, tmp_path / "runs2", num_val=0), "--set", "train.epochs=2", "--json")
    assert soft.exit_code == 0, soft.output
    strict_json(only_run(tmp_path / "runs2") / "cv_summary.json")


@pytest.mark.parametrize("status", ["running", "failed", "interrupted"])
def test_unfinished_run_is_used_only_with_a_warning(trained, tmp_path, status):
    import shutil

    _, runs = trained
    run = Path(shutil.copytree(runs["softmax"], tmp_path / "copy"))
    meta = strict_json(run / "meta.json")
    (run / "meta.json").write_text(json.dumps({**meta, "status": status}))
    image = next((trained[0] / "test" / "a").iterdir())
    for result in (mlcv("predict", run, image), mlcv("evaluate", run)):
        assert result.exit_code == 0, result.output
        assert f"Warning: run {run} has status '{status}', not done" in result.stderr
