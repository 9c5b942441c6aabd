"""runs/status.py: one context manager records how the work on a run ended in its meta.json."""

import pytest

from mlcv_cli.errors import MlcvError, TrainingInterrupted
from mlcv_cli.runs import status
from mlcv_cli.runs.checkpoints import CHECKPOINT
from mlcv_cli.runs.rundir import RunDir
from mlcv_cli.system.signals import Terminated


class Reported(MlcvError):
    """What the callbacks below turn an interrupt or a MemoryError into."""


@pytest.fixture
def run(tmp_path):
    run = RunDir.create(tmp_path / "runs", "x")
    run.start_meta("mlcv train", seed=0)
    return run


def recorded(run, seen):
    """status.recorded with callbacks that note what they were given and change nothing on disk."""

    def interrupted(exc):
        seen.append(exc)
        return Reported("interrupted")

    def out_of_memory():
        seen.append("out of memory")
        return Reported("out of memory")

    return status.recorded(run, interrupted=interrupted, out_of_memory=out_of_memory)


def test_a_normal_end_is_done(run):
    with recorded(run, []):
        pass
    meta = run.read_meta()
    assert meta["status"] == "done" and meta["ended"] and "error" not in meta


@pytest.mark.parametrize("signal_exc", [KeyboardInterrupt(), Terminated()], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_is_interrupted_and_raises_the_callbacks_error(run, signal_exc):
    seen = []
    with pytest.raises(Reported, match="interrupted") as err:
        with recorded(run, seen):
            raise signal_exc
    assert seen == [signal_exc]  # the callback got the interrupt itself
    assert err.value.__suppress_context__  # reported in its place, not as a chain
    meta = run.read_meta()
    assert meta["status"] == "interrupted" and meta["ended"] and "error" not in meta


def test_a_memory_error_is_left_to_the_out_of_memory_callback(run):
    seen = []
    with pytest.raises(Reported, match="out of memory"):
        with recorded(run, seen):
            raise MemoryError
    assert seen == ["out of memory"] and run.read_meta()["status"] == "running"  # the callback decides


@pytest.mark.parametrize("exc, error", [(ValueError("bad value"), "bad value"), (RuntimeError(), "RuntimeError"),
                                        (MlcvError("disk full"), "disk full")])
def test_any_other_exception_is_failed_with_its_text_and_goes_on(run, exc, error):
    with pytest.raises(type(exc)) as err:
        with recorded(run, []):
            raise exc
    assert err.value is exc
    meta = run.read_meta()
    assert meta["status"] == "failed" and meta["error"] == error and meta["ended"]


def test_an_error_that_names_its_run_was_recorded_where_it_was_raised_and_passes_untouched(run):
    run.update_meta(status="interrupted", note="written where the stop happened")
    before = run.file("meta.json").read_bytes()
    exc = TrainingInterrupted("stopped after iteration 3; checkpoint saved")
    exc.run_dir = str(run.path)
    with pytest.raises(TrainingInterrupted) as err:
        with recorded(run, []):
            raise exc
    assert err.value is exc and run.file("meta.json").read_bytes() == before


def test_a_damaged_meta_does_not_hide_the_error(run):
    run.file("meta.json").write_text("[")
    with pytest.raises(ValueError, match="the real error"):
        with recorded(run, []):
            raise ValueError("the real error")


# -- the training callbacks: resumable or not, by whether a checkpoint exists ---------------------


@pytest.mark.parametrize("checkpoint", [True, False], ids=["with-checkpoint", "no-checkpoint"])
@pytest.mark.parametrize("signal_exc, code", [(KeyboardInterrupt(), 130), (Terminated(), 143)], ids=["ctrl-c", "sigterm"])
def test_training_interrupted_says_whether_it_can_resume(run, checkpoint, signal_exc, code):
    if checkpoint:
        run.file(CHECKPOINT).write_bytes(b"a checkpoint")
    with pytest.raises(TrainingInterrupted) as err:
        with status.training(run):
            raise signal_exc
    assert err.value.exit_code == code and err.value.run_dir == str(run.path)
    if checkpoint:
        assert f"the last checkpoint is kept. Resume with: mlcv train --resume {run.path}" in str(err.value)
    else:
        assert "before any checkpoint was written: nothing to resume" in str(err.value)
    assert run.read_meta()["status"] == "interrupted"


@pytest.mark.parametrize("checkpoint, recorded_as", [(True, "interrupted"), (False, "failed")])
def test_training_out_of_memory_is_resumable_only_from_a_checkpoint(run, checkpoint, recorded_as):
    if checkpoint:
        run.file(CHECKPOINT).write_bytes(b"a checkpoint")
    with pytest.raises(MlcvError, match="ran out of memory") as err:
        with status.training(run):
            raise MemoryError
    assert err.value.run_dir == str(run.path) and ("mlcv train --resume" in str(err.value)) == checkpoint
    meta = run.read_meta()
    assert meta["status"] == recorded_as and meta["error"] == "out of memory"
