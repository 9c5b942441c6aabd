"""config/features.py: the features section in a config file and on the command line."""

import pytest

import features_standin
from mlcv_cli import config
from mlcv_cli.errors import ConfigError


@pytest.fixture
def standin(monkeypatch):
    return features_standin.install(monkeypatch)


def test_features_in_a_config_file(standin, tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("features:\n  - type: kmeans\n    num_centroids: 3\n  - type: sift\n")
    with pytest.raises(ConfigError, match=r"f.yaml: features.1.type: expected one of pixels, hog, color_hist, kmeans; found 'sift'"):
        config.resolve(path)
    path.write_text("features:\n  - type: kmeans\n    num_centroids: 3\n    patch_size: 2\n")
    cfg = config.resolve(path, ["features.0.num_centroids=7"])
    assert cfg.features[0]["num_centroids"] == 7 and cfg.features[0]["stride"] == 1
    assert config.from_dict(config.safe_load_text(config.to_yaml(cfg), "saved")) == cfg
    assert config.resolve(None).features == ({"type": "pixels"},)
