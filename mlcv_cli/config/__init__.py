"""Experiment configs: YAML -> frozen dataclasses, defaults filled in, every value checked.

schema.py defines the sections and keys, checks.py checks values and grids, loading.py reads
YAML and applies overrides, features.py is the ``features`` section, shipped.py the configs that
come with mlcv. The names below are the package's API; import them from here.
"""

from .checks import (MAX_GRID_POINTS, check_grid_count, check_grid_for_model, check_grid_size, check_grid_values, check_meta,
                     check_value, closest, parse_range, range_count)
from .loading import (build, flatten, flatten_config, from_dict, parse_override, parse_scalar, read_yaml_file, replace, resolve,
                      safe_load_text, to_yaml, validate)
from .schema import (DATASETS, DEFAULT_GRIDS, KEYS, KEYS_USED_BY, METRICS, MODEL_DEFAULTS, MODEL_TYPES, NATIVE_IMAGE_SIZE,
                     OPTIMIZERS, PENALTIES, SAFE_NAME, SECTIONS, Config, CVConfig, DataConfig, ModelConfig, OutputConfig,
                     PreprocessConfig, TrainConfig, all_keys)

__all__ = [
    "all_keys",
    "build",
    "check_grid_count",
    "check_grid_for_model",
    "check_grid_size",
    "check_grid_values",
    "check_meta",
    "check_value",
    "closest",
    "Config",
    "CVConfig",
    "DataConfig",
    "DATASETS",
    "DEFAULT_GRIDS",
    "flatten",
    "flatten_config",
    "from_dict",
    "KEYS",
    "KEYS_USED_BY",
    "MAX_GRID_POINTS",
    "METRICS",
    "MODEL_DEFAULTS",
    "MODEL_TYPES",
    "ModelConfig",
    "NATIVE_IMAGE_SIZE",
    "OPTIMIZERS",
    "OutputConfig",
    "parse_override",
    "parse_range",
    "parse_scalar",
    "PENALTIES",
    "PreprocessConfig",
    "range_count",
    "read_yaml_file",
    "replace",
    "resolve",
    "safe_load_text",
    "SAFE_NAME",
    "SECTIONS",
    "to_yaml",
    "TrainConfig",
    "validate",
]
