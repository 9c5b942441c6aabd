"""Grayscale end to end: MNIST-format files -> download -> train (kNN, softmax) -> cv -> evaluate -> predict, plots."""

import gzip
import io
import json
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

from helpers import mlcv_uncaught as run
from mlcv_cli.models import modelfile
from mlcv_cli.data import cifar100, idx


def digit_like(n, rng, side=28):
    """Images whose class (0..9) is the row of a bright horizontal bar, plus noise."""
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    for i, c in enumerate(labels):
        row = 2 + c * (side - 4) // 10
        images[i, row : row + 2, 3:-3] = 255
    return images, labels


def idx_gz(array):
    array = np.asarray(array, np.uint8)
    return gzip.compress(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes(), mtime=0)


@pytest.fixture(scope="module")
def mnist_project(tmp_path_factory):
    """A data dir holding an MNIST-format dataset imported with --archive, and one trained run of each model."""
    root = tmp_path_factory.mktemp("gray")
    rng = np.random.default_rng(0)
    (root / "src").mkdir()
    arrays = dict(zip(("train_x", "train_y"), digit_like(300, rng)))
    arrays.update(zip(("test_x", "test_y"), digit_like(60, rng)))
    for key, name in idx.FILES.items():
        (root / "src" / name).write_bytes(idx_gz(arrays[key]))
    result = run("download", "mnist", "--archive", root / "src", "--data-dir", root / "data", "--no-verify")
    assert result.exit_code == 0, result.output
    common = ["--set", "data.dataset=mnist", "--set", "data.num_val=50", "--data-dir", root / "data",
              "--set", f"output.dir={root / 'runs'}", "--json"]
    runs = {}
    for model, extra in (("knn", ["--set", "model.k=1"]), ("softmax", ["--set", "train.epochs=5", "--set", "train.lr=0.05"])):
        r = run("train", "--model", model, *extra, *common, *(["--plot"] if model == "softmax" else []))
        assert r.exit_code == 0, r.output
        runs[model] = json.loads(r.stdout)
    return root, runs


def test_models_store_one_channel(mnist_project):
    root, runs = mnist_project
    knn = modelfile.load(f"{runs['knn']['run_dir']}/model.npz")
    assert knn.channels == 1 and knn.image_size == 28
    assert knn.arrays["X_train"].shape == (250, 28 * 28) and knn.arrays["X_train"].dtype == np.uint8  # no tripling
    soft = modelfile.load(f"{runs['softmax']['run_dir']}/model.npz")
    assert soft.arrays["W"].shape == (28 * 28, 10) and soft.chain.image_shape_ == (28, 28, 1)
    assert runs["knn"]["test_accuracy"] > 0.8 and runs["softmax"]["test_accuracy"] > 0.5  # the bar's row is easy to see
    for model in ("knn", "softmax"):
        meta = json.loads((root / "runs" / runs[model]["run_dir"].split("/")[-1] / "meta.json").read_text())
        assert meta["dataset"] == "mnist"
    assert (root / "runs" / runs["softmax"]["run_dir"].split("/")[-1] / "templates.png").exists()


def test_evaluate_with_neighbours_plot_and_cv(mnist_project):
    root, runs = mnist_project
    r = run("evaluate", runs["knn"]["run_dir"], "--data-dir", root / "data", "--json", "--plot")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["accuracy"] == runs["knn"]["test_accuracy"] and doc["classes"] == [str(d) for d in range(10)]
    assert any(p.endswith("neighbors-test.png") for p in doc["plots"])
    r = run("cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", "--set", "data.dataset=mnist", "--set", "data.num_val=0",
            "--set", "data.num_train=200", "--data-dir", root / "data", "--set", f"output.dir={root / 'runs'}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["best_mean"] > 0.8


def test_predict_a_colour_png_with_a_grayscale_model(mnist_project, tmp_path):
    _, runs = mnist_project
    # A digit "drawn" in colour at another size: the red bar of class 7 on a blue background.
    im = Image.new("RGB", (56, 56), (0, 0, 90))
    row = 2 + 7 * 24 // 10
    im.paste((255, 255, 255), (6, 2 * row, 50, 2 * row + 4))
    im.save(tmp_path / "seven.png")
    Image.fromarray(np.asarray(im.convert("L"))).save(tmp_path / "seven-gray.png")
    for model in ("knn", "softmax"):
        r = run("predict", runs[model]["run_dir"], tmp_path / "seven.png", tmp_path / "seven-gray.png", "--json", "--top", "1")
        assert r.exit_code == 0, r.output
        top = [p["top"][0]["class"] for p in json.loads(r.stdout)["predictions"]]
        assert top == ["7", "7"], (model, top)


def test_hundred_classes_top_confusions(tmp_path):
    rng = np.random.default_rng(3)
    records = {"train": 400, "test": 100}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, n in records.items():
            fine = rng.integers(0, 100, n)
            data = cifar100.encode_records(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), fine // 5, fine)
            info = tarfile.TarInfo(cifar100.MEMBERS[split])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for kind, member in cifar100.NAME_MEMBERS.items():
            text = "".join(f"{kind}_{i}\n" for i in range(cifar100.N_CLASSES[kind])).encode()
            info = tarfile.TarInfo(member)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    archive = tmp_path / cifar100.ARCHIVE_NAME
    archive.write_bytes(buf.getvalue())
    cifar100.prepare_cifar100(tmp_path / "data", archive=archive, md5=None, records=records)
    common = ["--set", "data.dataset=cifar100", "--set", "data.num_val=50", "--data-dir", tmp_path / "data", "--set", f"output.dir={tmp_path / 'runs'}"]
    r = run("train", "--model", "knn", *common, "--json", "--plot")
    assert r.exit_code == 0, r.output
    run_dir = json.loads(r.stdout)["run_dir"]
    assert (tmp_path / "runs").exists() and any(p.endswith("confusion-test.png") for p in json.loads(r.stdout)["plots"])
    r = run("evaluate", run_dir, "--data-dir", tmp_path / "data")
    assert r.exit_code == 0, r.output
    assert "largest confusions (100 classes" in r.stdout and "fine_" in r.stdout
    coarse = run("train", "--model", "softmax", *common, "--set", "data.labels=coarse", "--set", "train.epochs=1", "--json")
    assert coarse.exit_code == 0, coarse.output
    assert json.loads(coarse.stdout)["dataset"] == "cifar100-coarse"
    assert modelfile.load(json.loads(coarse.stdout)["run_dir"] + "/model.npz").classes[0] == "coarse_0"
    bad = run("train", "--model", "knn", "--set", "data.labels=coarse", "--json")
    assert bad.exit_code == 2 and "coarse labels exist only for cifar100" in bad.stderr
