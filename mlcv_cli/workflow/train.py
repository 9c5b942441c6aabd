"""`mlcv train`: config + data + features + model -> a run directory. Returns results; never prints.

Progress is reported through an optional ``progress(total, desc)`` factory whose result
has ``update(n=1, **postfix)`` and ``close()`` (the CLI passes a tqdm bar, or log lines);
a postfix ``epoch=`` or ``job=`` marks a milestone worth a line in a log.
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack

from .. import config as config_mod
from ..config import Config
from ..config import features as feature_config
from ..core.linear import TrainingDiverged
from ..data.feature_cache import FeatureStore
from ..data.splits import split_dataset
from ..errors import ConfigError, DivergenceError, MlcvError, TrainingInterrupted
from ..models import modelfile
from ..models.build import build_estimator, knn_backend_note, knn_searches_pixels, model_file_of
from ..runs import checkpoints, fingerprints
from ..runs.history import HISTORY_COLUMNS, history_rows
from ..runs.rundir import RunDir, command_line
from ..runs.status import mark_run, out_of_memory, stopped_abruptly
from ..system import memory, threads
from ..system.progress import null_progress
from ..system.signals import StopRequest
from .inputs import data_dir_for, load_dataset, pin_data_location
from .scoring import Featurizer, batched_predict, split_metrics

# -- training -------------------------------------------------------------------------


def train(cfg: Config, *, progress=None, resume_dir=None, command=None, run=None, dataset=None, state_file=checkpoints.CHECKPOINT,
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
            state = checkpoints.read(run, state_file)
        if cfg.model.type != "knn":
            problem = checkpoints.problem(state, {"W": (X_train.shape[1], C), "b": (C,)}, cfg.train.optimizer, cfg.train.epochs)
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
            run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)
        finally:
            mark_run(run, "failed", "diverged")
        raise
    except TrainingInterrupted:
        run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)
        raise
    except KeyboardInterrupt as exc:  # a second Ctrl-C, or one during kNN fitting
        mark_run(run, "interrupted")
        raise stopped_abruptly(run, exc) from None
    except MemoryError:
        raise out_of_memory(run) from None
    except BaseException as exc:
        mark_run(run, "failed", exc)
        raise
    fit_s = time.perf_counter() - t1
    try:
        return _finish(cfg, run, est, pre, splits, ds, {"train": X_train, "val": X_val}, progress, t0, load_s, fit_s)
    except KeyboardInterrupt as exc:
        mark_run(run, "interrupted")
        raise stopped_abruptly(run, exc) from None
    except MemoryError:
        raise out_of_memory(run) from None
    except BaseException as exc:  # disk full or unwritable while saving: never left "running"
        mark_run(run, "failed", exc)
        raise


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
        run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)
    modelfile.save(run.file("model.npz"), model_file_of(cfg, est, pre, splits))
    if cfg.model.type != "knn":
        checkpoints.write_final(run, est)
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
    stop = StopRequest()
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
            checkpoints.write(run, est)
            run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)
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
        checkpoints.write(run, est)
        run.update_meta(status="interrupted")


