"""Config loading: defaults, file values, --set overrides, and every rejection."""

import pytest

from helpers import ROOT, mlcv
from mlcv_cli import config
from mlcv_cli.errors import ConfigError, UsageError


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_fill_every_key():
    cfg = config.resolve()
    assert cfg.model.type == "softmax"
    assert cfg.data.dataset == "sample"
    assert cfg.cv.folds == 5 and cfg.output.dir == "runs"
    assert set(config.flatten_config(cfg)) == set(config.KEYS)


def test_model_defaults_follow_model_type(tmp_path):
    knn = config.resolve(write(tmp_path, "model: {type: knn}"))
    assert knn.name == "knn" and knn.preprocess.subtract_mean is False
    svm = config.resolve(model_type="svm")
    assert svm.name == "svm" and svm.preprocess.scale == pytest.approx(1 / 255)


def test_file_then_overrides(tmp_path):
    p = write(tmp_path, "model:\n  type: knn\n  k: 3\ntrain:\n  lr: 1e-7\n")
    cfg = config.resolve(p, ["model.k=7", "model.metric=l1", "data.num_val=0"])
    assert cfg.model.k == 7 and cfg.model.metric == "l1" and cfg.data.num_val == 0
    assert cfg.train.lr == pytest.approx(1e-7)  # YAML 1.1 reads 1e-7 as text; we accept it


def test_override_values_are_yaml_scalars_and_lists():
    cfg = config.resolve(overrides=["data.skip_bad=true", "data.num_train=null", "cv.grid={model.k: [1, 3]}"])
    assert cfg.data.skip_bad is True and cfg.data.num_train is None
    assert cfg.cv.grid == {"model.k": [1, 3]}


def test_grid_range_syntax():
    cfg = config.resolve(overrides=["cv.grid={train.lr: 'logspace(-7,-5,3)', model.k: 'range(1,4)'}"])
    assert cfg.cv.grid["train.lr"] == pytest.approx([1e-7, 1e-6, 1e-5])
    assert cfg.cv.grid["model.k"] == [1, 2, 3]


def test_grid_option_parsing():
    grid = config.parse_grid_option(["model.k=1,3,5", "train.lr=logspace(-7,-5,3)", "model.metric=l1,l2"])
    assert grid["model.k"] == [1, 3, 5] and grid["model.metric"] == ["l1", "l2"]
    assert grid["train.lr"] == pytest.approx([1e-7, 1e-6, 1e-5])
    with pytest.raises(UsageError):
        config.parse_grid_option(["model.k"])
    with pytest.raises(ConfigError):
        config.parse_grid_option(["model.k=a,b"])



@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.k=0", "model.k: expected a value >= 1, found 0"),
        ("train.lr=-0.1", "train.lr: expected a value > 0"),
        ("train.lr=0", "train.lr: expected a value > 0"),
        ("train.batch_size=0", "train.batch_size: expected a value >= 1"),
        ("cv.folds=1", "cv.folds: expected a value >= 2"),
        ("model.type=forest", "model.type: expected one of knn, svm, softmax"),
        ("train.optimizer=adamw", "train.optimizer: expected one of sgd"),
        ("model.metric=cosine", "model.metric: expected one of l2, l1"),
        ("train.batch_size=2.5", "train.batch_size: expected an integer, found 2.5"),
        ("train.epochs=ten", "train.epochs: expected an integer"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("data.skip_bad=maybe", "data.skip_bad: expected true or false"),
        ("model.l1_ratio=1.5", "model.l1_ratio: expected a value >= 0.0 and <= 1.0, found 1.5"),
        ("train.momentum=1", "train.momentum: expected a value >= 0.0 and < 1.0, found 1.0"),
        ("train.beta2=1.0", "train.beta2: expected a value >= 0.0 and < 1.0"),
        ("data.dataset=imagenet", "data.dataset: expected one of sample, cifar10, folder"),
        ("model.kk=3", "unknown config key 'model.kk' (did you mean 'model.k'?)"),
        ("noequals", "--set expects key.path=value"),
        ("cv.grid={model.q: [1]}", "cv.grid: unknown config key 'model.q'"),
        ("cv.grid={model.k: [0, 1]}", "model.k: expected a value >= 1, found 0"),
        ("cv.grid={model.k: []}", "expected a non-empty list"),
        ("cv.grid={data.num_train: [10, 30]}", "the data and the model type are fixed"),
        ("cv.grid={model.type: [knn, svm]}", "the data and the model type are fixed"),
        ("cv.grid={model.k: 'range(1,5,0)'}", "a step other than 0"),
        ("data.dataset=folder", "data.path"),
    ],
)
def test_rejections_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        config.resolve(overrides=[override])
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "expected a mapping of sections"),
        ("model:\n  type: knn\n  color: red\n", "unknown config key 'model.color'"),
        ("modle:\n  k: 3\n", "unknown config key 'modle'"),
        ("model: 3\n", "model: expected a mapping"),
        ("a: &x [1]\nb: *x\n", "aliases are not allowed"),
        ("model: !!python/object:os.system {}\n", "only plain YAML"),
        ("model: {type: knn\n", "not valid YAML"),
    ],
)
def test_bad_files(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        config.resolve(write(tmp_path, text))
    assert fragment in str(err.value)


@pytest.mark.parametrize("text", ["train:\n  lr: 0.1\n  lr: 0.001\n", "model:\n  type: svm\nmodel:\n  type: knn\n"])
def test_duplicate_yaml_keys_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = mlcv("train", "--config", path, "--print-config")
    assert result.exit_code == 2 and "appears twice" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("setting", ["preprocess.scale=1e30", "train.init_scale=1e20"])
def test_settings_that_overflow_float32_are_refused(setting):
    result = mlcv("train", "--model", "softmax", "--set", setting, "--print-config")
    assert result.exit_code == 2 and "<= 1000" in result.stderr


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]")
    with pytest.raises(ConfigError, match="aliases"):
        config.resolve(write(tmp_path, "\n".join(lines)))


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.resolve("nope/none.yaml")


def test_shipped_configs_load_and_round_trip():
    root = ROOT / "configs"
    for name in ("knn", "svm", "softmax"):
        cfg = config.resolve(root / f"{name}.yaml")
        assert cfg.model.type == name and cfg.data.dataset == "sample"
        again = config.from_dict(config.safe_load_text(config.to_yaml(cfg), "round trip"))
        assert again == cfg


def test_replace_checks_values():
    cfg = config.resolve(model_type="knn")
    assert config.replace(cfg, {"model.k": 9}).model.k == 9
    with pytest.raises(ConfigError):
        config.replace(cfg, {"model.k": -1})
