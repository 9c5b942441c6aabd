"""system/progress.py: the progress lines a log gets when stderr is not a terminal."""

import io

from helpers import TERMINAL_CONTROL
from mlcv_cli.system.progress import LineProgress, Pieces


def test_line_progress_writes_milestones_and_a_heartbeat():
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(10, "cv knn", stream=out, clock=lambda: now[0])
    bar.update(1)
    bar.update(1, job="g0-f0", acc="0.250")
    now[0] = 45.0
    bar.update(1)  # no milestone, but a long silence: a line shows it is alive
    bar.close()
    assert out.getvalue().splitlines() == ["cv knn: 2/10 job g0-f0 acc 0.250", "cv knn: 3/10 30% 15 s each ETA 1 min 45 s",
                                          "cv knn: 3/10 done in 45.0 s"]


def _lbfgs_log(total, epochs, seconds_each):
    """Epoch numbers in the log lines of an L-BFGS-like run (one iteration per epoch)."""
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(total, "train softmax", stream=out, clock=lambda: now[0])
    for epoch in range(1, epochs + 1):
        now[0] += seconds_each
        bar.update(1, loss="1.5")
        bar.update(0, epoch=f"{epoch}/{total}", loss="1.5", val_acc="0.400")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith(f"train softmax: {epochs}/{total} done in ")
    assert all(line.endswith("loss 1.5 val_acc 0.400") for line in lines[:-1])
    # The amount is the step count of that epoch, for a held (written at close) epoch too.
    assert all(line.split(": ")[1].split("/")[0] == line.split(" epoch ")[1].split("/")[0] for line in lines[:-1])
    return [int(line.split(" epoch ")[1].split("/")[0]) for line in lines[:-1]]


def test_line_progress_writes_fast_epochs_per_tenth_slow_ones_each_and_always_the_last():
    # Before: 300 lines for 300 L-BFGS iterations.
    assert _lbfgs_log(300, 300, 0.1) == list(range(30, 301, 30))
    assert _lbfgs_log(300, 228, 0.1) == [*range(30, 211, 30), 228]  # converged early: its last epoch still shows
    assert _lbfgs_log(300, 4, 6.0) == [1, 2, 3, 4]  # epochs of seconds each keep a line each
    assert _lbfgs_log(3, 3, 0.1) == [1, 2, 3]
    assert _lbfgs_log(1000, 123, 1.0) == [*range(5, 121, 5), 123]  # at most one every EPOCH_GAP_S seconds


def test_progress_lines_show_descriptions_literally():
    stream = io.StringIO()
    bar = LineProgress(3, "decoding \x1b[2Jx\r", stream=stream)
    bar.update(1, epoch="1/3\x07")
    assert not TERMINAL_CONTROL.search(stream.getvalue()) and "decoding \\x1b[2Jx\\r: 1/3 epoch 1/3\\x07" in stream.getvalue()


def test_log_lines_of_a_long_stage_say_rate_and_eta_and_a_stop_is_not_done():
    now = [0.0]
    out = io.StringIO()
    bar = LineProgress(48500, "k-means encoding", stream=out, clock=lambda: now[0])
    bar.update(500, resumed=500)  # done by the interrupted run: not this process's rate
    now[0] = 40.0
    bar.update(15000)
    try:
        try:
            raise KeyboardInterrupt
        finally:
            bar.close()
    except KeyboardInterrupt:
        pass
    assert out.getvalue().splitlines() == [
        "k-means encoding: 500/48500 resumed 500",
        "k-means encoding: 15500/48500 31% 375/s ETA 1 min 28 s",
        "k-means encoding: 15500/48500 stopped after 40.0 s",
    ]


def test_pieces_show_one_bar_for_the_whole_work():
    opened = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.count, self.closed = total, desc, 0, False
            opened.append(self)

        def update(self, n=1, **postfix):
            self.count += n

        def close(self):
            self.closed = True

    pieces = Pieces(Bar, 2500, done=1024)
    for size in (1024, 452):
        bar = pieces.piece(size)(size, "k-means encoding")
        bar.update(size)
        bar.close()
    assert [(b.total, b.count, b.closed) for b in opened] == [(2500, 1024 + 1024 + 452, False)]
    pieces.close()
    assert opened[0].closed
