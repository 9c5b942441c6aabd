"""cli/common.py: the progress bar a terminal gets."""

import sys

from mlcv_cli.cli import common


def test_terminal_bar_keeps_validation_accuracy_beside_the_loss(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = common.progress_factory()(20, "train softmax")
    bar.update(0, epoch="1/2", loss="2.1", val_acc="0.310")
    bar.update(1, loss="1.9")
    assert "val_acc=0.310" in bar.tqdm.postfix and "loss=1.9" in bar.tqdm.postfix
    bar.close()
