"""models/registry.py and models/base.py: the model types mlcv knows, found once, each keeping the
contract, and everything that lists model types (config schema, per-model defaults and grids, the
CLI's --model choices) taken from them."""

import pytest

from mlcv_cli import config
from mlcv_cli.errors import ConfigError
from mlcv_cli.models import registry
from mlcv_cli.models.base import ModelType, key

TYPES = registry.types()
SCORE_KINDS = {"votes", "score", "probability"}
PLOTS = {"loss", "weights", "neighbors"}
KEY_SPEC = set(key(0, int, "doc"))  # the fields every declared key carries


def test_names_are_the_types_in_order_and_each_is_found_by_name():
    names = registry.names()
    assert names == tuple(t.name for t in TYPES) and len(set(names)) == len(names)
    assert {"knn", "svm", "softmax"} <= set(names) and registry.DEFAULT in names
    for name in names:
        assert registry.get(name).name == name
    assert registry.get("svm") is registry.get("svm")  # found once, the same object every time


def test_an_unknown_name_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError) as err:
        registry.get("forest")
    message = str(err.value)
    assert message.startswith("model.type: expected one of ") and "found 'forest'" in message
    assert message.index(registry.names()[0]) < message.index("found")
    assert all(name in message for name in registry.names())


@pytest.mark.parametrize("model_type", TYPES, ids=lambda t: t.name)
def test_every_type_keeps_the_contract(model_type):
    t = model_type
    assert isinstance(t, ModelType) and t.name and t.summary and isinstance(t.title, str)
    assert isinstance(t.keys, dict) and all(set(spec) == KEY_SPEC for spec in t.keys.values())
    assert all(k.startswith(("model.", "train.")) for k in t.keys)
    assert isinstance(t.uses, frozenset) and all(isinstance(k, str) for k in t.uses)
    assert isinstance(t.defaults, dict) and isinstance(t.default_grid, dict) and t.default_grid
    assert all(isinstance(v, list) and v for v in t.default_grid.values())
    assert t.score_kind in SCORE_KINDS and set(t.plots) <= PLOTS
    assert isinstance(t.iterative, bool) and isinstance(t.keeps_training_images, bool) and isinstance(t.groups_cv_points, bool)
    assert t.sklearn_name is None or isinstance(t.sklearn_name, str)
    # What every type must say for itself (the base class only raises NotImplementedError).
    for method in ("build", "arrays", "check_arrays", "from_arrays"):
        assert getattr(type(t), method) is not getattr(ModelType, method), method
    if not t.iterative:  # the base class scores and cross-validates models that train in steps (decision_function)
        for method in ("predict", "values", "cv_scores"):
            assert getattr(type(t), method) is not getattr(ModelType, method), method
    if t.iterative:  # checkpoints are checked against the shapes of its parameters
        assert type(t).param_shapes is not ModelType.param_shapes
        assert all(isinstance(s, tuple) for s in t.param_shapes(config.resolve(model_type=t.name), 12, 3).values())
    if t.gradcheck_penalties:
        assert type(t).gradcheck is not ModelType.gradcheck


@pytest.mark.parametrize("model_type", TYPES, ids=lambda t: t.name)
def test_build_gives_an_unfitted_estimator_with_the_configs_hyperparameters(model_type):
    cfg = config.resolve(model_type=model_type.name)
    est = model_type.build(cfg)
    assert callable(est.fit) and callable(est.predict) and est.get_params()
    assert not [name for name in vars(est) if name.endswith("_") and not name.startswith("_")]  # nothing learned yet
    if cfg.model.type == "knn":
        assert est.get_params()["k"] == cfg.model.k


def test_the_schema_has_every_key_a_type_declares_with_its_default_and_limits():
    defaults = config.flatten_config(config.Config())
    for t in TYPES:
        for dotted, spec in t.keys.items():
            assert dotted in config.KEYS, (t.name, dotted)
            assert defaults[dotted] == spec["default"], (t.name, dotted)
            meta = config.KEYS[dotted]
            assert {k: meta[k] for k in spec if k != "default"} == {k: v for k, v in spec.items() if k != "default"}, dotted
    assert config.KEYS["model.type"]["choices"] == registry.names()


def test_per_model_tables_come_from_the_types():
    names = set(registry.names())
    assert set(config.MODEL_DEFAULTS) == set(config.DEFAULT_GRIDS) == set(config.KEYS_USED_BY) == names
    train_keys = {k for k in config.KEYS if k.startswith("train.")}
    for t in TYPES:
        assert config.MODEL_DEFAULTS[t.name] == t.defaults and config.DEFAULT_GRIDS[t.name] == t.default_grid
        used = config.KEYS_USED_BY[t.name]
        assert {k for k in t.uses if not k.endswith("*")} <= used
        assert ("train.*" in t.uses) == (train_keys <= used)
        assert set(t.default_grid) <= used  # the default search only moves keys the model reads
        assert all(k == "name" or k in config.KEYS for k in t.defaults)


@pytest.mark.parametrize("model_type", TYPES, ids=lambda t: t.name)
def test_a_config_of_a_type_starts_from_its_defaults(model_type):
    cfg = config.resolve(model_type=model_type.name)
    flat = config.flatten_config(cfg)
    assert cfg.model.type == model_type.name
    for dotted, value in model_type.defaults.items():
        assert (cfg.name if dotted == "name" else flat[dotted]) == value, dotted


def test_the_cli_offers_the_registrys_types():
    from mlcv_cli.cli.cv import cv
    from mlcv_cli.cli.train import train

    for command in (train, cv):
        [option] = [p for p in command.params if p.name == "model_type"]
        assert tuple(option.type.choices) == registry.names(), command.name


def test_gradcheckable_types_are_those_with_penalties():
    assert registry.gradcheckable() == tuple(t.name for t in TYPES if t.gradcheck_penalties)
    assert {"svm", "softmax"} <= set(registry.gradcheckable()) and "knn" not in registry.gradcheckable()
