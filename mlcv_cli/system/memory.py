"""What memory this machine (its cgroup, `ulimit -v`, or $MLCV_MAX_MEMORY) can still give, and
refusing a run whose estimated parts (workflow/estimates.py) would not fit, naming its largest parts.
"""

from __future__ import annotations

import os
import re

from ..errors import MlcvError

ENV = "MLCV_MAX_MEMORY"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise MlcvError(f"{ENV}: expected a size such as 4G, 512M or 1.5GB, found {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def fmt(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _meminfo_available():
    text = _read("/proc/meminfo")
    m = re.search(r"^MemAvailable:\s+(\d+) kB", text or "", re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


# (directory, limit file, usage file) of the cgroup v2 and v1 memory controllers; each has a memory.stat
_CGROUPS = (("/sys/fs/cgroup", "memory.max", "memory.current"),
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"))


def _cgroup_left():
    """Bytes left under this process's cgroup memory limit (v2 or v1), or None without one."""
    for directory, limit_file, usage_file in _CGROUPS:
        limit, usage = _read(os.path.join(directory, limit_file)), _read(os.path.join(directory, usage_file))
        if limit is None or usage is None or not limit.strip().isdigit() or not usage.strip().isdigit():
            continue
        limit, usage = int(limit), int(usage)
        if limit >= 2**60:  # "no limit" in cgroup v1
            continue
        # Page cache counts as usage but is given back on demand.
        stat = _read(os.path.join(directory, "memory.stat")) or ""
        m = re.search(r"^(?:total_)?inactive_file (\d+)", stat, re.MULTILINE)
        return max(0, limit - usage + (int(m.group(1)) if m else 0))
    return None


def _rlimit_left():
    """Bytes of address space left under `ulimit -v` (RLIMIT_AS), or None without one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    m = re.search(r"^VmSize:\s+(\d+) kB", _read("/proc/self/status") or "", re.MULTILINE)
    used = int(m.group(1)) * 1024 if m else 0
    return max(0, soft - used)


def available() -> tuple:
    """(bytes this process may still allocate, where that figure comes from)."""
    given = os.environ.get(ENV)
    if given:
        return parse_size(given), f"{ENV}={given}"
    found = [(n, what) for n, what in ((_meminfo_available(), "MemAvailable in /proc/meminfo"), (_cgroup_left(), "under the cgroup memory limit"),
                                       (_rlimit_left(), "under `ulimit -v`")) if n is not None]
    return min(found) if found else (None, "unknown")


def check(parts, what="this run"):
    """Refuse when the parts [(description, bytes, fix)] add up to more than is available."""
    need = sum(p[1] for p in parts)
    free, source = available()
    if free is None or need <= free:
        return
    largest = sorted(parts, key=lambda p: -p[1])
    shown = "; ".join(f"{desc}: {fmt(n)}" for desc, n, _ in largest[:3] if n)
    fixes = []
    for _, n, fix in largest:
        for piece in fix.split(" or "):
            if piece not in fixes and n >= need / 10:
                fixes.append(piece)
    raise MlcvError(
        f"{what} needs about {fmt(need)} of memory ({shown}) but only {fmt(free)} is available ({source}); "
        f"use {_either(fixes[:4])} (or set {ENV}=SIZE to allow more)"
    )


def _either(items):
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"

