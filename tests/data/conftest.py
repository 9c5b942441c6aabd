"""Builders for small datasets in the official CIFAR-10 binary layout and image folders, and a local
HTTP server to download them from."""

import io
import struct
import tarfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mlcv_cli.data.cifar10 import FOLDER, encode_batch

RECORDS = 20


def cifar_batches(records=RECORDS, seed=0):
    """{member name: (images, labels)} for 5 train batches and 1 test batch."""
    rng = np.random.default_rng(seed)
    names = [f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)] + [f"{FOLDER}/test_batch.bin"]
    return {
        name: (rng.integers(0, 256, (records, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, records))
        for name in names
    }


def add_bytes(tar, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def write_cifar_archive(path, batches, extra=None, sizes=None):
    """Write a .tar.gz like cifar-10-binary.tar.gz to ``path`` (or a binary file object); ``extra(tar)``
    may add hostile members first."""
    where = {"fileobj": path} if hasattr(path, "write") else {"name": path}
    with tarfile.open(mode="w:gz", **where) as tar:
        if extra is not None:
            extra(tar)
        add_bytes(tar, f"{FOLDER}/batches.meta.txt", b"airplane\nautomobile\n")
        for name, (images, labels) in batches.items():
            data = encode_batch(images, labels)
            if sizes and name in sizes:
                data = data[: sizes[name]]
            add_bytes(tar, name, data)
    return path


@pytest.fixture
def cifar_archive(tmp_path):
    """(path, batches) of a valid small archive with RECORDS records per batch."""
    batches = cifar_batches()
    path = write_cifar_archive(tmp_path / "cifar-small.tar.gz", batches)
    return path, batches


@pytest.fixture
def make_archive(tmp_path):
    """make_archive(name, records=RECORDS, extra=None, sizes=None, batches=None) -> (path, batches)."""

    def make(name="cifar.tar.gz", records=RECORDS, extra=None, sizes=None, batches=None):
        batches = batches if batches is not None else cifar_batches(records)
        return write_cifar_archive(tmp_path / name, batches, extra=extra, sizes=sizes), batches

    return make


@pytest.fixture
def archive_bytes():
    """archive_bytes(records=RECORDS) -> the bytes of a valid small archive, made in memory (nothing in tmp_path)."""

    def make(records=RECORDS):
        buf = io.BytesIO()
        write_cifar_archive(buf, cifar_batches(records))
        return buf.getvalue()

    return make


@pytest.fixture
def add_member():
    """add_member(tar, name, data=b"...", **TarInfo attributes)."""
    return add_bytes


@pytest.fixture
def png_header_only():
    """png_header_only(width, height) -> bytes of a PNG whose header claims that size but holds ~no data."""

    def make(width, height):
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        idat = zlib.compress(b"\0" * 16)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")

    return make


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
    """A ThreadingHTTPServer on 127.0.0.1 serving ``server.files`` {path: bytes} at ``server.url``;
    ``server.log`` records each request's path and Range; ``ignore_range``, ``cut_next`` (replies
    to cut in half) and ``delay`` (seconds) make it misbehave."""
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.files, srv.log, srv.ignore_range, srv.cut_next, srv.delay = {}, [], False, 0, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)
