"""`mlcv cv --dask-scheduler` against what is not a working cluster: a scheduler without workers,
a dashboard or another server at the address, other schemes, workers that cannot import mlcv,
workers that all go away mid-run. Each is one line, bounded by --dask-timeout, jobs kept."""

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import clean_env, memory_error_in_cv_job, mlcv, sets, wait_for
from mlcv_cli import config
from mlcv_cli.workflow import cv as crossval
from mlcv_cli.workflow.cv import jobs as cv_jobs
from mlcv_cli.errors import MlcvError

pytest.importorskip("distributed")

DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
TIMEOUT = "2"


def _spawn(args, cwd, log):
    return subprocess.Popen(args, cwd=cwd, env=clean_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(predicate, what):
    return wait_for(predicate, what, timeout=60)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """(address, directory) of a real `dask scheduler` that starts with no workers."""
    if DASK is None:
        pytest.fail("the dask command is missing although distributed is installed")
    d = tmp_path_factory.mktemp("sched")
    sched_file = d / "scheduler.json"
    proc = _spawn([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                  d, d / "scheduler.log")
    try:
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size, "the scheduler")
        yield json.loads(sched_file.read_text())["address"], d
    finally:
        proc.kill()
        proc.wait()


def _worker(address, d, name, *extra):
    proc = _spawn([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name, *extra],
                  d, d / f"{name}.log")
    from distributed import Client

    with Client(address, timeout=30) as client:
        _wait(lambda: any(w.get("name") == name for w in client.scheduler_info()["workers"].values()), f"worker {name}")
    return proc


def _cv(tiny, *args):
    return mlcv("cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", *sets(*tiny), *args, "--dask-timeout", TIMEOUT)


def _error_line(result, code):
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    return line


@pytest.fixture
def listener():
    """Start a TCP server on 127.0.0.1 in a thread; returns its port. ``kind``: 'http' (waits for
    a request, as a dashboard does) or 'chatty' (greets with bytes of its own)."""
    servers = []

    def start(kind):
        if kind == "http":
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server.shutdown)
            return server.server_address[1]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()

        def serve():
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" + b"\xff" * 64)

        threading.Thread(target=serve, daemon=True).start()
        servers.append(sock.close)
        return sock.getsockname()[1]

    yield start
    for stop in servers:
        stop()


def test_what_answers_at_the_address_is_checked(in_tmp, tiny, listener):
    # Before: the dashboard's HTTP port hung forever; another server's greeting was read as Dask
    # frame sizes (a MemoryError); other schemes gave tracebacks.
    line = _error_line(_cv(tiny, "--dask-scheduler", f"tcp://127.0.0.1:{listener('http')}"), 1)
    assert "said nothing in 2 s: not a Dask scheduler" in line and "8786" in line
    line = _error_line(_cv(tiny, "--dask-scheduler", f"127.0.0.1:{listener('chatty')}"), 1)
    assert "is not a Dask scheduler (it answered b'SSH-2.0" in line
    line = _error_line(_cv(tiny, "--dask-scheduler", "http://127.0.0.1:8787"), 2)
    assert "web address (the dashboard?)" in line
    for scheme in ("ws", "tls", "ucx", "inproc"):
        assert f"the {scheme}:// scheme is not supported" in _error_line(_cv(tiny, "--dask-scheduler", f"{scheme}://127.0.0.1:8786"), 2)
    assert "not a TCP port" in _error_line(_cv(tiny, "--dask-scheduler", "tcp://127.0.0.1:99999"), 2)
    assert not (in_tmp / "runs").exists()


def test_scheduler_problems_on_resume_keep_the_finished_jobs(in_tmp, tiny, scheduler, monkeypatch):
    address, d = scheduler
    # A run with one finished job, stopped by a MemoryError in its second.
    cfg = config.resolve(None, tiny, model_type="knn", extra={"cv.folds": 2, "cv.grid": {"preprocess.subtract_mean": [True, False]}})
    real = memory_error_in_cv_job(monkeypatch, 2)
    with pytest.raises(MlcvError) as err:
        crossval.cross_validate(cfg)
    monkeypatch.setattr(cv_jobs, "run_job", real)
    run = in_tmp / err.value.run_dir
    journal = (run / crossval.JOBS_FILE).read_text()

    # Before: "No valid workers found" as a traceback after a fixed wait.
    t0 = time.monotonic()
    result = mlcv("cv", "--resume", run, "--dask-scheduler", address, "--dask-timeout", TIMEOUT)
    line = _error_line(result, 1)
    assert time.monotonic() - t0 < 30
    assert f"the Dask scheduler at {address} has no workers (waited 2 s)" in line
    assert f"mlcv cv --resume {run}" in line
    assert (run / crossval.JOBS_FILE).read_text() == journal

    # A worker that cannot import mlcv (another environment): named, nothing sent to it.
    blocker = d / "no_mlcv.py"
    blocker.write_text(
        "import sys\n"
        "class NoMlcv:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'mlcv_cli':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoMlcv())\n"
    )
    worker = _worker(address, d, "bare", "--preload", str(blocker))
    try:
        line = _error_line(mlcv("cv", "--resume", run, "--dask-scheduler", address, "--dask-timeout", TIMEOUT), 1)
        assert "1 of 1 Dask workers cannot import mlcv" in line and f"mlcv cv --resume {run}" in line
        assert (run / crossval.JOBS_FILE).read_text() == journal
    finally:
        worker.kill()
        worker.wait()


def test_workers_that_all_go_away_end_the_run(in_tmp, tiny, scheduler):
    address, d = scheduler
    worker = _worker(address, d, "only")
    runs = in_tmp / "runs"
    killer = threading.Thread(target=lambda: (_wait(lambda: list(runs.glob("*/jobs.jsonl")), "a finished job"), worker.kill()),
                              daemon=True)
    killer.start()
    try:
        # Long jobs: many k values over many grid points would keep the one worker busy.
        result = mlcv("cv", "--model", "softmax", "--folds", "3", *sets(*tiny), "--set", "train.epochs=300",
                      "--grid", "train.lr=1e-4,1e-3,1e-2,1e-1", "--dask-scheduler", address, "--dask-timeout", TIMEOUT)
    finally:
        worker.kill()
        worker.wait()
    line = _error_line(result, 1)
    # The scattered images died with the last worker: the scheduler cancels the jobs at once.
    assert "lost the Dask cluster" in line and "mlcv cv --resume" in line, line
    print(line)
    [run] = runs.iterdir()
    assert (run / crossval.JOBS_FILE).read_text().count("\n") >= 1
