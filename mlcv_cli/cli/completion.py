"""Shell completion (click's mechanism) for the values click cannot guess: run directories,
config files and the keys of `mlcv runs --sort/--filter`.

Enable it with `eval "$(_MLCV_COMPLETE=bash_source mlcv)"` (zsh_source, fish_source).
Each function is called while the user presses Tab, so it reads directory listings only.
"""

from __future__ import annotations

import os
from pathlib import Path

from click.shell_completion import CompletionItem

from ..config import KEYS
from ..runs.listing import COLUMNS

_RUN_FILES = ("meta.json", "config.yaml", "metrics.json")
_LIMIT = 500  # more candidates than this help nobody; the shell would ask "show all?"


def _subdirs(parent: Path, prefix: str):
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for e in entries:
        if e.name.startswith(prefix) and not (e.name.startswith(".") and not prefix.startswith(".")):
            try:
                if e.is_dir():
                    out.append(e)
            except OSError:
                continue
    return out


def _is_run(path) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in _RUN_FILES)


def complete_run_dirs(ctx, param, incomplete):
    """Run directories under the typed path, and under runs/ (output.dir's default) when none is typed."""
    head, tail = os.path.split(incomplete)
    parents = [head] if head else ["", "runs"]
    items = []
    for h in parents:
        for e in _subdirs(Path(h or "."), tail if h == head else ""):
            path = os.path.join(h, e.name) if h else e.name
            if path.startswith(incomplete) and _is_run(e.path):
                items.append(CompletionItem(path))
            if len(items) >= _LIMIT:
                return items
    # Nothing that looks like a run here: let the shell complete directories as usual.
    return items or [CompletionItem(incomplete, type="dir")]


def complete_directories(ctx, param, incomplete):
    return [CompletionItem(incomplete, type="dir")]


def complete_config_files(ctx, param, incomplete):
    """YAML files under the typed directory, and the shipped configs/ when nothing is typed."""
    head, tail = os.path.split(incomplete)
    parents = [head] if head else ["", "configs"]
    found = []
    for h in parents:
        parent = Path(h or ".")
        try:
            entries = sorted(os.scandir(parent), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            path = os.path.join(h, e.name) if h else e.name
            if not path.startswith(incomplete) and not e.name.startswith(tail):
                continue
            try:
                if e.is_file() and e.name.endswith((".yaml", ".yml")):
                    found.append(CompletionItem(path))
            except OSError:
                continue
    return found or [CompletionItem(incomplete, type="file")]


def complete_runs_keys(ctx, param, incomplete):
    """Columns and dotted config keys, for --sort and the KEY of --filter KEY=VALUE."""

    return [CompletionItem(k) for k in (*COLUMNS, *KEYS) if k.startswith(incomplete)]
