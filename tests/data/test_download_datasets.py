"""MNIST, Fashion-MNIST and CIFAR-100: small files in each official format, served on 127.0.0.1."""

import gzip
import hashlib
import io
import json
import struct
import tarfile
import tracemalloc

import numpy as np
import pytest

from helpers import mlcv_uncaught as run
from mlcv_cli.data import cifar100, idx
from mlcv_cli.errors import DataError


def md5(data):
    return hashlib.md5(data).hexdigest()


def idx_bytes(array, compress=True):
    array = np.asarray(array, np.uint8)
    raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw


def idx_files(n_train=60, n_test=20, side=28, seed=0):
    """The four official MNIST file names -> gzipped IDX bytes, and the arrays they hold."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    return {idx.FILES[k]: idx_bytes(a) for k, a in arrays.items()}, arrays


def serve_idx(server, files, prefix="/mnist/"):
    for name, data in files.items():
        server.files[prefix + name] = data
    return server.url + prefix


def checksums(files):
    return [x for name, data in files.items() for x in ("--md5", f"{name}={md5(data)}")]


# -- IDX -------------------------------------------------------------------------------------


def test_mnist_download_parse_and_cache(server, tmp_path):
    files, arrays = idx_files()
    url = serve_idx(server, files)
    result = run("download", "mnist", "--url", url, "--data-dir", tmp_path, *checksums(files))
    assert result.exit_code == 0, result.output
    assert "MNIST ready" in result.stdout and "60 training and 20 test images" in result.stdout
    ds = idx.load_idx(idx.MNIST, tmp_path)
    assert ds.train_x.shape == (60, 28, 28, 1) and ds.test_x.shape == (20, 28, 28, 1) and ds.train_x.dtype == np.uint8
    np.testing.assert_array_equal(ds.train_x[..., 0], arrays["train_x"])
    np.testing.assert_array_equal(ds.test_y, arrays["test_y"])
    assert ds.classes == [str(d) for d in range(10)] and isinstance(ds.train_x, np.memmap)
    again = run("download", "mnist", "--url", url, "--data-dir", tmp_path)
    assert again.exit_code == 0 and "already in" in again.stdout


def test_fashion_mnist_class_names(server, tmp_path):
    files, _ = idx_files(seed=1)
    url = serve_idx(server, files, "/fashion/")
    assert run("download", "fashion-mnist", "--url", url, "--data-dir", tmp_path, *checksums(files)).exit_code == 0
    ds = idx.load_idx(idx.FASHION_MNIST, tmp_path)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot" and ds.name == "fashion-mnist"


def test_published_checksums_are_checked_by_default(server, tmp_path):
    files, _ = idx_files()
    url = serve_idx(server, files)
    result = run("download", "mnist", "--url", url, "--data-dir", tmp_path)
    assert result.exit_code == 1
    assert "checksum mismatch" in result.stderr and "expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mnist" / "manifest.json").exists()


def test_wrong_checksum_given_for_a_mirror(server, tmp_path):
    files, _ = idx_files()
    url = serve_idx(server, files)
    args = checksums(files)
    args[1] = args[1].split("=")[0] + "=" + "0" * 32
    result = run("download", "mnist", "--url", url, "--data-dir", tmp_path, *args)
    assert result.exit_code == 1 and "checksum mismatch" in result.stderr


def test_no_verify_warns_and_records_it(server, tmp_path):
    files, _ = idx_files()
    url = serve_idx(server, files)
    result = run("download", "mnist", "--url", url, "--data-dir", tmp_path, "--no-verify")
    assert result.exit_code == 0, result.output
    assert "Warning: checksums not verified" in result.stderr
    assert json.loads((tmp_path / "mnist" / "manifest.json").read_text())["verified"] is False


def test_cut_connection_resumes(server, tmp_path):
    files, arrays = idx_files(n_train=600)
    url = serve_idx(server, files)
    server.cut_next = 1  # the first file's reply stops halfway
    first = run("download", "mnist", "--url", url, "--data-dir", tmp_path, *checksums(files))
    assert first.exit_code == 1 and "run the same command again to resume" in first.stderr
    second = run("download", "mnist", "--url", url, "--data-dir", tmp_path, *checksums(files))
    assert second.exit_code == 0, second.output
    assert any(entry["range"] for entry in server.log)  # the second attempt asked for the rest only
    np.testing.assert_array_equal(idx.load_idx(idx.MNIST, tmp_path).train_x[..., 0], arrays["train_x"])


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_idx_header_declaring_more_than_it_holds(tmp_path):
    raw = idx_bytes(np.zeros((10, 28, 28)), compress=False)
    lying = raw[:4] + struct.pack(">I", 1_000_000) + raw[8:]  # claims a million images
    path = write(tmp_path / "x.gz", gzip.compress(lying))
    with pytest.raises(DataError, match=r"declares 1000000x28x28 = 784,000,000 bytes of data, but the file holds 7,840"):
        idx.read_idx(path, 3)


def test_idx_header_declaring_absurd_sizes_is_refused_before_allocating(tmp_path):
    raw = bytes([0, 0, 8, 3]) + struct.pack(">3I", 4_000_000_000, 28, 28)
    with pytest.raises(DataError, match="declares 4,000,000,000 items"):
        idx.read_idx(write(tmp_path / "a.gz", gzip.compress(raw)), 3)
    raw = bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 70000, 28)
    with pytest.raises(DataError, match="image side of 70000"):
        idx.read_idx(write(tmp_path / "b.gz", gzip.compress(raw)), 3)


@pytest.mark.parametrize("magic, fragment", [(bytes([0, 0, 9, 3]), "00000903"), (bytes([0, 0, 8, 2]), "00000802"), (bytes([1, 0, 8, 3]), "01000803")])
def test_idx_wrong_magic(tmp_path, magic, fragment):
    raw = magic + idx_bytes(np.zeros((2, 4, 4)), compress=False)[4:]
    with pytest.raises(DataError, match=f"IDX magic {fragment}, expected 00000803"):
        idx.read_idx(write(tmp_path / "m.gz", gzip.compress(raw)), 3)


def test_not_gzip_and_truncated_files(tmp_path):
    raw = idx_bytes(np.zeros((2, 4, 4)), compress=False)
    with pytest.raises(DataError, match="is not a gzip file"):
        idx.read_idx(write(tmp_path / "plain.gz", raw), 3)
    data = idx_bytes(np.random.default_rng(0).integers(0, 256, (50, 28, 28)))
    with pytest.raises(DataError, match="truncated or damaged|is damaged"):
        idx.read_idx(write(tmp_path / "cut.gz", data[: len(data) // 2]), 3)
    with pytest.raises(DataError, match="too short"):
        idx.read_idx(write(tmp_path / "tiny.gz", data[:10]), 3)


def test_served_non_gzip_file_is_one_error_line(server, tmp_path):
    files, _ = idx_files()
    files[idx.FILES["train_x"]] = b"<html>Not Found</html>" * 10
    url = serve_idx(server, files)
    result = run("download", "mnist", "--url", url, "--data-dir", tmp_path, "--no-verify")
    assert result.exit_code == 1 and "is not a gzip file" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_labels_and_images_must_agree(tmp_path):
    files, _ = idx_files()
    files[idx.FILES["train_y"]] = idx_bytes(np.zeros(59))
    for name, data in files.items():
        write(tmp_path / "src" / name, data)
    result = run("download", "mnist", "--archive", tmp_path / "src", "--data-dir", tmp_path / "data", "--no-verify")
    assert result.exit_code == 1 and "60 images but" in result.stderr and "59 labels" in result.stderr


def test_archive_folder_with_checksums(tmp_path):
    files, arrays = idx_files()
    for name, data in files.items():
        write(tmp_path / "src" / name, data)
    result = run("download", "mnist", "--archive", tmp_path / "src", "--data-dir", tmp_path / "data")
    assert result.exit_code == 1 and "not the official file" in result.stderr and "--md5" in result.stderr
    result = run("download", "mnist", "--archive", tmp_path / "src", "--data-dir", tmp_path / "data", *checksums(files))
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(idx.load_idx(idx.MNIST, tmp_path / "data").test_x[..., 0], arrays["test_x"])


@pytest.mark.parametrize("args, fragment", [
    (["--md5", "nonsense"], "--md5 expects FILE=HEX"),
    (["--md5", "train-images-idx3-ubyte.gz=xyz"], "32 hexadecimal digits"),
    (["--md5", "other.gz=" + "0" * 32], "not one of the official file names"),
    (["--url", "ftp2://x/"], "expected an http(s):// URL"),
])
def test_option_mistakes(tmp_path, args, fragment):
    result = run("download", "mnist", "--data-dir", tmp_path, *args)
    assert result.exit_code in (1, 2) and fragment in result.stderr, result.output


def test_full_size_mnist_parses_within_stated_memory(tmp_path):
    """60,000 + 10,000 images of 28x28: the parse holds the images once (README: 55 MB)."""
    for key, shape in (("train_x", (60000, 28, 28)), ("test_x", (10000, 28, 28))):
        images = np.zeros(shape, np.uint8)
        images[:, 10:18, 10:18] = np.arange(len(images), dtype=np.uint8)[:, None, None]
        write(tmp_path / idx.FILES[key], idx_bytes(images))
        label_key = key.replace("_x", "_y")
        write(tmp_path / idx.FILES[label_key], idx_bytes(np.arange(shape[0]) % 10))
    tracemalloc.start()
    try:
        ds = idx.parse_files(tmp_path, idx.MNIST)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ds.train_x.shape == (60000, 28, 28, 1) and ds.test_x.shape == (10000, 28, 28, 1)
    assert ds.train_x[12345, 12, 12, 0] == 12345 % 256 and ds.train_y[12345] == 12345 % 10
    assert peak < 70 * 2**20, f"{peak / 2**20:.0f} MiB"


# -- CIFAR-100 -------------------------------------------------------------------------------


def cifar100_archive(records=None, seed=0, drop=(), sizes=None, names=None, compress=True):
    records = records or {"train": 30, "test": 10}
    rng = np.random.default_rng(seed)
    fine_names = names or [f"fine{i:02d}" for i in range(100)]
    coarse_names = [f"coarse{i:02d}" for i in range(20)]
    arrays = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w", compresslevel=1) as tar:
        members = {}
        for split, n in records.items():
            images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            fine = rng.integers(0, 100, n)
            coarse = fine // 5
            arrays[split] = (images, coarse, fine)
            members[cifar100.MEMBERS[split]] = cifar100.encode_records(images, coarse, fine)
        members[cifar100.NAME_MEMBERS["fine"]] = ("\n".join(fine_names) + "\n").encode()
        members[cifar100.NAME_MEMBERS["coarse"]] = ("\n".join(coarse_names) + "\n").encode()
        for name, data in members.items():
            if name in drop:
                continue
            data = data[: (sizes or {}).get(name, len(data))]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), arrays


SMALL = {"train": 30, "test": 10}


def test_cifar100_download_fine_and_coarse(server, tmp_path):
    data, arrays = cifar100_archive()
    server.files["/c100/" + cifar100.ARCHIVE_NAME] = data
    ds, coarse, coarse_names = cifar100.parse_archive(_write_tmp(tmp_path, data), records=SMALL)
    np.testing.assert_array_equal(ds.train_x, arrays["train"][0])
    np.testing.assert_array_equal(ds.train_y, arrays["train"][2])
    np.testing.assert_array_equal(coarse["test"], arrays["test"][1])
    assert ds.classes[7] == "fine07" and coarse_names[3] == "coarse03"
    result = cifar100.prepare_cifar100(tmp_path / "data", url=server.url + "/c100/", md5=md5(data), records=SMALL, progress=False)
    assert result["status"] == "downloaded"
    fine = cifar100.load_cifar100(tmp_path / "data")
    assert fine.train_x.shape == (30, 32, 32, 3) and len(fine.classes) == 100
    np.testing.assert_array_equal(fine.test_y, arrays["test"][2])
    coarse_ds = cifar100.load_cifar100(tmp_path / "data", labels="coarse")
    assert coarse_ds.classes[0] == "coarse00" and coarse_ds.name == "cifar100-coarse"
    np.testing.assert_array_equal(coarse_ds.train_y, arrays["train"][1])
    assert cifar100.prepare_cifar100(tmp_path / "data", md5=md5(data), records=SMALL)["status"] == "cached"


def _write_tmp(tmp_path, data):
    return write(tmp_path / "src" / cifar100.ARCHIVE_NAME, data)


def test_cifar100_published_checksum_and_cut_connection(server, tmp_path):
    data, _ = cifar100_archive()
    server.files["/c100/" + cifar100.ARCHIVE_NAME] = data
    with pytest.raises(DataError, match="expected md5 03b5dce01913d631647c71ecec9e9cb8"):
        cifar100.prepare_cifar100(tmp_path, url=server.url + "/c100/", records=SMALL, progress=False)
    server.cut_next = 1
    with pytest.raises(DataError, match="resume"):
        cifar100.prepare_cifar100(tmp_path, url=server.url + "/c100/", md5=md5(data), records=SMALL, progress=False)
    assert cifar100.prepare_cifar100(tmp_path, url=server.url + "/c100/", md5=md5(data), records=SMALL, progress=False)["status"] == "downloaded"
    assert server.log[-1]["range"]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"sizes": {cifar100.MEMBERS["train"]: 3074 * 29}}, "expected 92,220"),
    ({"drop": (cifar100.NAME_MEMBERS["coarse"],)}, "lacks cifar-100-binary/coarse_label_names.txt"),
    ({"names": ["same"] * 100}, "lists 100 names \\(1 distinct\\)"),
])
def test_cifar100_damaged_archives(tmp_path, kwargs, fragment):
    data, _ = cifar100_archive(**kwargs)
    with pytest.raises(DataError, match=fragment):
        cifar100.parse_archive(_write_tmp(tmp_path, data), records=SMALL)


def test_cifar100_truncated_download(tmp_path):
    data, _ = cifar100_archive()
    with pytest.raises(DataError, match="damaged or not a tar file|ended after"):
        cifar100.parse_archive(_write_tmp(tmp_path, data[: len(data) * 2 // 3]), records=SMALL)


def test_cifar100_cli_archive_and_no_verify(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar100, "RECORDS", SMALL)  # the command reads the official counts from here
    data, _ = cifar100_archive()
    src = _write_tmp(tmp_path, data)
    result = run("download", "cifar100", "--archive", src, "--data-dir", tmp_path / "data")
    assert result.exit_code == 1 and "not the official cifar-100-binary.tar.gz" in result.stderr
    result = run("download", "cifar100", "--archive", src.parent, "--data-dir", tmp_path / "data", "--md5", md5(data))
    assert result.exit_code == 0, result.output
    assert "CIFAR-100 ready" in result.stdout and "30 training and 10 test images, 32x32 colour, 100 classes" in result.stdout
    result = run("download", "cifar100", "--archive", src, "--data-dir", tmp_path / "other", "--no-verify")
    assert result.exit_code == 0 and "Warning: checksums not verified" in result.stderr


def test_full_size_cifar100_parses_within_stated_memory(tmp_path):
    """50,000 + 10,000 records (README: the parse peaks near 2.2x the 184 MB of records).

    An uncompressed tar keeps the test quick; gzip changes nothing the parser holds in memory.
    """
    path = tmp_path / "cifar-100-binary.tar"
    with tarfile.open(path, "w") as tar:
        for split, n in cifar100.RECORDS.items():
            raw = np.zeros((n, cifar100.RECORD_BYTES), np.uint8)
            raw[:, 0] = np.arange(n) % 20
            raw[:, 1] = np.arange(n) % 100
            raw[:, 2] = np.arange(n) % 256  # red channel, pixel (0, 0)
            info = tarfile.TarInfo(cifar100.MEMBERS[split])
            info.size = raw.nbytes
            tar.addfile(info, io.BytesIO(raw.tobytes()))
        for kind, member in cifar100.NAME_MEMBERS.items():
            text = "".join(f"{kind}{i}\n" for i in range(cifar100.N_CLASSES[kind])).encode()
            info = tarfile.TarInfo(member)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    tracemalloc.start()
    try:
        ds, coarse, _ = cifar100.parse_archive(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ds.train_x.shape == (50000, 32, 32, 3) and ds.test_x.shape == (10000, 32, 32, 3)
    assert ds.train_x[777, 0, 0, 0] == 777 % 256 and ds.train_y[777] == 777 % 100 and coarse["train"][777] == 777 % 20
    assert peak < 420 * 2**20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar100"])
def test_help(name):
    result = run("download", name, "--help")
    assert result.exit_code == 0 and "Usage: mlcv download" in result.output and "--no-verify" in result.output
