"""Speed of TwoLayerNet's training against its own matrix products, measured in the same run.

Usage: python bench/bench_mlp.py [--n 49000] [--d 3072] [--hidden 500] [--batch 200]
                                 [--optimizers sgd,adam] [--epochs 3] [--measure-20]
(a) one epoch of fit on N x D float32 rows (random data: the timing does not depend on the
    values) with H hidden units and minibatches of B, against the time of the matrix products
    one epoch needs for the same shapes: forward X@W1 and h@W2, backward h.T@dscores,
    dscores@W2.T and X.T@dh (target: the epoch within 2x of its products).
(b) 20 epochs: projected from the median epoch (measured instead with --measure-20);
    target under 2 minutes.
The machine may be shared: the products of each step are timed right after the step itself
(from on_step), so both see the same load; figures are medians over the epochs, and the load
lines say how busy the machine was.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mlcv_cli.core.mlp import TwoLayerNet  # noqa: E402


def load_line():
    with open("/proc/loadavg") as f:
        return f"load average {' '.join(f.read().split()[:3])} on {os.cpu_count()} CPUs"


class Products:
    """The five matrix products of one training step, for batches of X (B rows) and H hidden units."""

    def __init__(self, X, H, C, B):
        rng = np.random.default_rng(1)
        self.X, self.B = X, B
        self.W1 = rng.standard_normal((X.shape[1], H), dtype=np.float32)
        self.W2 = rng.standard_normal((H, C), dtype=np.float32)
        self.dscores = rng.standard_normal((B, C), dtype=np.float32)
        self.steps = -(-X.shape[0] // B)

    def step(self, s):
        """Seconds of the products of step s (0-based) of an epoch."""
        t = time.perf_counter()
        Xb = self.X[s * self.B:(s + 1) * self.B]  # a view: the products alone are timed, not the batch gather
        dscores = self.dscores[:Xb.shape[0]]
        h = Xb @ self.W1
        h @ self.W2
        h.T @ dscores
        dh = dscores @ self.W2.T
        Xb.T @ dh
        return time.perf_counter() - t


def paired_epochs(X, y, args, optimizer):
    """[(training seconds, products seconds)] per epoch of one fit.

    After every training step, on_step runs the products of that step on their own and
    times them; an epoch's training time is its wall time less those products. Step by
    step interleaving makes both see the same load on a shared machine.
    """
    products = Products(X, args.hidden, 10, args.batch)
    spent, stamps = [0.0], []

    def on_step(iteration, loss):
        spent[0] += products.step((iteration - 1) % products.steps)

    net = TwoLayerNet(hidden_size=args.hidden, batch_size=args.batch, epochs=args.epochs, optimizer=optimizer,
                      lr=1e-4, reg=1e-4, seed=0)
    stamps.append((time.perf_counter(), 0.0))
    net.fit(X, y, num_classes=10, on_step=on_step,
            on_epoch=lambda info: stamps.append((time.perf_counter(), spent[0])))
    return [((t1 - t0) - (p1 - p0), p1 - p0) for (t0, p0), (t1, p1) in zip(stamps, stamps[1:])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=49000)
    ap.add_argument("--d", type=int, default=3072)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed per optimizer (the median is reported)")
    ap.add_argument("--measure-20", action="store_true", help="also time a whole 20-epoch fit (sgd)")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d), dtype=np.float32)
    y = rng.integers(0, 10, args.n)
    print(f"TwoLayerNet, {args.n:,} x {args.d:,} float32 rows, hidden {args.hidden}, batch {args.batch}, "
          f"{-(-args.n // args.batch)} steps per epoch; numpy {np.__version__}")
    print(load_line())
    print("(a) per epoch: training time (epoch wall time less the interleaved bare products), bare products, ratio")
    for name in args.optimizers.split(","):
        pairs = paired_epochs(X, y, args, name)
        train = statistics.median(t for t, _ in pairs)
        ratio = statistics.median(t / p for t, p in pairs)
        each = "; ".join(f"{t:.2f} s / {p:.2f} s" for t, p in pairs)
        bare = statistics.median(p for _, p in pairs)
        print(f"    {name:8s} epoch median {train:.2f} s, products median {bare:.2f} s, "
              f"ratio median {ratio:.2f}x [target <= 2x: {'met' if ratio <= 2 else 'MISSED'}]  ({each})")
        fastest = min(t for t, _ in pairs)
        print(f"(b) {name:8s} 20 epochs projected from the median epoch: {20 * train:.0f} s "
              f"[target < 120 s: {'met' if 20 * train < 120 else 'MISSED'}]; "
              f"from the fastest (least disturbed) epoch: {20 * fastest:.0f} s")
    if args.measure_20:
        t, c = time.perf_counter(), time.process_time()
        TwoLayerNet(hidden_size=args.hidden, batch_size=args.batch, epochs=20, lr=1e-4, seed=0).fit(X, y, 10)
        total, cpu = time.perf_counter() - t, time.process_time() - c
        # CPU seconds of this process: on a shared machine the wall time grows with the load,
        # the CPU time much less; CPU / cores is about what the same fit takes on idle cores.
        print(f"(b) sgd 20 epochs measured: {total:.0f} s  [target < 120 s: {'met' if total < 120 else 'MISSED'}]; "
              f"{cpu:.0f} s CPU ({cpu / os.cpu_count():.0f} s per core on {os.cpu_count()} cores)")
    print(load_line())


if __name__ == "__main__":
    main()
