"""`mlcv configs`: list the shipped configs, or print one to copy."""

from __future__ import annotations

import click

from .. import config as config_mod
from ..config import shipped
from ..errors import UsageError
from ..models import registry
from . import render
from .common import CONTEXT


@click.command("configs", context_settings=CONTEXT)
@click.argument("name", required=False)
def configs_cmd(name):
    """List the shipped configs, or print one to copy and edit.

    \b
    Use one by name from any directory:   mlcv train --config softmax
    Copy one to edit it:                  mlcv configs softmax > my-softmax.yaml
                                          mlcv train --config my-softmax.yaml
    """

    available = shipped.names()
    if name is None:
        configs = [{"name": n, "summary": shipped.summary(n),
                    "model": (config_mod.read_yaml_file(shipped.config_dir() / f"{n}.yaml").get("model") or {}).get("type", registry.DEFAULT)}
                   for n in available]
        render.show("configs", {"directory": str(shipped.config_dir()), "configs": configs})
        return
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in available:
        raise UsageError(f"no shipped config named {name!r}; the shipped configs are {', '.join(available) or 'missing from this install'}")
    click.echo((shipped.config_dir() / f"{stem}.yaml").read_text(encoding="utf-8"), nl=False)
