"""locks.py with real processes: a holder is named, waited for, and released by the kernel when killed."""

import signal
import subprocess
import sys

import pytest

from mlcv_cli.system import locks

HOLDER = """
import sys, time
from mlcv_cli.system import locks
with locks.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_names_the_holder_and_the_kernel_releases_a_killed_holder(tmp_path):
    path = tmp_path / "x.lock"
    proc = _holder(path)
    try:
        assert locks.is_locked(path)
        with pytest.raises(locks.LockBusy) as info:
            with locks.hold(path, wait=False):
                pass
        assert info.value.pid == proc.pid and str(proc.pid) in str(info.value)
        with pytest.raises(locks.LockBusy):
            with locks.hold(path, timeout=0.2):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not locks.is_locked(path)
    with locks.hold(path, wait=False):
        assert locks.is_locked(path)
        with locks.hold(path, wait=False):  # re-entrant in one process
            pass
        assert locks.is_locked(path)
    assert not path.exists()  # an exclusive holder leaves no lock file behind


def test_a_waiter_gets_the_lock_when_the_holder_lets_go(tmp_path):
    path = tmp_path / "x.lock"
    proc = _holder(path)
    waited = []

    def on_wait(pid):
        waited.append(pid)
        proc.send_signal(signal.SIGTERM)  # the holder ends while we wait

    try:
        with locks.hold(path, on_wait=on_wait, timeout=60):
            assert locks.holder_pid(path) is not None
    finally:
        proc.kill()
        proc.wait()
    assert waited == [proc.pid]
