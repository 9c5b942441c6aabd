"""Accuracy and fit time of the two-layer network (mlp) on CIFAR-10: raw pixels, HOG + hue histogram, k-means features.

Usage: python bench/bench_mlp_accuracy.py [--data-dir DIR] [--zip PATH] [--num-val 5000]
           [--rows raw,hog,kmeans,sklearn,softmax:kmeans] [--set KEY=VALUE ...] [--history] [--quick]

Data: the 50,000 shared CIFAR-10 JPEGs imported as a folder into DIR (imported on first use, as
`mlcv download folder ZIP --name cifar10-jpeg` does) and split as `mlcv train` splits them with
data.num_test=10000 and data.num_val=N: 10,000 test images carved with seed 0 (the split of the
README's 74.01% k-means softmax run), and N of the other 40,000 (default 5,000) held out as the
validation images that train.keep_best picks the epoch on; the rest (35,000) train.
Each mlp row is a shipped config (configs/mlp-cifar10.yaml, mlp-hog-cifar10.yaml,
mlp-kmeans-cifar10.yaml) with those data keys and --set applied, its features fitted on the
training images through the feature cache in DIR/features and its model built by the registry:
what `mlcv train --config ... --data-dir DIR` does, without the run directory, so a row's
features are read back from the cache by the next run (and by mlcv train) instead of encoded again.
Rows: raw, hog, kmeans (mlcv's mlp on those features); sklearn[:FEATURES] (scikit-learn's
MLPClassifier on the same rows: one hidden layer of the mlp row's size, adam with its lr and
batch, alpha = 2 * batch * reg (the same L2 penalty per step), its epochs, no early stopping; default raw);
softmax[:FEATURES] (mlcv's softmax, L-BFGS reg 1e-3 300 iterations, the linear reference; default
kmeans). Each row prints its settings, train (all training rows) / val / test accuracy, the
epoch whose weights were kept, fit wall and CPU seconds, and the load average before and after
(the machine may be shared: CPU seconds are the view load disturbs least).
--quick: the shipped sample (4,500 / 500 / 1,000), small models, 2 epochs: a check that every
row runs (about a minute); its figures are not the issue's.
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from mlcv_cli import config as config_mod  # noqa: E402
from mlcv_cli.config.features import build_chain  # noqa: E402
from mlcv_cli.data import import_folder  # noqa: E402
from mlcv_cli.data.feature_cache import FeatureStore  # noqa: E402
from mlcv_cli.data.folder import imported_path  # noqa: E402
from mlcv_cli.data.splits import split_dataset  # noqa: E402
from mlcv_cli.models import registry  # noqa: E402
from mlcv_cli.system import threads  # noqa: E402
from mlcv_cli.workflow.inputs import load_dataset  # noqa: E402

DEFAULT_ZIP = os.path.join(REPO, "..", "shared", "data", "cifar10-train-jpeg.zip")
DATASET_NAME = "cifar10-jpeg"
CONFIGS = {"raw": "mlp-cifar10.yaml", "hog": "mlp-hog-cifar10.yaml", "kmeans": "mlp-kmeans-cifar10.yaml"}
REFERENCE_FEATURES = {"sklearn": "raw", "softmax": "kmeans"}
# --quick: small enough to run in about a minute on the shipped sample.
QUICK = ["data.dataset=sample", "data.num_test=null", "data.num_val=500", "train.epochs=2", "model.hidden_size=50",
         "train.checkpoint_every=0"]
QUICK_KMEANS = ["features.0.num_centroids=100", "features.0.num_patches=10000", "features.0.iterations=2",
                "features.0.mirror=false"]


def load_line():
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def resolve(features, args):
    """The config of the mlp row on ``features``: the shipped file, the data keys, then --set."""
    sets = [f"data.num_val={args.num_val}", "data.dataset=folder", f"data.path={DATASET_NAME}", "data.num_test=10000",
            f"data.dir={args.data_dir}"]
    if args.quick:
        sets = [f"data.dir={args.data_dir}"] + QUICK + (QUICK_KMEANS if features == "kmeans" else [])
    return config_mod.resolve(os.path.join(REPO, "configs", CONFIGS[features]), sets + args.set)


class Data:
    """Each feature setting's (config, splits, X_train, X_val, X_test), computed once per process."""

    def __init__(self, args):
        self.args, self.rows = args, {}

    def get(self, features):
        if features not in self.rows:
            cfg = resolve(features, self.args)
            t = time.perf_counter()
            splits = split_dataset(cfg, load_dataset(cfg))
            store = FeatureStore(os.path.join(self.args.data_dir, "features"))
            chain, X_train = store.fit(build_chain(cfg), splits.train_x)
            X_val = store.transform(chain, splits.val_x, what="val")
            X_test = store.transform(chain, splits.test_x, what="test")
            cache = ", ".join(f"{e['what']} {e['cache']}" for e in store.events)
            print(f"# {features}: {X_train.shape[1]:,} features of {len(X_train):,} train / {len(X_val):,} val / "
                  f"{len(X_test):,} test images in {time.perf_counter() - t:.1f} s (cache: {cache})", flush=True)
            self.rows[features] = (cfg, splits, np.asarray(X_train), np.asarray(X_val), np.asarray(X_test))
        return self.rows[features]


def timed(fn):
    """(result, wall seconds, CPU seconds of this process's threads, load before, load after)."""
    before, t, c = load_line(), time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c, before, load_line()


def report(kind, features, settings, accs, best, wall, cpu, before, after):
    train, val, test = accs
    print(f"{kind:7s} {features:6s} | train {train:.4f} val {val:.4f} test {test:.4f} | best epoch {best} | "
          f"fit {wall:.0f} s wall {cpu:.0f} s cpu | load {before} -> {after} on {os.cpu_count()} CPUs | {settings}",
          flush=True)


def mlp_row(data, features, args):
    cfg, splits, X_train, X_val, X_test = data.get(features)
    model_type = registry.get(cfg.model.type)
    est = model_type.build(cfg)

    def on_epoch(info):
        if args.history:
            print(f"    epoch {info['epoch']:3d} loss {info['loss']:.4f} lr {info['lr']:.2e} train(1k) "
                  f"{info['train_acc']:.4f} val {info['val_acc']:.4f}", flush=True)

    def fit():
        with threads.blas_threads(model_type.fit_threads(cfg)):
            return est.fit(X_train, splits.train_y, num_classes=len(splits.classes), X_val=X_val, y_val=splits.val_y,
                           on_epoch=on_epoch)

    _, wall, cpu, before, after = timed(fit)
    accs = [est.score(X, y) for X, y in ((X_train, splits.train_y), (X_val, splits.val_y), (X_test, splits.test_y))]
    m, t = cfg.model, cfg.train
    settings = (f"H={m.hidden_size} {m.activation} dropout={m.dropout:g} reg={m.reg:g} {t.optimizer} lr={t.lr:g} "
                f"decay={t.lr_decay:g} batch={t.batch_size} epochs={t.epochs}")
    best = f"{est.best_epoch_}/{len(est.epoch_history_)}" if est.best_epoch_ is not None else "last"
    report("mlp", features, settings, accs, best, wall, cpu, before, after)


def sklearn_row(data, features, args):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    cfg, splits, X_train, X_val, X_test = data.get(features)
    m, t = cfg.model, cfg.train
    # mlcv's loss of a minibatch: mean(CE) + reg * |W|^2. scikit-learn's (adam, sgd): mean(CE) + alpha / (2 n) * |W|^2
    # with n the rows of that minibatch (its _backprop divides by the batch's sample count), so alpha = 2 * batch * reg.
    alpha = 2 * t.batch_size * m.reg
    sk = MLPClassifier(hidden_layer_sizes=(m.hidden_size,), activation="relu", solver="adam", alpha=alpha,
                       batch_size=t.batch_size, learning_rate_init=t.lr, max_iter=t.epochs, shuffle=True,
                       random_state=cfg.seed, early_stopping=False, n_iter_no_change=t.epochs + 1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the epoch count here, not a cap
        _, wall, cpu, before, after = timed(lambda: sk.fit(X_train, splits.train_y))
    accs = [sk.score(X, y) for X, y in ((X_train, splits.train_y), (X_val, splits.val_y), (X_test, splits.test_y))]
    settings = (f"scikit-learn {__import__('sklearn').__version__} MLPClassifier H={m.hidden_size} relu alpha={alpha:g} "
                f"(= reg {m.reg:g}) adam lr={t.lr:g} (no decay) batch={t.batch_size} epochs={sk.n_iter_} "
                f"{X_train.dtype} rows")
    report("sklearn", features, settings, accs, "last", wall, cpu, before, after)


def softmax_row(data, features, args):
    from mlcv_cli.core.linear import LinearClassifier

    cfg, splits, X_train, X_val, X_test = data.get(features)
    iterations = 20 if args.quick else 300
    clf = LinearClassifier(loss="softmax", optimizer="lbfgs", reg=1e-3, epochs=iterations)
    _, wall, cpu, before, after = timed(lambda: clf.fit(X_train, splits.train_y, num_classes=len(splits.classes)))
    accs = [clf.score(X, y) for X, y in ((X_train, splits.train_y), (X_val, splits.val_y), (X_test, splits.test_y))]
    settings = f"mlcv softmax lbfgs reg=0.001, {clf.n_iter_} iterations, converged {clf.converged_}"
    report("softmax", features, settings, accs, "last", wall, cpu, before, after)


def ensure_imported(args):
    if args.quick or imported_path(args.data_dir, DATASET_NAME).is_dir():
        return
    t = time.perf_counter()
    import_folder(args.zip, args.data_dir, DATASET_NAME, progress=False)
    print(f"# imported {args.zip} into {args.data_dir} as {DATASET_NAME} in {time.perf_counter() - t:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.path.expanduser("~/data-dir"),
                    help="mlcv data dir: the imported JPEGs and the feature cache (use one dir so features encode once)")
    ap.add_argument("--zip", default=DEFAULT_ZIP, help="the CIFAR-10 JPEG zip, imported when DATA_DIR lacks it")
    ap.add_argument("--num-val", type=int, default=5000, help="validation images carved from the 40,000 (train.keep_best)")
    ap.add_argument("--rows", default="raw,hog,kmeans,sklearn,softmax:kmeans",
                    help="raw, hog, kmeans (mlp rows); sklearn[:FEATURES], softmax[:FEATURES] (references)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every row, e.g. model.reg=0.01 (repeatable)")
    ap.add_argument("--history", action="store_true", help="print each mlp epoch's loss and accuracies")
    ap.add_argument("--quick", action="store_true", help="the shipped sample and small models: a check that the rows run")
    args = ap.parse_args()
    quick_dir = tempfile.TemporaryDirectory() if args.quick else None
    if quick_dir:
        args.data_dir = quick_dir.name
    ensure_imported(args)
    print(f"# numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load_line()}; "
          f"{'--quick: the shipped sample' if args.quick else f'40,000 / 10,000 split, {args.num_val:,} of the 40,000 for validation'}"
          f"{'; --set ' + ' '.join(args.set) if args.set else ''}", flush=True)
    data = Data(args)
    for row in args.rows.split(","):
        kind, _, features = row.partition(":")
        features = features or REFERENCE_FEATURES.get(kind, kind)
        if features not in CONFIGS:
            ap.error(f"--rows: {row!r}: features must be one of {', '.join(CONFIGS)}")
        {"sklearn": sklearn_row, "softmax": softmax_row}.get(kind, mlp_row)(data, features, args)
    print(f"# load average at the end {load_line()}")


if __name__ == "__main__":
    main()
