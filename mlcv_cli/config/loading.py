"""Reading configs: YAML (safe, no aliases, no repeated keys), dotted ``--set`` overrides, defaults
filled in, cross-key checks, and a run's saved config read back.

Precedence: built-in defaults < per-model defaults < the YAML file < ``--set key=value``.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, UsageError
from ..models import registry
from ..system.files import read_small_text
from . import features as feature_config
from .checks import UnclearNumber, WrittenFloat, check_grid_count, check_grid_values, check_value, closest
from .schema import DEFAULT_GRIDS, KEYS, KEYS_USED_BY, MODEL_DEFAULTS, NATIVE_IMAGE_SIZE, SECTIONS, Config
from .shipped import locate


def parse_scalar(text: str) -> Any:
    """A command-line value read as YAML (numbers, true/false, null, [lists])."""
    try:
        return safe_load_text(text, "--set value")
    except ConfigError:
        return text


def parse_override(item: str) -> tuple:
    if "=" not in item:
        raise ConfigError(f"--set expects key.path=value, found {item!r} (e.g. --set model.k=5)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in KEYS and not feature_config.is_feature_key(key):
        raise ConfigError(f"--set: unknown config key {key!r}{closest(key, list(KEYS))}")
    return key, parse_scalar(raw)


# YAML 1.1 reads 1:30 as 90 (base 60), 017 as 15 (octal), 0b11 as 3 and 0x10 as 16, and 1e-3 as
# text. Configs are read with decimal numbers only, as a person reads them: plain integers
# (1_000 too) and floats (1e-3 too). The other forms become UnclearNumber, which a number key
# refuses naming the value as written and a text key takes as the text it is; dates stay text.
_DECIMAL_INT = r"[-+]?(?:0|[1-9][0-9_]*)"
_DECIMAL_FLOAT = (r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
                  r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
# 1e-3: a number to a number key, the text as written to a text key (YAML 1.1 made it text).
_EXPONENT_ONLY = r"[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
_EXPONENT_TAG = "tag:mlcv,2025:exponent-number"
_UNCLEAR = r"[-+]?(?:0[0-9_]+|0[bB][0-9_]*|0[xX][0-9a-fA-F_]*|0[oO][0-9_]*|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)"
_UNCLEAR_TAG = "tag:mlcv,2025:unclear-number"
_REPLACED_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")


def _decimal_resolvers(base):
    """``base``'s implicit resolvers with YAML 1.1's number and date forms replaced (see above)."""
    resolvers = {first: [(tag, regexp) for tag, regexp in pairs if tag not in _REPLACED_TAGS]
                 for first, pairs in base.yaml_implicit_resolvers.items()}
    for tag, pattern in ((_UNCLEAR_TAG, _UNCLEAR), ("tag:yaml.org,2002:int", _DECIMAL_INT),
                         ("tag:yaml.org,2002:float", _DECIMAL_FLOAT), (_EXPONENT_TAG, _EXPONENT_ONLY)):
        regexp = re.compile(rf"^(?:{pattern})$")
        for first in "+-.0123456789":
            resolvers.setdefault(first, []).append((tag, regexp))
    return resolvers


def _unclear_number(loader, node):
    return UnclearNumber(loader.construct_scalar(node))


def _exponent_number(loader, node):
    text = loader.construct_scalar(node)
    return WrittenFloat(float(text.replace("_", "")), text)


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader reading numbers as decimal only (see _decimal_resolvers)."""

    yaml_implicit_resolvers = _decimal_resolvers(yaml.SafeLoader)


_DecimalLoader.add_constructor(_UNCLEAR_TAG, _unclear_number)
_DecimalLoader.add_constructor(_EXPONENT_TAG, _exponent_number)


class RunConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The fast (libyaml) safe loader with the same numbers as configs: `mlcv runs` reads a run's
    config.yaml with it, so a listing shows a value the way the config loader reads it."""

    yaml_implicit_resolvers = _decimal_resolvers(yaml.SafeLoader)


RunConfigLoader.add_constructor(_UNCLEAR_TAG, _unclear_number)
RunConfigLoader.add_constructor(_EXPONENT_TAG, _exponent_number)


class _DecimalDumper(yaml.SafeDumper):
    """SafeDumper that quotes any text the config loader would not read back as text ("1e5", "017")."""

    yaml_implicit_resolvers = _decimal_resolvers(yaml.SafeDumper)


class _NoAliasLoader(_DecimalLoader):
    """The config loader: decimal numbers, and no anchors and aliases (billion-laughs bombs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"YAML aliases are not allowed in configs (found *{event.anchor} at line {event.start_mark.line + 1}); write the values out"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        # PyYAML keeps the last of two equal keys without a word; in a config that hides a typo.
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in seen:
                raise ConfigError(
                    f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); keep one"
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def safe_load_text(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML: nested too deeply; a config is a few levels of mappings") from None
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{where}: only plain YAML is allowed ({exc.problem}); remove the tag") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None


def read_yaml_file(path) -> dict:
    path = Path(path)
    try:
        text = read_small_text(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        from .shipped import names

        raise ConfigError(
            f"{path}: does not exist; give a config file, or the name of a shipped config ({', '.join(names()) or 'none installed'}; "
            "`mlcv configs` lists them, `mlcv configs NAME > my.yaml` copies one to edit)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a config; give a .yaml file") from None
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise ConfigError(f"{path}: a config is at most {MAX_CONFIG_BYTES} bytes, this file has more") from None
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    data = safe_load_text(text, str(path))
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config needs at least a model section (`mlcv configs NAME` prints a full one)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, ...) at the top level, found {type(data).__name__}")
    return data


def flatten(data: dict, where: str = "") -> dict:
    """Nested YAML mapping -> {dotted key: value}; unknown sections and keys are errors."""
    flat = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where or 'config'}: keys must be strings, found {key!r}")
        dotted = f"{where}.{key}" if where else key
        if not where and key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping, found {value!r}")
            flat.update(flatten(value, dotted))
        elif dotted in KEYS:
            flat[dotted] = value
        else:
            raise ConfigError(f"unknown config key {dotted!r}{closest(dotted, list(KEYS) + list(SECTIONS))}")
    return flat


def build(flat: dict) -> Config:
    """{dotted key: value} (already checked) -> a frozen Config."""
    sections = {name: {} for name in SECTIONS}
    top = {}
    for key, value in flat.items():
        if "." in key:
            section, sub = key.split(".", 1)
            sections[section][sub] = value
        else:
            top[key] = value
    return Config(**top, **{name: cls(**sections[name]) for name, cls in SECTIONS.items()})


def resolve(path=None, overrides=(), model_type=None, extra=None) -> Config:
    """Load a config: defaults < per-model defaults < YAML file < extra < --set overrides.

    ``overrides`` are 'key.path=value' strings; ``extra`` a {dotted key: value} mapping
    from command-line shortcuts (e.g. --folds).
    """
    if path is not None:

        path = locate(path)
    from_file = _in_file(path, lambda: flatten(read_yaml_file(path))) if path is not None else {}
    from_cli = dict(extra or {})
    for item in overrides:
        key, value = parse_override(item)
        from_cli[key] = value
    if model_type is not None:
        from_cli.setdefault("model.type", model_type)
    chosen_type = check_value("model.type", from_cli.get("model.type", from_file.get("model.type", registry.DEFAULT)))
    merged = dict(MODEL_DEFAULTS[chosen_type])
    dataset = from_cli.get("data.dataset", from_file.get("data.dataset"))
    if dataset in NATIVE_IMAGE_SIZE:
        merged["data.image_size"] = NATIVE_IMAGE_SIZE[dataset]  # 28 for MNIST unless the config says otherwise
    merged.update(from_file)
    step_overrides = {k: v for k, v in from_cli.items() if feature_config.is_feature_key(k)}
    merged.update({k: v for k, v in from_cli.items() if k not in step_overrides})
    checked = {}
    for key, value in merged.items():
        from_yaml = key in from_file and key not in from_cli
        checked[key] = _in_file(path, lambda: check_value(key, value)) if from_yaml else check_value(key, value)
    # Checked after the values, so a bad value is reported as such first.
    set_keys = [parse_override(item)[0] for item in overrides]
    # train.* stays allowed for kNN: a script may pass one set of training options to every model.
    unused = [k for k in set_keys if k.startswith("model.") and k != "model.type" and k not in KEYS_USED_BY[chosen_type]]
    if unused:
        raise ConfigError(
            f"--set {', '.join(unused)}: {'does' if len(unused) == 1 else 'do'} not apply to model.type {chosen_type}; "
            f"set keys it uses, e.g. {', '.join(sorted(DEFAULT_GRIDS[chosen_type]))}"
        )
    if step_overrides:
        steps = feature_config.apply_overrides(checked.get("features", feature_config.DEFAULT), step_overrides)
        checked["features"] = check_value("features", steps)
    return validate(build(checked))


def _in_file(path, fn):
    """Run fn(); a ConfigError it raises is prefixed with the config file's name."""
    try:
        return fn()
    except ConfigError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}") from None


def validate(cfg: Config) -> Config:
    """Checks that involve more than one key."""
    if cfg.data.dataset == "folder" and not cfg.data.path:
        raise ConfigError("data.path: data.dataset is folder, so data.path must name an image folder, a .zip, or an imported dataset name")
    for key in cfg.cv.grid:
        if feature_config.is_feature_key(key):
            feature_config.check_grid_key(key, cfg.features)
    feature_config.check_chain(cfg)
    if cfg.data.labels == "coarse" and cfg.data.dataset != "cifar100":
        raise ConfigError(f"data.labels: coarse labels exist only for cifar100, and data.dataset is {cfg.data.dataset}; remove data.labels")
    if cfg.data.channels == 2:
        raise ConfigError("data.channels: expected 1 (grayscale), 3 (colour) or null (detect), found 2")
    registry.get(cfg.model.type).validate(cfg)
    return cfg


def replace(cfg: Config, values: dict) -> Config:
    """A copy of ``cfg`` with {dotted key: value} changed (values checked)."""
    flat = flatten_config(cfg)
    step_overrides = {k: v for k, v in values.items() if feature_config.is_feature_key(k)}
    for key, value in values.items():
        if key not in step_overrides:
            flat[key] = check_value(key, value)
    if step_overrides:
        flat["features"] = check_value("features", feature_config.apply_overrides(flat["features"], step_overrides))
    return validate(build(flat))


def flatten_config(cfg: Config) -> dict:
    return flatten(cfg.to_dict())


def to_yaml(cfg: Config) -> str:
    return yaml.dump(cfg.to_dict(), Dumper=_DecimalDumper, sort_keys=False, default_flow_style=False)


def from_dict(data: dict) -> Config:
    """A resolved config read back from a run directory (checked like any other)."""
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level of the saved config")
    flat = flatten(data)
    return validate(build({key: check_value(key, value) for key, value in flat.items()}))


MAX_CONFIG_BYTES = 1 << 20


def parse_grid_option(items) -> dict:
    """--grid model.k=1,3,5 / --grid train.lr=logspace(-7,-5,5) -> {key: [values]}."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--grid expects KEY=V1,V2,... or KEY=logspace(a,b,n), found {item!r}")
        key, raw = item.split("=", 1)
        key, raw = key.strip(), raw.strip()
        # A range expression is expanded by check_grid_values; anything else is a comma list.
        if raw.endswith(")"):
            values = raw
        else:
            texts = [v.strip() for v in raw.strip("[]").split(",") if v.strip()]
            check_grid_count(key, len(texts))  # refused before each value is parsed
            values = [parse_scalar(v) for v in texts]
        grid[key] = check_grid_values(key, values)
    return grid
