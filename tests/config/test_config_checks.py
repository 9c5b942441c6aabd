"""config/checks.py: grid values counted and deduplicated without expanding them."""

import random

from mlcv_cli import config


def test_range_count_matches_len_of_range():
    rng = random.Random(0)
    for _ in range(2000):
        start, stop, step = rng.randint(-50, 50), rng.randint(-50, 50), rng.choice([-7, -3, -1, 1, 2, 5])
        assert config.range_count("range", [float(start), float(stop), float(step)]) == len(range(start, stop, step))
    assert config.range_count("range", [0.0, 10.0 ** 15]) == 10 ** 15


def test_repeated_grid_values_are_one_point_in_linear_time():
    assert config.check_grid_values("model.k", [3, 1, 3, 2, 1]) == [3, 1, 2]
    assert config.check_grid_values("train.lr", [0.1, 1e-1, 0.01]) == [0.1, 0.01]
    values = config.check_grid_values("model.k", list(range(1, config.MAX_GRID_POINTS + 1)) )
    assert len(values) == config.MAX_GRID_POINTS
