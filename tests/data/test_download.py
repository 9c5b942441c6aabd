"""data/download.py's fetch over a local HTTP server (resume, checksums, faults), and CIFAR-10 fetched that way."""

import errno
import hashlib
import io
import socket

import numpy as np
import pytest

from mlcv_cli.data import download
from mlcv_cli.data import load_cifar10, prepare_cifar10
from mlcv_cli.data.download import fetch
from mlcv_cli.errors import DataError

RECORDS = 20


@pytest.fixture
def small_archive(archive_bytes):
    """The bytes of a small archive in the official CIFAR-10 layout (RECORDS records per batch)."""
    return archive_bytes(records=RECORDS)


def md5(data):
    return hashlib.md5(data).hexdigest()


def payload(n=300_000):
    return np.random.default_rng(3).integers(0, 256, n, dtype=np.uint8).tobytes()


def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/file.bin"


# fetch ---------------------------------------------------------------------------------------


def test_fetch_and_verify(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    dest = tmp_path / "sub" / "f.bin"
    assert fetch(server.url + "/f.bin", dest, md5(data), progress=False) == str(dest)
    assert dest.read_bytes() == data
    assert not (tmp_path / "sub" / "f.bin.part").exists()


def test_resume_after_cut_connection(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.cut_next = 1
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match="stopped after .* bytes.*again to resume"):
        fetch(server.url + "/f.bin", dest, md5(data), progress=False)
    assert not dest.exists()
    part = tmp_path / "f.bin.part"
    assert 0 < part.stat().st_size < len(data)
    offset = part.stat().st_size
    fetch(server.url + "/f.bin", dest, md5(data), progress=False)
    assert dest.read_bytes() == data
    assert server.log[-1]["range"] == f"bytes={offset}-"


def test_resume_existing_part(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data[:1234])
    fetch(server.url + "/f.bin", tmp_path / "f.bin", md5(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [entry["range"] for entry in server.log] == ["bytes=1234-"]


def test_server_ignoring_range_restarts(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from something else")
    fetch(server.url + "/f.bin", tmp_path / "f.bin", md5(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_complete_part_gets_416(server, tmp_path):
    data = payload(1000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    fetch(server.url + "/f.bin", tmp_path / "f.bin", md5(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert len(server.log) == 1


def test_oversized_part_restarts_after_416(server, tmp_path):
    data = payload(1000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data + b"extra junk")
    fetch(server.url + "/f.bin", tmp_path / "f.bin", md5(data), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [entry["range"] for entry in server.log] == ["bytes=1010-", None]


def test_no_resume_starts_over(server, tmp_path):
    data = payload(1000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"junk")
    fetch(server.url + "/f.bin", tmp_path / "f.bin", md5(data), progress=False, resume=False)
    assert server.log[0]["range"] is None and (tmp_path / "f.bin").read_bytes() == data


def test_checksum_mismatch(server, tmp_path):
    server.files["/f.bin"] = payload(1000)
    with pytest.raises(DataError, match=r"expected md5 0{32}, found [0-9a-f]{32}.*--force.*--md5.*URL"):
        fetch(server.url + "/f.bin", tmp_path / "f.bin", "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error(server, tmp_path):
    with pytest.raises(DataError, match=r"/missing.bin: HTTP 404"):
        fetch(server.url + "/missing.bin", tmp_path / "f.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable(tmp_path):
    url = closed_port_url()
    with pytest.raises(DataError, match=f"could not download {url}"):
        fetch(url, tmp_path / "f.bin", progress=False, timeout=5)
    assert not (tmp_path / "f.bin").exists()


def test_timeout(server, tmp_path):
    server.files["/slow.bin"] = b"x"
    server.delay = 1.0
    with pytest.raises(DataError, match="timed out"):
        fetch(server.url + "/slow.bin", tmp_path / "f.bin", progress=False, timeout=0.2)
    assert not (tmp_path / "f.bin").exists()


def test_bad_scheme(tmp_path):
    with pytest.raises(DataError, match="scheme"):
        fetch("gopher://example.com/x", tmp_path / "f.bin", progress=False)


def test_disk_full(server, tmp_path, monkeypatch):
    server.files["/f.bin"] = payload()

    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "open", lambda *a, **k: Full(), raising=False)
    with pytest.raises(DataError, match="No space left.*free some disk space"):
        fetch(server.url + "/f.bin", tmp_path / "f.bin", progress=False)
    assert not (tmp_path / "f.bin").exists()


def test_progress_bar_on_stderr(server, tmp_path, capsys):
    server.files["/f.bin"] = payload(5000)
    fetch(server.url + "/f.bin", tmp_path / "f.bin", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "f.bin" in captured.err


# CIFAR-10 over HTTP -----------------------------------------------------------------------------


def test_cifar_download_then_cached(server, tmp_path, small_archive):
    archive = small_archive
    server.files["/cifar.tar.gz"] = archive
    data_dir = tmp_path / "data"
    kwargs = dict(url=server.url + "/cifar.tar.gz", md5=md5(archive), progress=False, records_per_batch=RECORDS)
    result = prepare_cifar10(data_dir, **kwargs)
    assert result["status"] == "downloaded" and result["path"] == str(data_dir / "cifar10")
    assert (data_dir / "cifar10" / "manifest.json").is_file()
    ds = load_cifar10(data_dir)
    assert ds.train_x.shape == (5 * RECORDS, 32, 32, 3) and ds.test_y.shape == (RECORDS,)
    assert prepare_cifar10(data_dir, **kwargs)["status"] == "cached"
    assert len(server.log) == 1


def test_cifar_resume_after_cut(server, tmp_path, small_archive):
    archive = small_archive
    server.files["/cifar.tar.gz"] = archive
    server.cut_next = 1
    kwargs = dict(url=server.url + "/cifar.tar.gz", md5=md5(archive), progress=False, records_per_batch=RECORDS)
    with pytest.raises(DataError, match="resume"):
        prepare_cifar10(tmp_path, **kwargs)
    assert not (tmp_path / "cifar10").exists()
    assert prepare_cifar10(tmp_path, **kwargs)["status"] == "downloaded"
    assert server.log[-1]["range"] is not None and server.log[-1]["range"].startswith("bytes=")
    assert load_cifar10(tmp_path).train_y.shape == (5 * RECORDS,)


def test_cifar_checksum_mismatch_writes_nothing(server, tmp_path, small_archive):
    server.files["/cifar.tar.gz"] = small_archive
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare_cifar10(tmp_path, url=server.url + "/cifar.tar.gz", progress=False, records_per_batch=RECORDS)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="mlcv download cifar10"):
        load_cifar10(tmp_path)


def test_cifar_unreachable(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        prepare_cifar10(tmp_path, url=closed_port_url(), progress=False)
    assert not (tmp_path / "cifar10").exists()


def test_cifar_reuses_verified_archive(server, tmp_path, small_archive):
    import shutil

    archive = small_archive
    server.files["/cifar.tar.gz"] = archive
    kwargs = dict(url=server.url + "/cifar.tar.gz", md5=md5(archive), progress=False, records_per_batch=RECORDS)
    prepare_cifar10(tmp_path, **kwargs)
    shutil.rmtree(tmp_path / "cifar10")
    assert prepare_cifar10(tmp_path, **kwargs)["status"] == "imported"
    assert len(server.log) == 1  # no second download
    assert prepare_cifar10(tmp_path, force=True, **kwargs)["status"] == "downloaded"
    assert len(server.log) == 2
