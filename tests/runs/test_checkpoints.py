"""runs/checkpoints.py: a training state written, read back without pickles, and checked entry by
entry before a run resumes from it (a checkpoint is input too)."""

import io
import json
import zipfile

import numpy as np
import pytest

from mlcv_cli.core.linear import LinearClassifier
from mlcv_cli.core.mlp import TwoLayerNet
from mlcv_cli.errors import MlcvError
from mlcv_cli.runs import checkpoints
from mlcv_cli.runs.rundir import RunDir

D, H, C = 6, 5, 3
SHAPES = {"W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,)}
EPOCHS = 5


def blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % C
    X = rng.standard_normal((n, D)).astype(np.float32) + 2.0 * np.eye(C, D, dtype=np.float32)[y]
    return X, y


@pytest.fixture
def run(tmp_path):
    return RunDir.create(tmp_path, "x")


def valid_state():
    """A state as TwoLayerNet.get_state() writes it for SHAPES, mid-way through its second epoch, with Adam."""
    rng = np.random.default_rng(0)
    state = {"optimizer": np.array("adam")}
    for name, shape in SHAPES.items():
        state[name] = rng.standard_normal(shape).astype(np.float32)
        state[f"opt_{name}_m"] = np.zeros(shape, np.float32)
        state[f"opt_{name}_v"] = np.zeros(shape, np.float32)
        state[f"opt_{name}_t"] = np.int64(4)
    state.update({
        "epoch": np.int64(1), "iteration": np.int64(4), "batch_pos": np.int64(20), "epoch_steps": np.int64(1),
        "lr": np.float64(1e-3), "epoch_loss_sum": np.float64(1.1),
        "rng_state": np.array(json.dumps(np.random.default_rng(3).bit_generator.state)),
        "loss_history": np.array([1.2, 1.1, 1.0, 1.1]),
        "epoch_history": np.array(json.dumps([{"epoch": 1, "loss": 1.05, "train_acc": 0.5, "val_acc": None}])),
    })
    return {k: np.asarray(v) for k, v in state.items()}  # as np.load gives them: 0-d arrays, not NumPy scalars


# -- write and read ------------------------------------------------------------------------------


@pytest.mark.parametrize("est, shapes", [
    (LinearClassifier(loss="softmax", optimizer="adam", epochs=2, batch_size=20, seed=0), {"W": (D, C), "b": (C,)}),
    (TwoLayerNet(hidden_size=H, optimizer="momentum", epochs=2, batch_size=20, seed=0), SHAPES),
    (LinearClassifier(loss="svm", optimizer="lbfgs", epochs=3, seed=0), {"W": (D, C), "b": (C,)}),
], ids=["softmax-adam", "two-layer-momentum", "svm-lbfgs"])
def test_write_read_round_trip_and_the_state_passes_the_checks(run, est, shapes):
    est.fit(*blobs(), num_classes=C)
    checkpoints.write(run, est)
    state = checkpoints.read(run)
    expected = est.get_state()
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        np.testing.assert_array_equal(state[k], np.asarray(v), err_msg=k)
    assert checkpoints.problem(state, shapes, est.optimizer, est.epochs) is None


def test_write_final_keeps_the_state_and_removes_the_checkpoint(run):
    est = LinearClassifier(loss="softmax", optimizer="sgd", epochs=1, batch_size=20, seed=0).fit(*blobs(), num_classes=C)
    checkpoints.write(run, est)
    assert run.exists(checkpoints.CHECKPOINT)
    checkpoints.write_final(run, est)
    assert not run.exists(checkpoints.CHECKPOINT) and run.exists(checkpoints.FINAL_STATE)
    np.testing.assert_array_equal(checkpoints.read(run, checkpoints.FINAL_STATE)["W"], est.get_state()["W"])
    checkpoints.discard(run)  # nothing left to discard: no error


def test_read_refuses_missing_damaged_and_lying_files_in_one_line(run):
    with pytest.raises(MlcvError, match="has no checkpoint.npz to resume from"):
        checkpoints.read(run)
    np.savez(run.file(checkpoints.CHECKPOINT), **valid_state())
    good = run.file(checkpoints.CHECKPOINT).read_bytes()
    run.file(checkpoints.CHECKPOINT).write_bytes(good[: len(good) // 2])
    with pytest.raises(MlcvError, match="checkpoint.npz is unreadable"):
        checkpoints.read(run)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
    with zipfile.ZipFile(run.file(checkpoints.CHECKPOINT), "w") as z:
        z.writestr("W1.npy", header.getvalue() + bytes(16))  # declares 40 GB in a few bytes
    with pytest.raises(MlcvError, match="unreadable .*declares 40,000,000,000 bytes"):
        checkpoints.read(run)


def test_read_never_unpickles(run):
    np.savez(run.file(checkpoints.CHECKPOINT), W1=np.array([{"a": 1}], dtype=object))
    with pytest.raises(MlcvError, match="unreadable"):
        checkpoints.read(run)


# -- problem(): every kind of damage, named ---------------------------------------------------------


def _with(**changes):
    state = valid_state()
    for k, v in changes.items():
        if v is None:
            state.pop(k)
        else:
            state[k] = np.asarray(v)
    return state


DAMAGE = {
    # name: (state, what the reason says)
    "W1 transposed": (_with(W1=np.zeros((H, D), np.float32)), "W1 should be floats of shape (6, 5), found float32 (5, 6)"),
    "b2 too short": (_with(b2=np.zeros(C - 1, np.float32)), "b2 should be floats of shape (3,)"),
    "W2 as integers": (_with(W2=np.zeros((H, C), np.int64)), "W2 should be floats of shape (5, 3), found int64"),
    "b1 missing": (_with(b1=None), "b1 should be floats of shape (5,), found nothing"),
    "W1 with NaN": (_with(W1=np.full((D, H), np.nan, np.float32)), "W1 holds NaN or infinite values"),
    "b2 infinite": (_with(b2=np.array([0, np.inf, 0], np.float32)), "b2 holds NaN or infinite values"),
    "optimizer slot of the wrong shape": (_with(opt_W2_m=np.zeros((C, H), np.float32)), "opt_W2_m should have shape (5, 3), found (3, 5)"),
    "optimizer slot with NaN": (_with(opt_W1_v=np.full((D, H), np.nan, np.float32)), "opt_W1_v holds NaN or infinite values"),
    "optimizer slot as text": (_with(opt_b1_m=np.array("zeros")), "opt_b1_m is not numeric"),
    "L-BFGS pairs with NaN": (_with(lbfgs_s=np.full((2, 48), np.nan)), "lbfgs_s holds NaN or infinite values"),
    "negative epoch": (_with(epoch=np.int64(-1)), "epoch is negative (-1)"),
    "negative iteration": (_with(iteration=np.int64(-4)), "iteration is negative (-4)"),
    "negative batch position": (_with(batch_pos=np.int64(-20)), "batch_pos is negative (-20)"),
    "negative epoch steps": (_with(epoch_steps=np.int64(-1)), "epoch_steps is negative (-1)"),
    "count as a float": (_with(iteration=np.float64(4.0)), "iteration is missing or not a single whole number"),
    "count as an array": (_with(epoch=np.arange(2)), "epoch is missing or not a single whole number"),
    "count missing": (_with(batch_pos=None), "batch_pos is missing or not a single whole number"),
    "epoch past the end": (_with(epoch=np.int64(EPOCHS + 1)), f"epoch {EPOCHS + 1} is past the run's {EPOCHS} epochs"),
    "lr infinite": (_with(lr=np.float64(np.inf)), "lr is not finite"),
    "loss sum as text": (_with(epoch_loss_sum=np.array("1.1")), "epoch_loss_sum is missing or not a single number"),
    "loss history too short": (_with(loss_history=np.ones(2)), "loss_history has 2 entries for 4 iterations"),
    "loss history as text": (_with(loss_history=np.array(["1.0"] * 4)), "loss_history should be a list of numbers"),
    "rng state not JSON": (_with(rng_state=np.array("{")), "rng_state is not valid JSON"),
    "rng state not a state": (_with(rng_state=np.array('{"bit_generator": "MT19937"}')), "rng_state is not a generator state"),
    "epoch history not JSON": (_with(epoch_history=np.array("[{")), "epoch_history is not valid JSON"),
    "epoch history not records": (_with(epoch_history=np.array("[1, 2]")), "epoch_history is not a list of records"),
    "wrong optimizer": (_with(optimizer=np.array("sgd")), "made with optimizer 'sgd', the run's config says 'adam'"),
    "optimizer missing": (_with(optimizer=None), "optimizer is missing or not a single text"),
}


def test_a_sound_state_has_no_problem():
    assert checkpoints.problem(valid_state(), SHAPES, "adam", EPOCHS) is None


@pytest.mark.parametrize("name", list(DAMAGE))
def test_problem_names_each_kind_of_damage(name):
    state, reason = DAMAGE[name]
    problem = checkpoints.problem(state, SHAPES, "adam", EPOCHS)
    assert problem is not None and reason in problem, problem


def test_problem_survives_a_round_trip_through_a_file(run):
    np.savez(run.file(checkpoints.CHECKPOINT), **DAMAGE["optimizer slot of the wrong shape"][0])
    assert "opt_W2_m" in checkpoints.problem(checkpoints.read(run), SHAPES, "adam", EPOCHS)
