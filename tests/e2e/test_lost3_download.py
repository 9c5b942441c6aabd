"""Nothing lost, round 3: downloads that never end. A real HTTP server on 127.0.0.1, started and
stopped by each test, trickles, stalls or sends without end; mlcv gives up in bounded time and
space, and keeps every byte that arrived for the resume. The rate windows are scaled down to
a second through the environment (MLCV_DOWNLOAD_WINDOW, MLCV_DOWNLOAD_MIN_RATE)."""

import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers import MLCV

from mlcv_cli.data import download
from mlcv_cli.data.download import fetch
from mlcv_cli.errors import DataError


class Handler(BaseHTTPRequestHandler):
    """GET /MODE/NAME serves server.data in the way MODE says: whole, trickle, stall, endless,
    endless-chunked or lie (a Content-Length far above the data). Range requests are honoured."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        srv = self.server
        mode = self.path.strip("/").split("/")[0]
        srv.log.append({"path": self.path, "range": self.headers.get("Range")})
        data, start = srv.data, 0
        requested = self.headers.get("Range")
        if requested and mode == "whole":
            start = int(requested.split("=")[1].split("-")[0])
        body = data[start:]
        try:
            if mode in ("endless", "endless-chunked"):
                self._endless(chunked=mode == "endless-chunked")
                return
            if mode == "slow-headers":  # a header a byte at a time, every 0.2 s, without end
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                for _ in range(1000):
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.2)
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body) if mode != "lie" else 50 << 30))
            self.end_headers()
            if mode == "trickle":  # 10 bytes every 0.2 s: never a read timeout, never an end
                for i in range(0, len(body), 10):
                    self.wfile.write(body[i:i + 10])
                    self.wfile.flush()
                    time.sleep(0.2)
            elif mode == "stall":  # 1,000 bytes, then nothing
                self.wfile.write(body[:1000])
                self.wfile.flush()
                srv.release.wait(30)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _endless(self, chunked):
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")  # no Content-Length: the body ends when the connection does
        self.end_headers()
        block = b"\0" * (256 << 10)
        for _ in range(1 << 16):  # 16 GB at most, should the client never stop
            if chunked:
                self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            else:
                self.wfile.write(block)
            self.server.sent += len(block)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.data = np.random.default_rng(5).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    srv.log, srv.sent, srv.release = [], 0, threading.Event()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def fast_windows(monkeypatch):
    monkeypatch.setenv("MLCV_DOWNLOAD_WINDOW", "1")
    monkeypatch.setenv("MLCV_DOWNLOAD_MIN_RATE", "1000")


def test_a_trickling_server_is_given_up_and_what_arrived_is_resumed(server, tmp_path, fast_windows):
    dest = tmp_path / "f.bin"
    t0 = time.monotonic()
    with pytest.raises(DataError, match="too slow") as err:
        fetch(server.url + "/trickle/f.bin", dest, progress=False)
    assert time.monotonic() - t0 < 10
    kept = (tmp_path / "f.bin.part").read_bytes()
    assert len(kept) > 0 and f"stopped after {len(kept):,} bytes" in str(err.value)
    assert kept == server.data[: len(kept)]
    fetch(server.url + "/whole/f.bin", dest, progress=False)
    assert dest.read_bytes() == server.data
    assert server.log[-1]["range"] == f"bytes={len(kept)}-"


def test_a_server_that_stalls_keeps_the_bytes_it_sent(server, tmp_path, fast_windows):
    dest = tmp_path / "f.bin"
    t0 = time.monotonic()
    with pytest.raises(DataError, match="stopped after 1,000 bytes"):
        fetch(server.url + "/stall/f.bin", dest, progress=False)
    assert time.monotonic() - t0 < 10
    assert (tmp_path / "f.bin.part").read_bytes() == server.data[:1000]
    fetch(server.url + "/whole/f.bin", dest, progress=False)
    assert dest.read_bytes() == server.data
    assert server.log[-1]["range"] == "bytes=1000-"


def test_a_server_trickling_its_headers_is_given_up(server, tmp_path, fast_windows):
    t0 = time.monotonic()
    with pytest.raises(DataError, match="no complete reply within 1 s"):
        fetch(server.url + "/slow-headers/f.bin", tmp_path / "f.bin", progress=False)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("mode", ["endless", "endless-chunked"])
def test_an_endless_body_is_capped_and_nothing_is_kept(server, tmp_path, mode):
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match="more than the 3,000,000 bytes"):
        fetch(server.url + f"/{mode}/f.bin", dest, progress=False, max_bytes=3_000_000)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()


def test_a_length_beyond_the_cap_is_refused_before_anything_is_written(server, tmp_path):
    with pytest.raises(DataError, match="offers 53,687,091,200 bytes"):
        fetch(server.url + "/lie/f.bin", tmp_path / "f.bin", progress=False, max_bytes=1_000_000)
    assert list(tmp_path.iterdir()) == []


def test_a_part_longer_than_the_file_can_be_starts_over(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"x" * 300_000)
    fetch(server.url + "/whole/f.bin", tmp_path / "f.bin", progress=False, max_bytes=250_000)
    assert (tmp_path / "f.bin").read_bytes() == server.data
    assert server.log[-1]["range"] is None


def test_known_files_are_capped_near_their_size():
    assert download.known_file_limit(1_000_000, official=True) < 1_100_000
    assert download.known_file_limit(1_000_000, official=False) > 4_000_000


def _du(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("mode", ["endless", "endless-chunked"])
def test_mlcv_download_from_an_endless_server_stops_near_the_file_size(server, tmp_path, mode):
    """The real command: MNIST's first file is 9.9 MB, so an endless body stops there, not at 17 GB."""
    data_dir = tmp_path / "data"
    proc = subprocess.run([*MLCV, "download", "mnist", "--url", f"{server.url}/{mode}/", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "sent more than the" in proc.stderr and "check the URL" in proc.stderr
    assert server.sent < 200 << 20
    assert _du(tmp_path) == 0  # nothing half-written is left that could look complete


def test_mlcv_download_from_a_trickling_server_ends_and_resumes(server, tmp_path):
    data_dir = tmp_path / "data"
    env = {**os.environ, "MLCV_DOWNLOAD_WINDOW": "1", "MLCV_DOWNLOAD_MIN_RATE": "1000"}
    t0 = time.monotonic()
    proc = subprocess.run([*MLCV, "download", "mnist", "--url", f"{server.url}/trickle/", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1 and "too slow" in proc.stderr and "resume" in proc.stderr, proc.stderr
    (part,) = data_dir.rglob("*.part")
    assert 0 < part.stat().st_size == len(part.read_bytes()) and part.read_bytes() == server.data[: part.stat().st_size]
