"""history.csv: one row per training iteration, with the epoch summaries on each epoch's last row."""

from __future__ import annotations

HISTORY_COLUMNS = ["iteration", "epoch", "loss", "lr", "train_acc", "val_acc", "epoch_loss", "train_val_gap", "best_epoch"]
"""loss: the minibatch's; epoch_loss: the mean over the epoch; train_val_gap: train_acc - val_acc (the
overfitting a curve shows); best_epoch: with train.keep_best, the epoch whose weights are kept so far."""


def history_rows(est):
    """One row per iteration; the epoch's summary filled in on the last iteration of each epoch."""
    losses = getattr(est, "loss_history_", [])
    ends = {int(info["iteration"]): info for info in getattr(est, "epoch_history_", [])}
    rows, epoch = [], 1
    for i, loss in enumerate(losses, start=1):
        row = {"iteration": i, "epoch": epoch, "loss": float(loss)}
        if i in ends:
            info = ends[i]
            row.update({k: info.get(k) for k in ("epoch", "lr", "train_acc", "val_acc", "best_epoch")})
            row["epoch_loss"] = info.get("loss")
            if info.get("train_acc") is not None and info.get("val_acc") is not None:
                row["train_val_gap"] = info["train_acc"] - info["val_acc"]
            epoch = int(info["epoch"]) + 1
        rows.append(row)
    return rows
