"""runs/rows.py: the fast reader of a run's config.yaml agrees with PyYAML."""

import pytest
import yaml

from mlcv_cli import config as config_mod
from mlcv_cli.runs import rows as runrows

# Two feature steps: the feature list is the config's one list of mappings.
FEATURES = ["features=[{type: hog, cell_size: 8}, {type: pixels}]"]


@pytest.mark.parametrize("overrides", [[], ["data.path=/tmp/x y", "output.name=a.b"], ["train.eps=1e-5", "data.num_test=7"], FEATURES,
                                       ["cv.grid={'model.k': [1, 3]}"]])
@pytest.mark.parametrize("model", ["knn", "softmax"])
def test_fast_config_reader_agrees_with_pyyaml(tmp_path, model, overrides):
    text = config_mod.to_yaml(config_mod.resolve(None, [o for o in overrides if not o.startswith("cv.grid")], model_type=model,
                                                 extra={"cv.grid": {"model.k": [1, 3]}} if any(o.startswith("cv.grid") for o in overrides) else None))
    (tmp_path / "config.yaml").write_text(text)
    flat = runrows._read_config(tmp_path / "config.yaml")
    assert flat == runrows.flatten_config(yaml.safe_load(text))
    assert runrows.fast_config(text.encode()) in (None, flat)
    # Scalars PyYAML reads differently from their look (octal, dates, sexagesimal) go to PyYAML.
    for odd in ("0123", "2026-11-29", "1:20", "'quoted'", "1e-5", ".inf"):
        assert runrows.fast_config(f"name: {odd}\n".encode()) in (None, {"name": yaml.safe_load(f"name: {odd}\n")["name"]})
