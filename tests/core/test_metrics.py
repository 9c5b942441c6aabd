import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from mlcv_cli.core.metrics import accuracy, confusion_matrix, per_class_accuracy


def test_accuracy_matches_loop():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    assert accuracy(y, p) == pytest.approx(sum(a == b for a, b in zip(y, p)) / 300)
    assert isinstance(accuracy(y, p), float)
    assert accuracy([], []) == 0.0


def test_confusion_matrix_matches_sklearn_and_loop():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    cm = confusion_matrix(y, p, 7)
    assert cm.dtype == np.int64 and cm.shape == (7, 7)
    np.testing.assert_array_equal(cm, sk_confusion_matrix(y, p, labels=range(7)))
    loop = np.zeros((7, 7), int)
    for a, b in zip(y, p):
        loop[a, b] += 1
    np.testing.assert_array_equal(cm, loop)


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0], 3)


def test_per_class_accuracy_with_absent_class():
    y = np.array([0, 0, 1, 1, 1, 3])
    p = np.array([0, 1, 1, 1, 0, 2])
    out = per_class_accuracy(y, p, 4)
    assert out == [0.5, pytest.approx(2 / 3), None, 0.0]
    assert all(v is None or isinstance(v, float) for v in out)
