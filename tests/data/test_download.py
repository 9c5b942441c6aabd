import errno
import hashlib
import io
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mlcv_cli.data import download
from mlcv_cli.data import load_cifar10, prepare_cifar10
from mlcv_cli.data.cifar10 import FOLDER, encode_batch
from mlcv_cli.data.download import fetch
from mlcv_cli.errors import DataError

RECORDS = 20


class Handler(BaseHTTPRequestHandler):
    """Serves server.files; honours Range unless server.ignore_range; can cut or delay replies."""

    def do_GET(self):
        srv = self.server
        srv.log.append({"path": self.path, "range": self.headers.get("Range")})
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        if srv.delay:
            time.sleep(srv.delay)
        start = 0
        requested = self.headers.get("Range")
        if requested and not srv.ignore_range:
            start = int(requested.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_next:
            srv.cut_next -= 1
            body = body[: len(body) // 2]  # the connection closes with the body half sent
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early (timeout and cut tests) are expected


@pytest.fixture
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.files, srv.log, srv.ignore_range, srv.cut_next, srv.delay = {}, [], False, 0, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def small_archive(records=RECORDS, seed=0):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)] + [f"{FOLDER}/test_batch.bin"]
        for name in names:
            images = rng.integers(0, 256, (records, 32, 32, 3), dtype=np.uint8)
            data = encode_batch(images, rng.integers(0, 10, records))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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


def test_cifar_download_then_cached(server, tmp_path):
    archive = small_archive()
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


def test_cifar_resume_after_cut(server, tmp_path):
    archive = small_archive()
    server.files["/cifar.tar.gz"] = archive
    server.cut_next = 1
    kwargs = dict(url=server.url + "/cifar.tar.gz", md5=md5(archive), progress=False, records_per_batch=RECORDS)
    with pytest.raises(DataError, match="resume"):
        prepare_cifar10(tmp_path, **kwargs)
    assert not (tmp_path / "cifar10").exists()
    assert prepare_cifar10(tmp_path, **kwargs)["status"] == "downloaded"
    assert server.log[-1]["range"] is not None and server.log[-1]["range"].startswith("bytes=")
    assert load_cifar10(tmp_path).train_y.shape == (5 * RECORDS,)


def test_cifar_checksum_mismatch_writes_nothing(server, tmp_path):
    server.files["/cifar.tar.gz"] = small_archive()
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare_cifar10(tmp_path, url=server.url + "/cifar.tar.gz", progress=False, records_per_batch=RECORDS)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="mlcv download cifar10"):
        load_cifar10(tmp_path)


def test_cifar_unreachable(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        prepare_cifar10(tmp_path, url=closed_port_url(), progress=False)
    assert not (tmp_path / "cifar10").exists()


def test_cifar_reuses_verified_archive(server, tmp_path):
    import shutil

    archive = small_archive()
    server.files["/cifar.tar.gz"] = archive
    kwargs = dict(url=server.url + "/cifar.tar.gz", md5=md5(archive), progress=False, records_per_batch=RECORDS)
    prepare_cifar10(tmp_path, **kwargs)
    shutil.rmtree(tmp_path / "cifar10")
    assert prepare_cifar10(tmp_path, **kwargs)["status"] == "imported"
    assert len(server.log) == 1  # no second download
    assert prepare_cifar10(tmp_path, force=True, **kwargs)["status"] == "downloaded"
    assert len(server.log) == 2
