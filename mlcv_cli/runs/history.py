"""history.csv: one row per training iteration, with the epoch summaries on each epoch's last row."""

from __future__ import annotations

HISTORY_COLUMNS = ["iteration", "epoch", "loss", "lr", "train_acc", "val_acc"]


def history_rows(est):
    """One row per iteration; lr and train/val accuracy filled in on the last iteration of each epoch."""
    losses = getattr(est, "loss_history_", [])
    ends = {int(info["iteration"]): info for info in getattr(est, "epoch_history_", [])}
    rows, epoch = [], 1
    for i, loss in enumerate(losses, start=1):
        row = {"iteration": i, "epoch": epoch, "loss": float(loss)}
        if i in ends:
            row.update({k: ends[i].get(k) for k in ("epoch", "lr", "train_acc", "val_acc")})
            epoch = int(ends[i]["epoch"]) + 1
        rows.append(row)
    return rows
