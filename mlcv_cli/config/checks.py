"""Checking config values: one value against its key's type and range, and cv grids (lists and
range expressions such as logspace(-3,-1,3)). Every rejection names the key, what was found and
what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Optional

import yaml

from ..errors import ConfigError
from . import features as feature_config
from .schema import DEFAULT_GRIDS, KEYS, KEYS_USED_BY


def closest(name, options):
    """' (did you mean ...?)' for a mistyped key: the dotted keys that end in what was typed
    (k -> model.k, lr -> train.lr), else the closest spelling of the whole key or of its last part."""
    options = [o for o in options if o != name]
    tail = name.rsplit(".", 1)[-1]
    match = [o for o in options if o.rsplit(".", 1)[-1] == tail][:2] or difflib.get_close_matches(name, options, n=1)
    if not match:
        tails = {}
        for o in options:
            tails.setdefault(o.rsplit(".", 1)[-1], o)
        match = [tails[t] for t in difflib.get_close_matches(tail, list(tails), n=1)]
    return f" (did you mean {' or '.join(repr(m) for m in match)}?)" if match else ""


class UnclearNumber(str):
    """A scalar written like a number that people and YAML 1.1 read differently (1:30, 017,
    0b11, 0x10): text to a text key, refused by a number key (config/loading.py makes them)."""

    def reading(self) -> str:
        """What YAML 1.1 makes of it, in words: "90 (base 60)", "15 (octal)", ..."""

        text = self.lstrip("+-")
        kind = ("base 60" if ":" in text else {"b": "binary", "x": "hexadecimal"}.get(text[1:2].lower(), "octal"))
        try:
            value = yaml.safe_load(str(self))
        except yaml.YAMLError:
            value = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{value:g} ({kind})"
        return "text (YAML 1.2 reads 0o as octal)" if text[1:2].lower() == "o" else f"text (it is not valid {kind})"


class WrittenFloat(float):
    """A number written without a decimal point but with an exponent (1e-3): what YAML 1.1 read as
    text. A number to a number key; to a text key, the text as written (``text``)."""

    def __new__(cls, value, text):
        self = super().__new__(cls, value)
        self.text = text
        return self


def check_value(key: str, value: Any) -> Any:
    """Type- and range-check one value for a dotted key; return it normalised."""
    if key == "features":
        return feature_config.check_features(value, check_meta)
    if feature_config.is_feature_key(key):
        return check_meta(key, feature_config.param_meta(key), value)
    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r}{closest(key, list(KEYS))}; run `mlcv train --print-config` to see all keys")
    return check_meta(key, KEYS[key], value)


def check_meta(key: str, meta: dict, value: Any) -> Any:
    """Check ``value`` against one field's metadata (kind, choices, range); ``key`` names it in errors."""
    kind = meta["kind"]
    if isinstance(value, UnclearNumber):
        if kind in (int, float):
            raise ConfigError(
                f"{key}: {str(value)!r} is not a plain decimal number (YAML 1.1 reads it as {value.reading()}); "
                "write the number you mean in decimal digits, without leading zeros (e.g. 90, 0.001 or 1e-3)"
            )
        value = str(value)
    if isinstance(value, WrittenFloat):  # 1e3 is the integer 1000 to an integer key
        value = value.text if kind is str else int(value) if kind is int and value.is_integer() else float(value)
    if value is None:
        if meta["nullable"]:
            return None
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}
        raise ConfigError(f"{key}: expected {names[kind]}, found null (an empty value)")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, found {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, found {value!r}")
    elif kind is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-7" (no dot) as a string; accept what a person means.
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, found {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, found {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, found {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, found {value!r}")
    elif kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of dotted keys to lists, found {value!r}")
        return {k: check_grid_values(k, v) for k, v in value.items()}
    if meta["pattern"] is not None and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(
            f"{key}: expected a name of at most 100 letters, digits, '_', '.' and '-' (it names a directory), found {value!r}"
        )
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key}: expected one of {', '.join(meta['choices'])}; found {value!r}")
    low, high = meta["low"], meta["high"]
    too_low = low is not None and (value < low or (meta["low_open"] and value == low))
    too_high = high is not None and (value > high or (meta["high_open"] and value == high))
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"> {low}" if meta["low_open"] else f">= {low}")
        if high is not None:
            bounds.append(f"< {high}" if meta["high_open"] else f"<= {high}")
        raise ConfigError(f"{key}: expected a value {' and '.join(bounds)}, found {value!r}")
    return value


_RANGE = re.compile(r"^\s*(logspace|linspace|range)\(([^)]*)\)\s*$")


# A cv plan is expanded into points, jobs and journal rows, and its values are checked one by
# one: past this many points it would only exhaust the memory and the time of any machine.
MAX_GRID_POINTS = 10_000


_NARROW = "use fewer values (`mlcv cv --random N` samples between a key's smallest and largest value, so two values span a range)"


def range_count(fn: str, nums: list) -> int:
    """How many values fn(*nums) gives, computed without making them."""
    if fn in ("logspace", "linspace"):
        return int(nums[2])
    start, stop, step = (nums + [1])[:3] if len(nums) == 2 else nums
    start, stop, step = int(start), int(stop), int(step)
    return max(0, (stop - start + step - (1 if step > 0 else -1)) // step)


def parse_range(text: str) -> Optional[list]:
    """Expand 'logspace(a,b,n)' (10**a..10**b), 'linspace(a,b,n)' or 'range(a,b[,step])'; None if not one.

    The count is checked before anything is made: past MAX_GRID_POINTS it is a ConfigError.
    """
    m = _RANGE.match(text)
    if not m:
        return None
    fn, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    try:
        nums = [float(a) for a in args]
    except ValueError:
        raise ConfigError(f"{text!r}: expected numbers inside {fn}(...), e.g. logspace(-7,-5,5)") from None
    if not all(math.isfinite(x) for x in nums):
        raise ConfigError(f"{text!r}: expected finite numbers inside {fn}(...), e.g. logspace(-7,-5,5)")
    if fn in ("logspace", "linspace"):
        if len(nums) != 3 or nums[2] < 1 or nums[2] != int(nums[2]):
            raise ConfigError(f"{text!r}: expected {fn}(start, stop, count) with a whole count >= 1")
        if fn == "logspace" and max(nums[0], nums[1]) > 300:
            raise ConfigError(f"{text!r}: 10**{max(nums[0], nums[1]):g} is beyond what a number can hold; use exponents of at most 300")
    elif len(nums) not in (2, 3) or any(x != int(x) for x in nums) or (len(nums) == 3 and nums[2] == 0):
        raise ConfigError(f"{text!r}: expected range(start, stop[, step]) with whole numbers and a step other than 0")
    n = range_count(fn, nums)
    if n > MAX_GRID_POINTS:
        raise ConfigError(f"{text!r} gives {n:,} values, more than the limit of {MAX_GRID_POINTS:,} grid points; "
                          f"use a smaller count{_NARROW[len('use fewer values'):]}")
    if fn in ("logspace", "linspace"):
        a, b = nums[0], nums[1]
        pts = [a + (b - a) * i / (n - 1) if n > 1 else a for i in range(n)]
        return [float(f"{10.0 ** p:.6g}") for p in pts] if fn == "logspace" else [float(f"{p:.6g}") for p in pts]
    return list(range(*[int(x) for x in nums]))


def _distinct(values: list) -> list:
    """The values in order with repeats dropped (equal as in ``==``, so 1 and 1.0 are one value)."""
    seen, out = set(), []
    for v in values:
        marker = ("value", v)
        try:
            hash(marker)
        except TypeError:  # an unhashable value: compared by its text
            marker = ("text", repr(v))
        if marker not in seen:
            seen.add(marker)
            out.append(v)
    return out


def check_grid_count(key: str, count: int):
    """Refuse a grid entry of more than MAX_GRID_POINTS values, before each of them is checked."""
    if count > MAX_GRID_POINTS:
        raise ConfigError(f"cv.grid.{key}: {count:,} values, more than the limit of {MAX_GRID_POINTS:,} grid points; {_NARROW}")


def check_grid_values(key: str, values: Any) -> list:
    """A grid entry: a list of values (or a range expression) each valid for ``key``."""
    if feature_config.is_feature_key(key) and not key.endswith(".type"):
        feature_config.param_meta(key)  # an unknown parameter name fails here; its step is checked in validate
    elif key not in KEYS:
        raise ConfigError(f"cv.grid: unknown config key {key!r}{closest(key, list(KEYS))}; grid keys are dotted, e.g. model.k or train.lr")
    elif KEYS[key]["kind"] is dict or "." not in key or key.startswith(("cv.", "output.", "data.")) or key == "model.type":
        raise ConfigError(
            f"cv.grid: {key!r} is not a key that can be searched (the data and the model type are fixed for a "
            f"cross-validation: run one cv per model type)"
        )
    if isinstance(values, str):
        try:
            expanded = parse_range(values)
        except ConfigError as exc:
            raise ConfigError(f"cv.grid.{key}: {exc}") from None
        values = expanded if expanded is not None else [values]
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"cv.grid.{key}: expected a non-empty list of values, logspace(a,b,n) or range(a,b[,step]), found {values!r}"
        )
    check_grid_count(key, len(values))
    return _distinct([check_value(key, v) for v in values])  # a repeated value is one grid point


def check_grid_size(grid: dict):
    """Refuse a full grid whose points (the product of its value counts) pass MAX_GRID_POINTS."""
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(v)} ({k})" for k, v in grid.items())
        raise ConfigError(f"cv.grid: {sizes} = {n:,} grid points, more than the limit of {MAX_GRID_POINTS:,}; "
                          "use fewer values per key, or sample N points of it with `mlcv cv --random N`")


def check_grid_for_model(grid: dict, model_type: str):
    unused = [k for k in grid if k not in KEYS_USED_BY[model_type] and not feature_config.is_feature_key(k)]
    if unused:
        raise ConfigError(
            f"cv.grid: {', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to model.type {model_type}; "
            f"search keys it uses, e.g. {', '.join(sorted(DEFAULT_GRIDS[model_type]))}"
        )


