"""Reaching a Dask cluster without hanging: what answers at the address, whether the scheduler
has workers, whether they can run mlcv. Each failure is one line; every wait is bounded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import socket
import time
from importlib.metadata import PackageNotFoundError, version

from ..errors import MlcvError, UsageError

DEFAULT_TIMEOUT = 30.0
# What a Dask scheduler says first on a new connection: its handshake names these fields.
_DASK_GREETING = b"pickle-protocol"
_USUAL_PORT = "the scheduler's port is usually 8786; the dashboard's (8787) is not it"


def check_address(address: str):
    """tcp://HOST:PORT or HOST:PORT -> (host, port), local -> None; other schemes are refused with the reason."""
    if address == "local":
        return None
    m = re.fullmatch(r"(?:([A-Za-z][A-Za-z0-9+.-]*)://)?(\[[^\]]+\]|[^/:\s\[\]]+):(\d{1,5})", address)
    if not m:
        raise UsageError(f"--dask-scheduler: expected tcp://HOST:PORT, HOST:PORT or local, found {address!r}")
    scheme = (m.group(1) or "tcp").lower()
    if scheme in ("http", "https"):
        raise UsageError(f"--dask-scheduler: {address!r} is a web address (the dashboard?); give the scheduler as tcp://HOST:PORT ({_USUAL_PORT})")
    if scheme != "tcp":
        raise UsageError(
            f"--dask-scheduler: the {scheme}:// scheme is not supported (mlcv connects over tcp:// without TLS settings); "
            "give tcp://HOST:PORT, e.g. through an SSH tunnel"
        )
    if not 0 < int(m.group(3)) < 65536:
        raise UsageError(f"--dask-scheduler: port {m.group(3)} is not a TCP port (1-65535)")
    return m.group(2).strip("[]"), int(m.group(3))  # an IPv6 host is written in brackets


def probe_scheduler(address: str, timeout: float):
    """Connect and read the greeting a Dask scheduler sends unasked. A dashboard (HTTP) port
    waits for a request and would hang the Dask client; another server's bytes would be read as
    Dask frame sizes (gigabytes)."""
    greeting = b""
    try:
        with socket.create_connection(check_address(address), timeout=timeout) as sock:
            sock.settimeout(timeout)
            deadline = time.monotonic() + timeout
            while _DASK_GREETING not in greeting and len(greeting) < 4096 and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                greeting += chunk
    except socket.timeout:
        if not greeting:
            raise MlcvError(
                f"{address} accepted the connection but said nothing in {timeout:g} s: not a Dask scheduler ({_USUAL_PORT}); "
                "check the address (--dask-timeout sets the wait)"
            ) from None
    except OSError as exc:
        raise MlcvError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}); "
                        "check the address or use --dask-scheduler local") from None
    if _DASK_GREETING not in greeting:
        raise MlcvError(f"{address} is not a Dask scheduler (it answered {greeting[:40]!r}); check the address ({_USUAL_PORT})")


def check_workers(client, address: str, timeout: float):
    """At least one worker within ``timeout``, and every worker able to import this mlcv."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise MlcvError(
            f"the Dask scheduler at {address} has no workers (waited {timeout:g} s); start some with "
            f"`dask worker {address}`, or raise --dask-timeout"
        ) from None

    try:
        ours = version("mlcv")
    except PackageNotFoundError:
        ours = "unknown"

    def mlcv_on_worker():
        # A nested function travels by value: it runs even where mlcv cannot be imported.

        try:
            if importlib.util.find_spec("mlcv_cli") is None:
                return None
        except ImportError:
            return None
        try:
            return importlib.metadata.version("mlcv")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    found = client.run(mlcv_on_worker, on_error="return")  # a worker where even this fails is one without mlcv
    missing = sorted(w for w, v in found.items() if v is None or isinstance(v, BaseException))
    if missing:
        raise MlcvError(
            f"{len(missing)} of {len(found)} Dask workers cannot import mlcv ({', '.join(missing[:3])}); "
            f"install mlcv {ours} where the workers run (pip install 'mlcv[dask]')"
        )
    other = sorted({v for v in found.values() if v != ours and isinstance(v, str)})
    if other:
        raise MlcvError(
            f"Dask workers run mlcv {', '.join(other)} but this is mlcv {ours}: results could differ; "
            f"install mlcv {ours} on the workers"
        )


class WorkerWatch:
    """Notices a cluster that has had no workers for ``timeout`` seconds (its jobs would wait forever)."""

    def __init__(self, client, timeout: float, every: float = 1.0):
        self.client, self.timeout, self.every = client, timeout, every
        self.last_check = 0.0
        self.empty_since = None

    def gone_for(self):
        """Seconds without workers past the timeout, else None."""
        now = time.monotonic()
        if now - self.last_check < self.every:
            return None
        self.last_check = now
        try:
            workers = self.client.scheduler_info().get("workers", {})
        except Exception:  # noqa: BLE001 - a scheduler that cannot answer is handled by its futures
            return None
        if workers:
            self.empty_since = None
            return None
        self.empty_since = self.empty_since or now
        return now - self.empty_since if now - self.empty_since >= self.timeout else None
