"""train / evaluate / predict: config + data + core + run directory. Returns results; never prints.

Progress is reported through an optional ``progress(total, desc)`` factory whose result
has ``update(n=1, **postfix)`` and ``close()`` (the CLI passes a tqdm bar, or log lines);
a postfix ``epoch=`` or ``job=`` marks a milestone worth a line in a log.
"""

from __future__ import annotations

import os
import signal
import time
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .. import config as config_mod
from ..config import features as feature_config
from ..runs import fingerprints
from ..system import memory, threads
from ..models import modelfile
from ..runs.checkpoints import checkpoint_problem
from ..config import Config
from ..core import metrics
from ..core.knn import KNearestNeighbor
from ..core.linear import LinearClassifier, TrainingDiverged, softmax
from ..errors import ConfigError, DataError, DivergenceError, MlcvError, ModelFileError, TrainingInterrupted, UsageError
from ..data.feature_cache import FeatureStore
from ..system.signals import STOP_SIGNALS, Terminated
from ..models.modelfile import ModelFile
from ..runs.rundir import RunDir, command_line

CHECKPOINT = "checkpoint.npz"
# A finished linear run's training state, so `train --resume RUN --set train.epochs=N` can go on.
FINAL_STATE = "state.npz"


class _NullProgress:
    def update(self, n=1, **postfix):
        pass

    def close(self):
        pass


def null_progress(total, desc):
    return _NullProgress()


# -- data ---------------------------------------------------------------------------


def resolve_data_dir(given=None) -> Path:
    """The data dir: ``given`` (--data-dir or data.dir), else $MLCV_DATA_DIR, else ./data."""
    return Path(given or os.environ.get("MLCV_DATA_DIR") or "data")


def data_dir_for(cfg: Config) -> Path:
    return resolve_data_dir(cfg.data.dir)


def pin_data_location(cfg: Config) -> Config:
    """The config with absolute data locations, so a saved run works from any directory."""
    from ..data.folder import IMPORTED_PREFIX, folder_source

    values = {"data.dir": str(data_dir_for(cfg).resolve())}
    if cfg.data.path and cfg.data.dataset == "folder":
        # Pinned either way, so a folder made later beside a bare name changes nothing.
        kind, where = folder_source(cfg.data.path, data_dir_for(cfg))
        if kind == "folder" and where.exists():
            values["data.path"] = str(where.resolve())
        elif kind == "imported" and (data_dir_for(cfg) / "folders" / where).is_dir():
            values["data.path"] = IMPORTED_PREFIX + where
    return config_mod.replace(cfg, values)


def load_dataset(cfg: Config, progress=None):
    """The dataset named by the config, with images of data.image_size (checked)."""
    ds = _load_dataset(cfg)
    found = tuple(ds.train_x.shape[1:3])
    if found != (cfg.data.image_size, cfg.data.image_size):
        raise ConfigError(
            f"data.image_size: the {ds.name} images are {found[0]}x{found[1]} but data.image_size is "
            f"{cfg.data.image_size}; set --set data.image_size={found[0]} (or import the folder again with --size)"
        )
    return ds


def _load_dataset(cfg: Config):
    """The dataset named by the config: the shipped sample, CIFAR-10/100, (Fashion-)MNIST, or an image folder."""
    from .. import data as datasets

    kind = cfg.data.dataset
    if kind == "sample":
        return datasets.load_sample(size=cfg.data.image_size)
    if kind in config_mod.NATIVE_IMAGE_SIZE:
        return _load_named(kind, cfg)  # load_dataset checks data.image_size against the images
    from ..data.folder import folder_source, imported_path

    kind, where = folder_source(cfg.data.path, data_dir_for(cfg))
    if kind == "folder" and where.exists():
        ds, _skipped = datasets.load_folder(where, size=cfg.data.image_size, skip_bad=cfg.data.skip_bad)
        return _folder_channels(ds, cfg.data.channels)
    if kind == "imported" and (where != cfg.data.path or imported_path(data_dir_for(cfg), where).exists()):
        return _folder_channels(datasets.load_imported(data_dir_for(cfg), where), cfg.data.channels)
    raise DataError(
        f"data.path {cfg.data.path!r} is neither an image folder/.zip nor a dataset imported into {data_dir_for(cfg)}; "
        "check the path or run `mlcv download folder PATH --name NAME`"
    )


def _load_named(kind, cfg):
    from .. import data as datasets
    from ..data import cifar100, idx

    if kind == "cifar10":
        return datasets.load_cifar10(data_dir_for(cfg))
    if kind == "cifar100":
        return cifar100.load_cifar100(data_dir_for(cfg), labels=cfg.data.labels)
    return idx.load_idx(idx.SOURCES[kind], data_dir_for(cfg))


def _folder_channels(ds, channels):
    """Image folders are read as colour; data.channels 1 (or null and every image gray) keeps one channel."""
    from ..data.channels import is_gray, to_gray

    if channels == 1 or (channels is None and is_gray(ds.train_x) and (ds.test_x is None or is_gray(ds.test_x))):
        ds.train_x = to_gray(ds.train_x)
        ds.test_x = None if ds.test_x is None else to_gray(ds.test_x)
    return ds


@dataclass
class Splits:
    classes: list
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: Optional[np.ndarray]
    test_y: Optional[np.ndarray]

    def get(self, split):
        x, y = {"train": (self.train_x, self.train_y), "val": (self.val_x, self.val_y), "test": (self.test_x, self.test_y)}[split]
        return x, y


def holdout_size(n: int) -> int:
    """The default size of a split carved from n images: 10%, at most 1,000 (0 below 10 images)."""
    return min(n // 10, 1000)


def _carved_test(cfg: Config, ds):
    """Indices into the training images held out as the test split of a dataset without one, or None."""
    if ds.test_y is not None:
        return None
    n = len(ds.train_y)
    num_test = holdout_size(n) if cfg.data.num_test is None else cfg.data.num_test
    if num_test == 0:
        return None
    if num_test >= n:
        raise ConfigError(
            f"data.num_test: {ds.name} has no test split, so the test images are carved from its {n} training "
            f"images, but {num_test} were asked for; set data.num_test below {n} (e.g. --set data.num_test={max(1, n // 5)})"
        )
    return np.sort(np.random.default_rng([cfg.seed, 3]).permutation(n)[:num_test])


def split_dataset(cfg: Config, ds) -> Splits:
    """Seeded train/val/test split: the validation images are carved from the training images
    (and so is the test split of a dataset that has none)."""
    carved = _carved_test(cfg, ds)
    pool = np.arange(len(ds.train_y)) if carved is None else np.setdiff1d(np.arange(len(ds.train_y)), carved)
    n = len(pool)
    num_val = holdout_size(n) if cfg.data.num_val is None else cfg.data.num_val
    num_train = cfg.data.num_train if cfg.data.num_train is not None else n - num_val
    images = f"the {ds.name} training set has {'only ' if num_val >= n else ''}{n} images" + (
        f" after the {len(carved)} test images carved from it" if carved is not None else "")
    if num_val >= n:
        raise ConfigError(
            f"data.num_val: {num_val} validation images asked for, but {images}; "
            f"set data.num_val below {n} (e.g. --set data.num_val={n // 10}), or null for 10%"
        )
    if num_train + num_val > n:
        raise ConfigError(
            f"data.num_train + data.num_val: {images}, "
            f"asked for {num_train} + {num_val}; lower them (null num_train takes all that is left)"
        )
    rng = np.random.default_rng([cfg.seed, 1])
    order = pool[rng.permutation(n)]
    val_idx = np.sort(order[:num_val])
    train_idx = np.sort(order[num_val : num_val + num_train])
    test_x, test_y = test_split(cfg, ds, carved)
    return Splits(
        classes=list(ds.classes),
        train_x=ds.train_x[train_idx],
        train_y=np.asarray(ds.train_y[train_idx], np.int64),
        val_x=ds.train_x[val_idx],
        val_y=np.asarray(ds.train_y[val_idx], np.int64),
        test_x=test_x,
        test_y=test_y,
    )


def test_split(cfg: Config, ds, carved=False):
    """The test images and labels (a seeded subset of data.num_test, or for a dataset without a
    test split the images carved from its training images), or (None, None)."""
    if carved is False:
        carved = _carved_test(cfg, ds)
    if carved is not None:
        return np.asarray(ds.train_x[carved]), np.asarray(ds.train_y[carved], np.int64)
    test_x, test_y = ds.test_x, ds.test_y
    if test_y is None:
        return None, None
    if cfg.data.num_test is not None:
        if cfg.data.num_test > len(test_y):
            raise ConfigError(f"data.num_test: the {ds.name} test set has {len(test_y)} images, asked for {cfg.data.num_test}")
        pick = np.sort(np.random.default_rng([cfg.seed, 2]).permutation(len(test_y))[: cfg.data.num_test])
        test_x, test_y = test_x[pick], test_y[pick]
    return np.asarray(test_x), np.asarray(test_y, np.int64)


# -- models ---------------------------------------------------------------------------


def build_estimator(cfg: Config):
    m, t = cfg.model, cfg.train
    if m.type == "knn":
        return KNearestNeighbor(k=m.k, metric=m.metric, max_memory=m.max_memory_mb * 2**20)
    return LinearClassifier(
        loss=m.type,
        reg=m.reg,
        penalty=m.penalty,
        l1_ratio=m.l1_ratio,
        delta=m.delta,
        squared_hinge=m.squared_hinge,
        optimizer=t.optimizer,
        lr=t.lr,
        lr_decay=t.lr_decay,
        batch_size=t.batch_size,
        epochs=t.epochs,
        momentum=t.momentum,
        decay_rate=t.decay_rate,
        beta1=t.beta1,
        beta2=t.beta2,
        eps=t.eps,
        init_scale=t.init_scale,
        random_search_tries=t.random_search_tries,
        seed=cfg.seed,
    )


class Featurizer:
    """A fitted feature chain applied through the feature cache (``transform(images) -> X``).

    raw_pixels: give the uint8 pixel rows instead (see ``knn_searches_pixels``).
    """

    def __init__(self, chain, store, progress=None, raw_pixels=False):
        self.chain, self.store, self.progress, self.raw_pixels = chain, store, progress, raw_pixels

    def transform(self, images, what="images"):
        if self.raw_pixels:
            return images.reshape(len(images), -1)
        return self.store.transform(self.chain, images, self.progress, what)


def knn_searches_pixels(model_type, chain):
    """True when a kNN model can search the raw uint8 pixels instead of the chain's features.

    Plain pixel steps without standardisation turn every image x into s * x - m: the same
    shift for every row and a positive scale, which change no distance ranking. The bytes
    give those same neighbours exactly (no float rounding), in a quarter of the memory, and
    L1 runs on the packed-byte kernel.
    """
    return model_type == "knn" and chain.pixels_only and not chain.standardizes


def knn_backend_note(uses_l1):
    """A one-line note when an L1 search fell back to the slower NumPy path, else None."""
    if not uses_l1:
        return None
    from ..core.knn import l1_backend

    backend, reason = l1_backend()
    if backend == "numba":
        return None
    return f"the compiled L1 kernel is unavailable ({reason}); used the NumPy search, which is several times slower"


def model_rows(mf: ModelFile, images, store=None, progress=None, what="images"):
    """The rows (N, D) a saved model sees for uint8 images (N, H, W, C), C the model's channels."""
    if knn_searches_pixels(mf.model_type, mf.chain):
        return images.reshape(len(images), -1)
    return (store or FeatureStore(None)).transform(mf.chain, images, progress, what)


def estimator_from_file(mf: ModelFile, store=None):
    """Rebuild a fitted estimator from a loaded model file (kNN features through ``store``'s cache)."""
    C = len(mf.classes)
    if mf.model_type == "knn":
        k = int(mf.arrays.get("k", 1))
        metric = str(mf.arrays.get("metric", "l2"))
        images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
        X = model_rows(mf, images, store, what="knn training images")
        est = KNearestNeighbor(k=k, metric=metric, max_memory=_saved_max_memory_mb(mf) * 2**20)
        return est.fit(X, mf.arrays["y_train"], num_classes=C)
    est = LinearClassifier(loss=mf.model_type)
    est.W_ = np.asarray(mf.arrays["W"], np.float32)
    est.b_ = np.asarray(mf.arrays["b"], np.float32)
    est.num_classes_ = C
    return est


def _saved_max_memory_mb(mf: ModelFile):
    """model.max_memory_mb of the run that wrote the model (the default if it cannot be read)."""
    try:
        return config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, "model config")).model.max_memory_mb
    except (MlcvError, AttributeError, TypeError):
        return config_mod.ModelConfig().max_memory_mb


def batched_predict(est, X, progress, desc, chunk=2000):
    """Predict in query chunks so a long kNN evaluation shows progress."""
    bar = progress(len(X), desc)
    out = []
    try:
        for start in range(0, len(X), chunk):
            if isinstance(est, LinearClassifier):
                # argmax of NaN scores is class 0: a wrong answer, not a result.
                out.append(np.argmax(_finite_scores(est.decision_function(X[start : start + chunk])), axis=1))
            else:
                out.append(est.predict(X[start : start + chunk]))
            bar.update(min(chunk, len(X) - start))
    finally:
        bar.close()
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _finite_scores(values):
    if not np.isfinite(values).all():
        raise ModelFileError(
            "the model's scores for these images are not finite numbers (its weights overflow float32); "
            "the model file is unusable: retrain it"
        )
    return values


def split_metrics(y_true, y_pred, C):
    if y_true is None or len(y_true) == 0:
        return None
    return {
        "accuracy": float(metrics.accuracy(y_true, y_pred)),
        "n": int(len(y_true)),
        "per_class_accuracy": metrics.per_class_accuracy(y_true, y_pred, C),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, C).tolist(),
    }


# -- training -------------------------------------------------------------------------


class _StopRequest:
    """SIGINT/SIGTERM (or a hang-up) set a flag; training stops after the current step."""

    def __init__(self):
        self.signum = None
        self.saving = False  # set while the checkpoint is written: a second Ctrl-C must not tear it

    def __call__(self):
        return self.signum is not None

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            if self.saving:
                return
            if self.signum is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self.signum = signum

        try:
            old = {s: signal.signal(s, handler) for s in (signal.SIGINT, *STOP_SIGNALS)}
        except ValueError:  # not the main thread: no handlers, no graceful stop
            yield self
            return
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


HISTORY_COLUMNS = ["iteration", "epoch", "loss", "lr", "train_acc", "val_acc"]


def _history_rows(est):
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


def _write_checkpoint(run: RunDir, est):
    state = est.get_state()
    run.write_npz(CHECKPOINT, {k: np.asarray(v) for k, v in state.items()})


def _read_checkpoint(run: RunDir, name=CHECKPOINT):
    path = run.file(name)
    if not path.exists():
        raise MlcvError(f"{run.path} has no {name} to resume from (was it trained with checkpoint_every: 0?)")
    try:
        modelfile.check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, ModelFileError) as exc:
        raise MlcvError(f"{path} is unreadable ({exc}); start a new run instead of resuming") from None


def train(cfg: Config, *, progress=None, resume_dir=None, command=None, run=None, dataset=None, state_file=CHECKPOINT,
          state=None, accept_changes=False, requested=None) -> dict:
    """Train the configured model, evaluate it on val/test, and write a run directory.

    ``run``: an existing, empty RunDir to write into (``mlcv cv --refit`` uses RUN/refit/);
    ``dataset``: the already loaded dataset that ``cfg`` names (saves decoding it again);
    ``state``: ``resume_dir``'s ``state_file`` when the caller has already read it.
    Returns a summary dict (run_dir, model, accuracies, times). Raises DivergenceError
    (run marked failed) or TrainingInterrupted (checkpoint written, run marked interrupted).
    """
    with ExitStack() as held:  # the run's lock, from the moment the run is known until the end
        return _train(held, cfg, progress=progress, resume_dir=resume_dir, command=command, run=run, dataset=dataset,
                      state_file=state_file, state=state, accept_changes=accept_changes, requested=requested or {})


def _train(held, cfg, *, progress, resume_dir, command, run, dataset, state_file, state, accept_changes, requested):
    progress = progress or null_progress
    t0 = time.perf_counter()
    cfg = pin_data_location(cfg)
    ds = dataset if dataset is not None else load_dataset(cfg)
    inputs = fingerprints.inputs(ds, cfg.to_dict())
    if resume_dir is not None:  # before any work, and before the run is touched
        run = RunDir(resume_dir)
        held.enter_context(run.locked())
        fingerprints.check(run, inputs, accept=accept_changes, asked=requested)
        if requested:  # what the command line asked for becomes the run's config
            run.write_text("config.yaml", config_mod.to_yaml(cfg))
    splits = split_dataset(cfg, ds)
    C = len(splits.classes)
    if cfg.model.type == "knn" and cfg.model.k > len(splits.train_y):
        raise ConfigError(
            f"model.k: {cfg.model.k} neighbours asked for, but the training set has {len(splits.train_y)} images; "
            f"use model.k <= {len(splits.train_y)} or more data.num_train"
        )
    feature_config.check_chain(cfg, splits.train_x.shape[1:])  # e.g. color_hist on grayscale images
    chain = feature_config.build_chain(cfg)
    memory.check(memory.train_parts(cfg, chain, len(splits.train_y), len(splits.val_y), len(splits.test_y) if splits.test_y is not None else 0,
                                    splits.train_x.shape[1:], C, knn_searches_pixels(cfg.model.type, chain)), "this training run")
    store = FeatureStore(data_dir_for(cfg) / "features")
    chain, X_train = store.fit(chain, splits.train_x, progress)
    if not chain.pixels_only:  # a learned extractor may come from the cache: the run's own, or refused
        inputs["features"] = chain.fingerprint()
        if resume_dir is not None:
            fingerprints.check_features(run, inputs["features"], store.directory, accept=accept_changes)
    pre = Featurizer(chain, store, progress, raw_pixels=knn_searches_pixels(cfg.model.type, chain))
    if pre.raw_pixels:
        X_train = pre.transform(splits.train_x)
    X_val = pre.transform(splits.val_x, "val") if len(splits.val_y) else None
    load_s = time.perf_counter() - t0

    if resume_dir is not None:
        if state is None:
            state = _read_checkpoint(run, state_file)
        if cfg.model.type != "knn":
            problem = checkpoint_problem(state, X_train.shape[1], C, cfg.train.optimizer, cfg.train.epochs)
            if problem:
                raise MlcvError(f"{run.file(state_file)} does not fit this run ({problem}); it is damaged or "
                                "from another run: start a new run instead of resuming")
        run.update_meta(status="running", resumed=command or command_line())
    else:
        run = run or RunDir.create(cfg.output.dir, cfg.output.name or cfg.name)
        held.enter_context(run.locked())
        run.write_text("config.yaml", config_mod.to_yaml(cfg))
        run.start_meta(command or command_line(), cfg.seed, model=cfg.model.type, dataset=ds.name, inputs=inputs)

    est = build_estimator(cfg)
    t1 = time.perf_counter()
    try:
        if cfg.model.type == "knn":
            est.fit(X_train, splits.train_y, num_classes=C)
        else:
            _fit_linear(cfg, est, run, X_train, splits.train_y, X_val, splits.val_y, C, state, progress)
    except DivergenceError as exc:
        exc.run_dir = str(run.path)
        try:
            run.write_csv("history.csv", _history_rows(est), HISTORY_COLUMNS)
        finally:
            mark_run(run, "failed", "diverged")
        raise
    except TrainingInterrupted:
        run.write_csv("history.csv", _history_rows(est), HISTORY_COLUMNS)
        raise
    except KeyboardInterrupt as exc:  # a second Ctrl-C, or one during kNN fitting
        mark_run(run, "interrupted")
        raise _stopped_abruptly(run, exc) from None
    except MemoryError:
        raise _out_of_memory(run) from None
    except BaseException as exc:
        mark_run(run, "failed", exc)
        raise
    fit_s = time.perf_counter() - t1
    try:
        return _finish(cfg, run, est, pre, splits, ds, {"train": X_train, "val": X_val}, progress, t0, load_s, fit_s)
    except KeyboardInterrupt as exc:
        mark_run(run, "interrupted")
        raise _stopped_abruptly(run, exc) from None
    except MemoryError:
        raise _out_of_memory(run) from None
    except BaseException as exc:  # disk full or unwritable while saving: never left "running"
        mark_run(run, "failed", exc)
        raise


def _stopped_abruptly(run, exc):
    """An interrupt outside the graceful stop: say whether the last checkpoint can resume the run."""
    if run.file(CHECKPOINT).exists():
        message = f"stopped at once; the last checkpoint is kept. Resume with: mlcv train --resume {run.path}"
    else:
        message = f"stopped at once, before any checkpoint was written: nothing to resume, run it again ({run.path} is marked interrupted)"
    err = TrainingInterrupted(message)
    err.exit_code = 143 if isinstance(exc, Terminated) else 130
    err.run_dir = str(run.path)
    return err


def _out_of_memory(run):
    """A MemoryError that the estimate did not foresee: resumable from the last checkpoint, if any."""
    if run.file(CHECKPOINT).exists():
        mark_run(run, "interrupted", "out of memory")
        message = f"ran out of memory; the last checkpoint is kept. Free memory and resume with: mlcv train --resume {run.path}"
    else:
        mark_run(run, "failed", "out of memory")
        message = (f"ran out of memory before any checkpoint was written ({run.path} is marked failed); free memory, "
                   "or use fewer images (data.num_train) or smaller features, and run it again")
    err = MlcvError(message)
    err.run_dir = str(run.path)
    return err


def mark_run(run, status, exc=None):
    """Record a run's end status; best effort, so the original error is the one reported."""
    extra = {} if exc is None else {"error": str(exc)[:500] or type(exc).__name__}
    try:
        run.update_meta(status=status, **extra)
    except MlcvError:
        pass


def _finish(cfg, run, est, pre, splits, ds, transformed, progress, t0, load_s, fit_s):
    """Score every split, then write metrics.json, history.csv, model.npz and status done."""
    C = len(splits.classes)

    results = {}
    for split in ("train", "val", "test"):
        x, y = splits.get(split)
        if y is None or len(y) == 0:
            results[split] = None
            continue
        if cfg.model.type == "knn" and split == "train":
            results[split] = None  # k=1 on its own training set says nothing
            continue
        Xs = transformed.get(split)
        if Xs is None:
            Xs = pre.transform(x, split)
        results[split] = split_metrics(y, batched_predict(est, Xs, progress, f"evaluate {split}"), C)

    final_loss = float(est.loss_history_[-1]) if getattr(est, "loss_history_", None) else None
    metrics_doc = {
        "model": cfg.model.type,
        "classes": splits.classes,
        "final_loss": final_loss,
        **{f"{s}_accuracy": (r["accuracy"] if r else None) for s, r in results.items()},
        "splits": results,
        "times": {"load_s": round(load_s, 3), "fit_s": round(fit_s, 3), "total_s": round(time.perf_counter() - t0, 3)},
        "features": _features_doc(pre),
    }
    run.write_json("metrics.json", metrics_doc)
    if cfg.model.type != "knn":
        run.write_csv("history.csv", _history_rows(est), HISTORY_COLUMNS)
    modelfile.save(run.file("model.npz"), _model_file(cfg, est, pre, splits))
    if cfg.model.type != "knn":
        run.write_npz(FINAL_STATE, {k: np.asarray(v) for k, v in est.get_state().items()})
    ckpt = run.file(CHECKPOINT)
    if ckpt.exists():
        ckpt.unlink()
    run.update_meta(status="done")
    return {
        "run_dir": str(run.path),
        "model": cfg.model.type,
        "dataset": ds.name,
        "n_train": int(len(splits.train_y)),
        "n_val": int(len(splits.val_y)),
        "n_test": int(0 if splits.test_y is None else len(splits.test_y)),
        "train_accuracy": metrics_doc["train_accuracy"],
        "val_accuracy": metrics_doc["val_accuracy"],
        "test_accuracy": metrics_doc["test_accuracy"],
        "final_loss": final_loss,
        "fit_s": round(fit_s, 3),
        "total_s": metrics_doc["times"]["total_s"],
        "features": metrics_doc["features"],
        "note": knn_backend_note(cfg.model.type == "knn" and cfg.model.metric == "l1"),
    }


def _features_doc(pre):
    """What the model saw: the chain, its output size, and what the feature cache saved."""
    chain = pre.chain
    return {
        "steps": [name for name, _ in chain.steps],
        "dim": int(chain.output_dim(chain.image_shape_)),
        "standardized": chain.mean_ is not None,
        "cache": list(pre.store.events),
    }


LBFGS_CHECKPOINT_GAP_S = 10.0
"""Least seconds between two periodic L-BFGS checkpoints. An L-BFGS epoch is one iteration, a
fraction of a second, and its state holds 2 x 10 vectors the size of the weights: writing it
after every iteration took two thirds of the training time (kmeans-svm on the sample). A
stop by signal still checkpoints at once, so a SIGKILL loses at most this much work plus one
iteration (times checkpoint_every)."""


def _fit_linear(cfg, est, run, X, y, X_val, y_val, C, state, progress):
    iters_per_epoch = -(-len(y) // cfg.train.batch_size)
    total = {"random_search": cfg.train.random_search_tries, "lbfgs": cfg.train.epochs}.get(cfg.train.optimizer, iters_per_epoch * cfg.train.epochs)
    bar = progress(total, f"train {cfg.model.type}")
    if state is not None:
        bar.update(int(state.get("iteration", 0)))
    stop = _StopRequest()
    every = cfg.train.checkpoint_every
    gap = LBFGS_CHECKPOINT_GAP_S if cfg.train.optimizer == "lbfgs" else 0.0
    last_checkpoint = [time.monotonic()]

    def on_step(iteration, loss):
        bar.update(1, loss=f"{loss:.4g}")

    def on_epoch(info):
        bar.update(0, epoch=f"{info['epoch']}/{cfg.train.epochs}", loss=f"{info['loss']:.4g}",
                   val_acc=None if info.get("val_acc") is None else f"{info['val_acc']:.3f}")
        if (every and info["epoch"] % every == 0 and info["epoch"] < cfg.train.epochs
                and time.monotonic() - last_checkpoint[0] >= gap):
            _write_checkpoint(run, est)
            run.write_csv("history.csv", _history_rows(est), HISTORY_COLUMNS)
            last_checkpoint[0] = time.monotonic()

    try:
        with stop.installed(), threads.for_linear_fit(cfg.train.optimizer):
            _fit_or_stop(est, stop, run, dict(
                X=X,
                y=y,
                num_classes=C,
                X_val=X_val,
                y_val=y_val if X_val is not None else None,
                state=state,
                on_step=on_step,
                on_epoch=on_epoch,
                should_stop=stop,
            ))
    except TrainingDiverged as exc:
        raise DivergenceError(
            f"training diverged at iteration {exc.iteration} (loss {exc.loss}): the learning rate "
            f"{cfg.train.lr:g} is too high for reg {cfg.model.reg:g}; try --set train.lr={cfg.train.lr / 10:g}",
            iteration=exc.iteration,
            loss=exc.loss,
        ) from None
    finally:
        bar.close()
    if getattr(est, "stopped_", False):
        code = 130 if stop.signum == signal.SIGINT else 143
        err = TrainingInterrupted(
            f"stopped after iteration {est.n_iter_} of {total}; checkpoint saved. Resume with: mlcv train --resume {run.path}"
        )
        err.exit_code = code
        err.run_dir = str(run.path)
        raise err


def _fit_or_stop(est, stop, run, fit_args):
    """Fit; when a signal stopped it, write the checkpoint while further signals are held off."""
    est.fit(**fit_args)
    if getattr(est, "stopped_", False):
        stop.saving = True
        _write_checkpoint(run, est)
        run.update_meta(status="interrupted")


def _model_file(cfg, est, pre, splits) -> ModelFile:
    if cfg.model.type == "knn":
        arrays = {
            "X_train": splits.train_x.reshape(len(splits.train_x), -1),
            "y_train": splits.train_y,
            "k": np.array(cfg.model.k),
            "metric": np.array(cfg.model.metric),
        }
    else:
        arrays = {"W": est.W_.astype(np.float32), "b": est.b_.astype(np.float32)}
    return ModelFile(cfg.model.type, splits.classes, cfg.data.image_size, pre.chain, config_mod.to_yaml(cfg), arrays)


def resume(run_dir, *, progress=None, command=None, epochs=None, accept_changes=False) -> dict:
    """Continue an interrupted `mlcv train` run from its checkpoint; with ``epochs``, train a run
    (finished or not) until that many epochs, ending exactly where a run of that length would.

    Data or a saved config.yaml changed since the run started is refused (InputsChanged) unless
    ``accept_changes``; the epochs asked for here are a change the user made on purpose.
    """
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise MlcvError(f"{run.path} is not a run directory; give the path printed when the run was interrupted")
    with run.locked():  # the first hold removes a killed writer's temporary files
        return _resume(run, progress, command, epochs, accept_changes)


def _resume(run, progress, command, epochs, accept_changes):
    status = run.status
    if status == "done" and epochs is None:
        raise MlcvError(f"{run.path} already finished (status done); nothing to resume "
                        f"(to train it longer: mlcv train --resume {run.path} --set train.epochs=N)")
    cfg_path = run.file("config.yaml")
    if not cfg_path.exists():
        raise MlcvError(f"{run.path} has no config.yaml; it is not an mlcv run directory")
    try:
        cfg = config_mod.from_dict(config_mod.read_yaml_file(cfg_path))
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path} is not a valid saved config ({exc}); undo the edit or start a new run") from None
    if cfg.model.type == "knn":
        raise MlcvError("kNN runs have nothing to resume; run `mlcv train` again")
    # A finished run keeps its final state; a newer checkpoint (a continuation interrupted) wins.
    state_file = CHECKPOINT if run.exists(CHECKPOINT) or not run.exists(FINAL_STATE) else FINAL_STATE
    state = None
    if epochs is not None:
        if cfg.train.optimizer == "random_search":
            raise UsageError("train.optimizer random_search has no epochs to add; start a new run with more train.random_search_tries")
        if status == "done":
            if not run.exists(FINAL_STATE):
                raise MlcvError(f"{run.path} finished without its final training state ({FINAL_STATE}; an older mlcv did not keep it); "
                                f"train a new run with --set train.epochs={epochs}")
        state = _read_checkpoint(run, state_file)
        try:
            done = int(state["epoch"]) + (1 if int(state["batch_pos"]) else 0)
        except (KeyError, TypeError, ValueError):
            raise MlcvError(f"{run.file(state_file)} holds no whole epoch and batch_pos counts; it is damaged: "
                            "start a new run instead of resuming") from None
        if epochs < max(done, 1) or (status == "done" and epochs <= done):
            raise UsageError(f"train.epochs: {run.path} has trained {int(state['epoch'])} epochs; "
                             f"ask for more (--set train.epochs={max(done, int(state['epoch'])) + 1} or higher)")
        cfg = config_mod.replace(cfg, {"train.epochs": epochs})
    return train(cfg, progress=progress, resume_dir=run.path, command=command, state_file=state_file, state=state,
                 accept_changes=accept_changes, requested={} if epochs is None else {"train.epochs": epochs})


# -- evaluate / predict -----------------------------------------------------------------


def locate_model(target) -> tuple:
    """A run directory or a model.npz path -> (model path, warning or None)."""
    target = Path(target)
    if target.is_dir() and not (target / "model.npz").exists() and (target / "refit" / "model.npz").exists():
        target = target / "refit"  # a cv run's refit model
    if target.is_dir():
        path = target / "model.npz"
        run = RunDir(target)
        if not path.exists():
            if run.exists("cv_plan.json"):
                raise MlcvError(_cv_run_advice(target, run))
            raise MlcvError(f"{target} has no model.npz (run status: {run.status}); train it to completion or resume it")
    else:
        path = target
        run = RunDir(target.parent)
    warning = None
    if run.file("meta.json").exists():
        status = run.status
        if status != "done":
            warning = f"run {run.path} has status {status!r}, not done: its model may be incomplete"
            if status == "running" and not run.is_live():  # the lock goes with the process
                warning += " (no process is running it any more: it was killed)"
    return path, warning


def _cv_run_advice(target, run):
    """What to do with a cv run directory that has no model to use."""
    if not run.exists("best.yaml"):
        return f"{target} is a cross-validation run that did not finish (status {run.status}); finish it with `mlcv cv --resume {target}`"
    if (target / "refit").is_dir():
        return f"{target} is a cross-validation run whose refit did not finish; finish it with `mlcv cv --resume {target}`"
    return (
        f"{target} is a cross-validation run with no refit model; refit its best setting with "
        f"`mlcv cv --resume {target} --refit` (or train it: `mlcv train --config {target / 'best.yaml'}`)"
    )


def evaluate(target, *, split="test", data_cfg_overrides=None, progress=None, plot=False, accept_changes=False) -> dict:
    progress = progress or null_progress
    path, warning = locate_model(target)
    mf = modelfile.load(path)
    cfg = _config_of(mf, path, data_cfg_overrides)
    ds = load_dataset(cfg)
    run = RunDir(Path(path).parent)
    if not data_cfg_overrides and run.exists("meta.json"):
        # The model's own data: its splits are rebuilt from the saved seed, so data that
        # changed since training would put training images into the split being scored.
        recorded = run.read_meta().get("inputs")
        if isinstance(recorded, dict) and recorded.get("data") not in (None, fingerprints.of_data(ds)):
            if not accept_changes:
                raise fingerprints.InputsChanged(
                    f"{run.path}: the {ds.name} data is not the data this model was trained on (it was imported "
                    "again or changed), so its splits would not be the training-time ones; score it on other "
                    "data with --data, retrain, or go on anyway with --accept-changes"
                )
            warning = "; ".join(w for w in (warning, f"the {ds.name} data changed since training") if w)
    if list(ds.classes) != list(mf.classes):
        raise DataError(f"the data's classes {list(ds.classes)} differ from the model's {mf.classes}; evaluate on a dataset with the same classes")
    # The test split does not depend on the train/val carving, so another dataset given
    # with --data needs no matching sizes for it.
    x, y = test_split(cfg, ds) if split == "test" else split_dataset(cfg, ds).get(split)
    if y is None or len(y) == 0:
        others = [s for s in ("test", "val", "train") if s != split]
        raise DataError(
            f"the {ds.name} data has no {split} images for this model (data.num_val is {cfg.data.num_val}, "
            f"test split {'absent' if ds.test_y is None else 'present'}); choose --split {' or '.join(others)}"
        )
    store = FeatureStore(data_dir_for(cfg) / "features")
    est = estimator_from_file(mf, store)
    from ..data.channels import match_channels

    x = match_channels(_check_image_size(x, mf.image_size), mf.channels)  # e.g. a colour folder for a grayscale model
    X = model_rows(mf, x, store, progress, split)
    pred = batched_predict(est, X, progress, f"evaluate {split}")
    result = {"model_path": str(path), "model": mf.model_type, "dataset": ds.name, "split": split, "classes": mf.classes}
    result.update(split_metrics(y, pred, len(mf.classes)))
    if warning:
        result["warning"] = warning
    note = knn_backend_note(getattr(est, "metric", None) == "l1")
    if note:
        result["note"] = note
    if plot:
        result["plots"] = _evaluation_plots(path, mf, est, X, x, y, pred, split)
    return result


def _evaluation_plots(path, mf, est, X, images, y, pred, split, n_queries=10, n_neighbors=10):
    from .. import plots

    out_dir = Path(path).parent
    made = [plots.draw_confusion(np.array(metrics.confusion_matrix(y, pred, len(mf.classes))), mf.classes,
                                  f"{mf.model_type}: {split} confusion matrix", out_dir / f"confusion-{split}.png")]
    if mf.model_type == "knn":
        k = min(n_neighbors, len(est.y_train_))
        # One query per class present (the first of each), so the rows show every class.
        _, first = np.unique(y, return_index=True)
        q = np.sort(first)[:n_queries]
        ind = est.kneighbors(X[q], k, return_distance=False)
        train_images = mf.arrays["X_train"].reshape(-1, mf.image_size, mf.image_size, mf.channels)
        made.append(plots.plot_neighbors(images[q], train_images[ind], y[q], est.y_train_[ind], mf.classes,
                                         out_dir / f"neighbors-{split}.png", split))
    return made


def _check_image_size(x, size):
    if x.shape[1:3] != (size, size):
        raise DataError(f"images are {x.shape[1]}x{x.shape[2]} but the model expects {size}x{size}; set data.image_size={size}")
    return x


def _config_of(mf, path, overrides):
    if not mf.config_yaml:
        raise ModelFileError(f"{path} has no saved config; it was not written by `mlcv train`")
    try:
        cfg = config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, f"{path} config"))
    except ConfigError as exc:
        raise MlcvError(f"{path}: the saved config is not valid for this mlcv ({exc})") from None
    if overrides:
        cfg = config_mod.replace(cfg, overrides)
    return cfg


def predict(target, files, *, top=3) -> dict:
    """Top-k classes for each image file; unreadable files are reported, the rest predicted."""
    from ..data.images import IMAGE_EXTENSIONS, read_image

    path, warning = locate_model(target)
    mf = modelfile.load(path)
    est = estimator_from_file(mf, _store_of(mf))
    C = len(mf.classes)
    top = max(1, min(top, C))
    images, ok, failed = [], [], []
    for f in expand_image_paths(files):
        try:
            images.append(read_image(f, size=mf.image_size))
            ok.append(str(f))
        except MlcvError as exc:
            failed.append({"path": str(f), "error": str(exc)})
    if not images and not failed:
        raise MlcvError(f"no image files found in {', '.join(str(f) for f in files)} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    rows = []
    if images:
        from ..data.channels import match_channels

        # Files are read as colour; a grayscale model sees them as Pillow's luma.
        X = model_rows(mf, match_channels(np.stack(images), mf.channels))
        if mf.model_type == "knn":
            kind, values, cast = "votes", est.vote_counts(X), int
        elif mf.model_type == "softmax":
            # predict_proba's own function on the scores already checked (finite scores give finite probabilities)
            kind, values, cast = "probability", softmax(_finite_scores(est.decision_function(X))), float
        else:
            kind, values, cast = "score", _finite_scores(est.decision_function(X)), float
        # Stable sort on the negated values: equal values keep the smaller class index first.
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        for i, f in enumerate(ok):
            # A class no neighbour voted for is not a prediction: list only classes with votes.
            picks = [j for n, j in enumerate(order[i]) if n == 0 or kind != "votes" or values[i, j] > 0]
            rows.append({"path": f, "top": [{"class": mf.classes[j], kind: cast(values[i, j])} for j in picks]})
    notes = [knn_backend_note(bool(images) and getattr(est, "metric", None) == "l1")]
    k = int(mf.arrays.get("k", 1)) if mf.model_type == "knn" else None
    if k is not None and k < top:
        notes.append(f"a {k}-NN model's vote names at most {k} class{'' if k == 1 else 'es'}, so at most {k} "
                     f"row{'' if k == 1 else 's'} per image; a model trained with a larger model.k ranks more")
    note = "; ".join(n for n in notes if n) or None
    return {"model_path": str(path), "model": mf.model_type, "value": kind if images else None, "predictions": rows,
            "failed": failed, "warning": warning, "note": note}


def _store_of(mf):
    """The feature cache of the data dir the model was trained with (none if its config is unreadable)."""
    try:
        cfg = config_mod.from_dict(config_mod.safe_load_text(mf.config_yaml, "model config"))
    except (ConfigError, TypeError, AttributeError):
        return FeatureStore(None)
    return FeatureStore(data_dir_for(cfg) / "features")


def expand_image_paths(items):
    """Files as given; directories expand to the image files inside them (sorted, recursive)."""
    from ..data.images import IMAGE_EXTENSIONS

    for item in items:
        p = Path(item)
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            yield p
