"""models/modelfile.py: model files written by earlier versions still load and predict the same."""

from pathlib import Path

import numpy as np
import pytest

from mlcv_cli.models import modelfile
from mlcv_cli.models.build import estimator_from_file

LEGACY = Path(__file__).resolve().parent / "legacy"


@pytest.mark.parametrize("model", ["softmax", "knn"])
def test_model_files_written_before_features_predict_identically(model):
    """tests/models/legacy/legacy-*.npz were written by mlcv at commit 632e17f (model format 1)."""
    mf = modelfile.load(LEGACY / f"legacy-{model}.npz")
    expected = np.load(LEGACY / "legacy-expected.npz")
    est = estimator_from_file(mf)
    X = mf.chain.transform(expected["queries"])
    if model == "knn":  # integer votes: exact on any machine
        np.testing.assert_array_equal(est.vote_counts(X), expected["knn_scores"])
        return
    # The stored probabilities came from one BLAS kernel; another sums the 192 float32
    # products of each score in another order, which moves a probability by a few float32
    # ulps (seen: 6e-8 absolute). Bit-exactness is for two runs on one machine (resume tests).
    proba, stored = est.predict_proba(X), expected["softmax_scores"]
    np.testing.assert_allclose(proba, stored, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), stored.argmax(axis=1))

