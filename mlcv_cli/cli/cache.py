"""`mlcv cache`: what the feature cache holds on disk, and clearing or capping it (the work is in
workflow/disk.py, the tables in tables.py)."""

from __future__ import annotations

import re

import click

from ..workflow import disk
from . import render
from .common import CONTEXT, confirm, data_dir_option
from .text import human_bytes

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ByteSize(click.ParamType):
    """A size such as 2G, 500M, 1.5GiB or 0 (K, M, G, T: powers of 1024; a plain number: bytes)."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(value))
        if not found:
            self.fail(f"expected a size such as 2G, 500M or 0, found {value!r}", param, ctx)
        return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


class _CacheGroup(click.Group):
    """`mlcv cache [OPTIONS]` is short for `mlcv cache list ...`."""

    def parse_args(self, ctx, args):
        if (not args and not ctx.resilient_parsing) or (args and args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("cache", cls=_CacheGroup, context_settings=CONTEXT)
def cache():
    """See and trim the feature cache (DATA_DIR/features): `mlcv cache` lists it.

    \b
    Fitted feature chains and encoded features are kept there so the next run reads them
    instead of computing them (1.3 GB per 50,000 CIFAR-10 images at 1,600 centroids), with
    the work in progress of interrupted runs. Last use is a hit's time (the entry's
    modification time). Entries that a running process holds are never removed.

    \b
    Examples:
      mlcv cache
      mlcv cache prune --max-size 2G --dry-run
      mlcv cache clear --yes
    """


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Say what would be removed, and remove nothing.")


@cache.command("list", context_settings=CONTEXT)
@data_dir_option
@json_option
def list_cache(data_dir, as_json):
    """List the cache's entries, least recently used first, with their sizes and the total.

    \b
    Kinds: features (encoded images, rows x dimensions), chain (a fitted feature chain),
    steps and part (the fitted extractors and the encoded chunks an interrupted run kept for
    --resume), incomplete (a file a killed writer left). [in use]: a running process holds it.
    """
    render.show("cache", disk.cache_usage_report(data_dir), render.output_format(as_json))


@cache.command("prune", context_settings=CONTEXT)
@click.option("--max-size", "max_bytes", type=ByteSize(), required=True,
              help="Remove the least recently used entries until the cache holds at most this much (2G, 500M; powers of 1024).")
@data_dir_option
@dry_run_option
@json_option
def prune_cache(max_bytes, data_dir, dry_run, as_json):
    """Cap the cache: remove least recently used entries until it fits in --max-size."""
    render.show("cache trim", disk.trim_cache(data_dir, max_bytes=max_bytes, dry_run=dry_run), render.output_format(as_json))


@cache.command("clear", context_settings=CONTEXT)
@data_dir_option
@dry_run_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@json_option
def clear_cache(data_dir, dry_run, yes, as_json):
    """Remove every entry that no running process holds."""
    result = disk.trim_cache(data_dir, dry_run=True)
    if not dry_run and result["removed"]:
        confirm(f"{len(result['removed'])} entries ({human_bytes(result['freed'])}) from {result['directory']}", yes)
        result = disk.trim_cache(data_dir)
    render.show("cache trim", result, render.output_format(as_json))
