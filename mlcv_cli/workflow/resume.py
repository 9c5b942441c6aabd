"""`mlcv train --resume`: continue an interrupted run, or train a finished one on to more epochs."""

from __future__ import annotations

from .. import config as config_mod
from ..errors import ConfigError, MlcvError, UsageError
from ..models import registry
from ..runs import checkpoints
from ..runs.rundir import RunDir
from ..runs.status import in_features_stage
from .train import train


def resume(run_dir, *, progress=None, command=None, epochs=None, accept_changes=False) -> dict:
    """Continue an interrupted `mlcv train` run from its checkpoint (a run stopped before training
    began: from its features kept in the feature cache); with ``epochs``, train a run
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
    model_type = registry.get(cfg.model.type)
    # Stopped while its features were computed: the feature cache kept that work; training starts from the beginning.
    before_training = status != "done" and in_features_stage(run) and not run.exists(checkpoints.CHECKPOINT)
    if not model_type.iterative and not before_training:
        raise MlcvError(f"{model_type.title or model_type.name} runs have nothing to resume; run `mlcv train` again")
    # A finished run keeps its final state; a newer checkpoint (a continuation interrupted) wins.
    state_file = checkpoints.CHECKPOINT if run.exists(checkpoints.CHECKPOINT) or not run.exists(checkpoints.FINAL_STATE) else checkpoints.FINAL_STATE
    if before_training:
        state_file = None
    elif not run.exists(state_file):
        raise MlcvError(_nothing_to_resume(run, status, cfg, state_file))
    state = None
    if epochs is not None and before_training:
        cfg = config_mod.replace(cfg, {"train.epochs": epochs})  # nothing trained yet: any number of epochs
    elif epochs is not None:
        if cfg.train.optimizer == "random_search":
            raise UsageError("train.optimizer random_search has no epochs to add; start a new run with more train.random_search_tries")
        if status == "done":
            if not run.exists(checkpoints.FINAL_STATE):
                raise MlcvError(f"{run.path} finished without its final training state ({checkpoints.FINAL_STATE}; an older mlcv did not keep it); "
                                f"train a new run with --set train.epochs={epochs}")
        state = checkpoints.read(run, state_file)
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


def _nothing_to_resume(run, status, cfg, state_file):
    """Why a run without a checkpoint cannot resume, from how it ended (meta.json), and what to do."""
    error = run.read_meta().get("error")
    error = error if isinstance(error, str) and error else None
    again = f"start a new run (mlcv train --config {run.file('config.yaml')})"
    if status == "failed":
        fix = (f"; {again} with a lower train.lr" if error and "diverged" in error else f"; fix the cause and {again}")
        return f"{run.path} failed before writing its first checkpoint ({error or 'no reason recorded'}): there is nothing to resume{fix}"
    if cfg.train.checkpoint_every == 0:
        return f"{run.path} has no {state_file} to resume from: it was trained with train.checkpoint_every: 0; {again}"
    if status == "interrupted":
        return f"{run.path} was stopped before writing its first checkpoint: there is nothing to resume; {again}"
    if status == "running":  # we hold the run's lock, so no live process is writing it
        return f"{run.path} was killed before writing its first checkpoint: there is nothing to resume; {again}"
    return f"{run.path} has no {state_file} to resume from (status {status}); {again}"
