"""runs/fingerprints.py: what counts as an edit of a run's recorded inputs."""

from helpers import ROOT, as_recorded_before_mirror
from mlcv_cli import config
from mlcv_cli.runs import fingerprints


def test_a_parameter_added_later_at_its_default_is_not_an_edit():
    cfg = config.resolve(ROOT / "configs/kmeans-svm.yaml")  # a cv grid with dotted keys, a kmeans step
    new = cfg.to_dict()
    assert new["features"][0]["mirror"] is True and new["cv"]["grid"]
    new["features"][0]["mirror"] = False
    old = as_recorded_before_mirror(new)
    record = lambda d: {"data": "same", "dataset": "d", "config": fingerprints._sha(fingerprints._canonical(d)),  # noqa: E731
                        "config_values": fingerprints._flat(d)}
    assert record(old)["config"] != record(new)["config"]
    assert fingerprints.changes(record(old), record(new)) == []
    # The same parameter set to a value the old run could not have had is an edit, and so is any other.
    new["features"][0]["mirror"] = True
    assert "features" in fingerprints.changes(record(old), record(new))[0]
    new["features"][0]["mirror"] = False
    new["features"][0]["num_centroids"] = 7
    assert "features" in fingerprints.changes(record(old), record(new))[0]
