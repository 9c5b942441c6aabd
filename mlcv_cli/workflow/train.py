"""`mlcv train`: config + data + features + model -> a run directory. Returns results; never prints.

Progress is reported through an optional ``progress(total, desc)`` factory whose result
has ``update(n=1, **postfix)`` and ``close()`` (the CLI passes a tqdm bar, or log lines);
a postfix ``epoch=`` or ``job=`` marks a milestone worth a line in a log.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from .. import config as config_mod
from ..config import Config
from ..config import features as feature_config
from ..data.feature_cache import FeatureStore
from ..data.splits import Splits, split_dataset, split_indices, split_record
from ..errors import MlcvError
from ..models import modelfile, registry
from ..models.modelfile import ModelFile
from ..runs import checkpoints, fingerprints
from ..runs import status as run_status
from ..runs.history import HISTORY_COLUMNS, history_rows
from ..runs.rundir import RunDir, command_line
from ..system import memory
from ..system.progress import null_progress
from . import estimates
from .fitting import fit_in_steps
from .inputs import data_dir_for, load_dataset, pin_data_location
from .scoring import Featurizer, batched_predict, split_metrics


def train(cfg: Config, *, progress=None, resume_dir=None, command=None, run=None, dataset=None, state_file=checkpoints.CHECKPOINT,
          state=None, accept_changes=False, requested=None) -> dict:
    """Train the configured model, evaluate it on val/test, and write a run directory.

    ``run``: an existing, empty RunDir to write into (``mlcv cv --refit`` uses RUN/refit/);
    ``dataset``: the already loaded dataset that ``cfg`` names (saves decoding it again);
    ``state``: ``resume_dir``'s ``state_file`` when the caller has already read it;
    ``state_file`` None: the resumed run stopped before training began (train from the start).
    The run directory exists (status running, meta.json "stage" features) from the moment the
    checks pass, before the features are fitted and encoded: an interrupt there marks it
    interrupted and the feature cache keeps the work done, so ``--resume`` goes on from it.
    Returns a summary dict (run_dir, model, accuracies, times). Raises DivergenceError
    (run marked failed) or TrainingInterrupted (checkpoint written, run marked interrupted).
    """
    progress = progress or null_progress
    t0 = time.perf_counter()
    with ExitStack() as held:  # the run's lock, from the moment the run is known until the end
        cfg = pin_data_location(cfg)
        ds = dataset if dataset is not None else load_dataset(cfg)
        load_s = time.perf_counter() - t0
        inputs = fingerprints.inputs(ds, cfg.to_dict())
        inputs["splits"] = split_record(split_indices(cfg, ds))  # evaluate tells a rebuilt split from these
        if resume_dir is not None:  # before any work, and before the run is touched
            run = _held(held, RunDir(resume_dir))
            fingerprints.check(run, inputs, accept=accept_changes, asked=requested or {})
            if requested:  # what the command line asked for becomes the run's config
                run.write_text("config.yaml", config_mod.to_yaml(cfg))
        plan = _plan(cfg, ds)  # every check before a new run directory is made: a mistake leaves none
        if resume_dir is not None:
            before = run.status
            run.update_meta(status="running", resumed=command or command_line())
        else:
            run = _held(held, run or RunDir.create(cfg.output.dir, cfg.output.name or cfg.name))
            run.write_text("config.yaml", config_mod.to_yaml(cfg))
            run.start_meta(command or command_line(), cfg.seed, model=cfg.model.type, dataset=ds.name, inputs=inputs,
                           stage=run_status.FEATURES)
        with run_status.training(run):
            work = _prepare(cfg, plan, progress)
            work.load_s, work.features_s = load_s, time.perf_counter() - t0 - load_s
            if resume_dir is not None:
                with run_status.refusal_keeps_status(run, before):
                    _check_extractor(run, work, accept_changes)
                    state = _resume_state(cfg, run, work, state, state_file)
            else:
                _check_extractor(run, work, accept_changes)  # records the fitted extractor's fingerprint
            run.update_meta(stage="training")
            est, fit_s = _fit(cfg, run, work, state, progress)
            return _finish(cfg, run, est, work, ds, progress, t0, fit_s)


@dataclass
class _Plan:
    """What the checks found: the splits, the unfitted feature chain, whether the model searches raw pixels."""

    splits: Splits
    chain: object
    raw_pixels: bool


@dataclass
class _Work:
    """What training works on: the splits, the fitted features and the rows they give."""

    splits: Splits
    pre: Featurizer
    X_train: object
    X_val: object
    load_s: float = 0.0  # loading the data
    features_s: float = 0.0  # splitting, fitting the feature chain (or reading it from the cache), encoding

    @property
    def num_classes(self):
        return len(self.splits.classes)


def _held(held, run):
    held.enter_context(run.locked())  # the first hold removes a killed writer's temporary files
    return run


def _plan(cfg, ds) -> _Plan:
    """Split, check the model and the features against the data, and estimate the memory."""
    splits = split_dataset(cfg, ds)
    model_type = registry.get(cfg.model.type)
    model_type.check(cfg, len(splits.train_y))
    feature_config.check_chain(cfg, splits.train_x.shape[1:])  # e.g. color_hist on grayscale images
    chain = feature_config.build_chain(cfg)
    raw_pixels = model_type.searches_pixels(chain)
    n_test = len(splits.test_y) if splits.test_y is not None else 0
    memory.check(estimates.train_parts(cfg, chain, len(splits.train_y), len(splits.val_y), n_test, splits.train_x.shape[1:],
                                       len(splits.classes), raw_pixels), "this training run")
    return _Plan(splits, chain, raw_pixels)


def _prepare(cfg, plan, progress) -> _Work:
    """Fit (or read from the cache) the feature chain and encode the training and validation images."""
    splits = plan.splits
    store = FeatureStore(data_dir_for(cfg) / "features")
    chain, X_train = store.fit(plan.chain, splits.train_x, progress)
    pre = Featurizer(chain, store, progress, raw_pixels=plan.raw_pixels)
    if pre.raw_pixels:
        X_train = pre.transform(splits.train_x)
    X_val = pre.transform(splits.val_x, "val") if len(splits.val_y) else None
    return _Work(splits, pre, X_train, X_val)


def _check_extractor(run, work, accept_changes):
    """A learned extractor may come from the cache: the run's own, or refused (recorded when the run has none)."""
    if not work.pre.chain.pixels_only:
        fingerprints.check_features(run, work.pre.chain.fingerprint(), work.pre.store.directory, accept=accept_changes)


def _resume_state(cfg, run, work, state, state_file):
    """The training state to resume from, checked against this run's model and data."""
    if state_file is None:  # stopped before training began: it starts from the beginning
        return None
    if state is None:
        state = checkpoints.read(run, state_file)
    model_type = registry.get(cfg.model.type)
    if model_type.iterative:
        shapes = model_type.param_shapes(cfg, work.X_train.shape[1], work.num_classes)
        problem = checkpoints.problem(state, shapes, cfg.train.optimizer, cfg.train.epochs)
        if problem:
            raise MlcvError(f"{run.file(state_file)} does not fit this run ({problem}); it is damaged or "
                            "from another run: start a new run instead of resuming")
    return state


def _fit(cfg, run, work, state, progress):
    """The fitted estimator and the seconds fitting took."""
    model_type = registry.get(cfg.model.type)
    est = model_type.build(cfg)
    t1 = time.perf_counter()
    if model_type.iterative:
        data = (work.X_train, work.splits.train_y, work.X_val, work.splits.val_y)
        fit_in_steps(cfg, est, run, data, work.num_classes, state, progress)
    else:
        est.fit(work.X_train, work.splits.train_y, num_classes=work.num_classes)
    return est, time.perf_counter() - t1


def _finish(cfg, run, est, work, ds, progress, t0, fit_s):
    """Score every split, then write metrics.json, history.csv, model.npz and the final state."""
    model_type = registry.get(cfg.model.type)
    splits = work.splits
    t_score = time.perf_counter()
    results = _score_splits(model_type, est, work, progress)
    final_loss = last_epoch_loss(est)
    times = {"load_s": work.load_s, "features_s": work.features_s, "fit_s": fit_s, "score_s": time.perf_counter() - t_score,
             "total_s": time.perf_counter() - t0}
    best_epoch = getattr(est, "best_epoch_", None) if getattr(est, "keep_best", False) else None
    metrics_doc = {
        "model": cfg.model.type,
        "classes": splits.classes,
        "final_loss": final_loss,  # the mean over the last epoch's steps
        "last_step_loss": float(est.loss_history_[-1]) if getattr(est, "loss_history_", None) else None,
        **{f"{s}_accuracy": (r["accuracy"] if r else None) for s, r in results.items()},
        "splits": results,
        "times": {k: round(v, 3) for k, v in times.items()},
        "features": _features_doc(work.pre),
        "best_epoch": best_epoch,
    }
    run.write_json("metrics.json", metrics_doc)
    if model_type.iterative:
        run.write_csv("history.csv", history_rows(est), HISTORY_COLUMNS)
    arrays = model_type.arrays(cfg, est, splits)
    modelfile.save(run.file("model.npz"), ModelFile(cfg.model.type, splits.classes, cfg.data.image_size, work.pre.chain,
                                                    config_mod.to_yaml(cfg), arrays))
    if model_type.iterative:
        checkpoints.write_final(run, est)
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
        "times": metrics_doc["times"],
        "features": metrics_doc["features"],
        "best_epoch": best_epoch,
        "epochs": len(getattr(est, "epoch_history_", [])) or None,
        "note": "; ".join(n for n in (*ds.notes, model_type.note(cfg)) if n) or None,
    }


def last_epoch_loss(est):
    """The mean training loss over the last epoch's steps (None for a model that has no loss).

    The last step alone is one minibatch's loss: noisier, and on average higher than the epoch's,
    so it made training look worse than it was. A run that stopped inside an epoch (an iteration
    limit) reports the mean of its last whole epoch, or of the steps it took when it had none."""
    epochs = getattr(est, "epoch_history_", None)
    if epochs:
        return float(epochs[-1]["loss"])
    losses = getattr(est, "loss_history_", None)
    return float(sum(losses) / len(losses)) if losses else None


def _score_splits(model_type, est, work, progress):
    """{split: metrics or None}; a model that keeps its training images is not scored on them."""
    transformed = {"train": work.X_train, "val": work.X_val}
    results = {}
    for split in ("train", "val", "test"):
        x, y = work.splits.get(split)
        if y is None or len(y) == 0 or (split == "train" and model_type.keeps_training_images):
            results[split] = None  # k=1 on its own training set says nothing
            continue
        Xs = transformed.get(split)
        if Xs is None:
            Xs = work.pre.transform(x, split)
        results[split] = split_metrics(y, batched_predict(model_type, est, Xs, progress, f"evaluate {split}"), work.num_classes)
    return results


def _features_doc(pre):
    """What the model saw: the chain, its output size, and what the feature cache saved."""
    chain = pre.chain
    return {
        "steps": [name for name, _ in chain.steps],
        "dim": int(chain.output_dim(chain.image_shape_)),
        "standardized": chain.mean_ is not None,
        "cache": list(pre.store.events),
    }
