"""workflow/estimates.py: the memory a run will need, part by part, from the sizes alone."""

from mlcv_cli import config
from mlcv_cli.config import features as feature_config
from mlcv_cli.system import memory
from mlcv_cli.workflow import estimates


def test_estimates_follow_the_sizes():
    cfg = config.resolve(None, ["features=[{type: kmeans, num_centroids: 1000}]"], model_type="softmax")
    chain = feature_config.build_chain(cfg)
    parts = dict((d, n) for d, n, _ in estimates.train_parts(cfg, chain, 4000, 500, 500, (32, 32, 3), 10, False))
    assert parts["features 5,000 x 4,000 float32"] == 5000 * 4000 * 4
    assert parts["k-means patch sample 400,000 x 108"] == 400_000 * 108 * 8
    assert memory.parse_size("1.5G") == int(1.5 * 2**30) and memory.parse_size("512MB") == 512 * 2**20
