"""The scikit-learn adapter: scikit-learn's own estimator checks, its tools on the shipped
sample, equality with the core, with `mlcv cv` and with `mlcv predict`, and a CLI that
works without scikit-learn."""

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers import ROOT
from helpers import mlcv_uncaught as run
from mlcv_cli import config
from mlcv_cli import data as datasets
from mlcv_cli.models import registry
from mlcv_cli.core.knn import KNearestNeighbor
from mlcv_cli.core.linear import LinearClassifier
from mlcv_cli.core.features.color_hist import ColorHistogram
from mlcv_cli.core.features.hog import HOG
from mlcv_cli.core.features.kmeans import KMeansFeatures as CoreKMeans
from mlcv_cli.core.features.pixels import Pixels as CorePixels
from mlcv_cli.sklearn import (ColorHistogramFeatures, Features, HOGFeatures, KMeansFeatures, KNNClassifier, LinearSVMClassifier,
                              MlcvCV, Pixels, SoftmaxClassifier, load)


# Run in a fresh interpreter: scipy reads SCIPY_ARRAY_API when it is first imported, and
# without it scikit-learn skips its array-API check. Prints one JSON list of results.
CHECK_SCRIPT = """
import json, sys, warnings
from sklearn.utils.estimator_checks import check_estimator
from mlcv_cli.sklearn import (ColorHistogramFeatures, Features, HOGFeatures, KMeansFeatures, KNNClassifier,
                              LinearSVMClassifier, Pixels, SoftmaxClassifier)

# Every estimator at its defaults: they are fast on the checks' small data.
estimators = [KNNClassifier(), SoftmaxClassifier(), LinearSVMClassifier(), Pixels(),
              HOGFeatures(), ColorHistogramFeatures(), KMeansFeatures(), Features()]
out = []
for est in estimators:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = check_estimator(est, on_fail=None, on_skip=None)
    for r in results:
        out.append({"estimator": type(est).__name__, "check": str(r["check_name"]), "status": r["status"],
                    "why": str(r["exception"])[:500]})
    out += [{"estimator": type(est).__name__, "check": "warning", "status": type(w.message).__name__, "why": str(w.message)[:100]}
            for w in caught if "Can't test" in str(w.message)]
print(json.dumps(out))
"""

IMAGE_TRANSFORMERS = {"HOGFeatures", "ColorHistogramFeatures", "KMeansFeatures", "Features"}


def test_check_estimator_passes_every_check():
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    # The image transformers declare image input (the tags of scikit-learn's own PatchExtractor),
    # so check_estimator only clones them and says it cannot test the rest; their contract is
    # checked on images in test_image_transformers_keep_the_estimator_contract.
    images_only = [r for r in results if r["estimator"] in IMAGE_TRANSFORMERS]
    assert sorted((r["estimator"], r["check"], r["status"]) for r in images_only) == sorted(
        [(name, "check_estimator_cloneable", "passed") for name in IMAGE_TRANSFORMERS]
        + [(name, "warning", "SkipTestWarning") for name in IMAGE_TRANSFORMERS])
    results = [r for r in results if r["estimator"] not in IMAGE_TRANSFORMERS]
    assert len({r["estimator"] for r in results}) == 4 and len(results) > 4 * 40
    not_passed = [r for r in results if r["status"] != "passed"]
    try:
        import pandas  # noqa: F401
    except ImportError:
        # scikit-learn's DataFrame checks need pandas (in the test extra); without it they are
        # the only ones allowed to be skipped, and the test says so instead of hiding it.
        pandas_skips = [r for r in not_passed if r["status"] == "skipped" and "pandas" in r["why"]]
        not_passed = [r for r in not_passed if r not in pandas_skips]
        if pandas_skips:
            warnings.warn(f"{len(pandas_skips)} DataFrame checks skipped: pandas is not installed (pip install -e '.[test]')")
    assert not_passed == []


# -- the shipped sample through scikit-learn's tools --------------------------------------


@pytest.fixture(scope="module")
def sample():
    """600 training images (60 per class) and 200 test images of the shipped sample."""
    ds = datasets.load_sample()
    train = np.concatenate([np.flatnonzero(ds.train_y == c)[:60] for c in range(10)])
    test = np.concatenate([np.flatnonzero(ds.test_y == c)[:20] for c in range(10)])
    return ds.train_x[train], ds.train_y[train], ds.test_x[test], ds.test_y[test], np.array(ds.classes)


def flat(images):
    return CorePixels(1 / 255, True).fit(images).transform(images)


def test_cross_val_score_gridsearch_pipeline_and_clone_on_the_sample(sample):
    X_img, y, X_test_img, y_test, classes = sample
    names = classes[y]  # string labels, as a user's data might have them
    pipe = make_pipeline(Pixels(scale=1 / 255), SoftmaxClassifier(epochs=3))
    scores = cross_val_score(pipe, X_img, names, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.15  # chance is 0.10

    X, names = X_img[::2].reshape(len(X_img) // 2, -1), names[::2]
    search = GridSearchCV(Pipeline([("scale", StandardScaler()), ("svm", LinearSVMClassifier(epochs=2))]),
                          {"svm__lr": [1e-4, 1e-3], "svm__reg": [1e-3, 1e-1]}, cv=3, n_jobs=2).fit(X, names)
    assert set(search.classes_) == set(classes) and len(search.cv_results_["params"]) == 4
    # A grid point's mean equals a serial cross_val_score of a clone with the same settings.
    point = search.best_index_
    est = clone(search.estimator).set_params(**search.cv_results_["params"][point])
    assert cross_val_score(est, X, names, cv=3).mean() == search.cv_results_["mean_test_score"][point]
    assert search.score(X_test_img.reshape(len(X_test_img), -1), classes[y_test]) > 0.15

    fitted = KNNClassifier(k=5).fit(flat(X_img), y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "classes_")
    assert np.array_equal(copy.fit(flat(X_img), y).predict(flat(X_test_img)), fitted.predict(flat(X_test_img)))


def test_wrappers_predict_what_the_core_predicts(sample):
    X_img, y, X_test_img, _, classes = sample
    X, Xt = flat(X_img), flat(X_test_img)
    odd = 7 * y + 3  # non-contiguous integer labels map to 0..C-1 and back
    for metric, data in (("l2", X), ("l1", X_img.reshape(len(X_img), -1))):  # float32 rows; raw uint8 pixels
        queries = (Xt if metric == "l2" else X_test_img.reshape(len(X_test_img), -1))[::4]  # a strided view
        core = KNearestNeighbor(k=4, metric=metric).fit(data, y, num_classes=10)
        est = KNNClassifier(k=4, metric=metric).fit(data, odd)
        assert np.array_equal(est.classes_, 7 * np.arange(10) + 3) and est.n_features_in_ == 3072
        expected = core.vote_counts(queries)
        assert np.array_equal(est.predict(queries), 7 * np.argmax(expected, axis=1) + 3)
        assert np.array_equal(est.predict_proba(queries), expected / 4)
    for cls, loss in ((SoftmaxClassifier, "softmax"), (LinearSVMClassifier, "svm")):
        est = cls(epochs=2, random_state=11).fit(X, classes[y])
        params = {k: v for k, v in est.get_params().items() if k != "random_state"}
        core = LinearClassifier(loss=loss, seed=11, **params).fit(X, y, num_classes=10)
        assert np.array_equal(est.coef_, core.W_.T) and np.array_equal(est.intercept_, core.b_)
        assert np.array_equal(est.predict(Xt), classes[core.predict(Xt)])
        assert np.array_equal(est.decision_function(Xt), core.decision_function(Xt))
        assert np.array_equal(est.predict_proba(Xt), core.predict_proba(Xt))
        assert est.score(Xt, classes[core.predict(Xt)]) == 1.0
    two = y < 2
    binary = SoftmaxClassifier(epochs=2).fit(X[two], np.where(y[two] == 1, "yes", "no"))
    scores = binary.model_.decision_function(Xt)
    assert np.array_equal(binary.decision_function(Xt), scores[:, 1] - scores[:, 0])
    assert np.array_equal(binary.predict(Xt), np.where(binary.decision_function(Xt) > 0, "yes", "no"))


def test_pixels_is_mlcvs_preprocessing_and_takes_images(sample):
    X_img = sample[0]
    pre = CorePixels(1 / 255, True).fit(X_img)
    px = Pixels(scale=1 / 255).fit(X_img)
    assert np.array_equal(px.transform(X_img), pre.transform(X_img))
    assert np.array_equal(px.transform(X_img.reshape(len(X_img), -1)), pre.transform(X_img))
    assert px.transform(X_img).dtype == np.float32 and px.n_features_in_ == 3072


def test_random_state_is_the_seed():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), np.arange(60) % 3
    a = SoftmaxClassifier(epochs=1, random_state=3).fit(X, y)
    assert a.seed_ == 3 and np.array_equal(a.coef_, SoftmaxClassifier(epochs=1, random_state=3).fit(X, y).coef_)
    assert not np.array_equal(a.coef_, SoftmaxClassifier(epochs=1, random_state=4).fit(X, y).coef_)
    drawn = SoftmaxClassifier(epochs=1, random_state=np.random.RandomState(0)).fit(X, y).seed_
    assert drawn == SoftmaxClassifier(epochs=1, random_state=np.random.RandomState(0)).fit(X, y).seed_
    for bad in (-1, "seven", 1.5):
        with pytest.raises(ValueError, match="random_state"):
            SoftmaxClassifier(random_state=bad).fit(X, y)


def test_sklearn_messages_for_bad_input():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), np.arange(20) % 2
    for est in (KNNClassifier(), SoftmaxClassifier(epochs=1), LinearSVMClassifier(epochs=1), Pixels()):
        bad = X.copy()
        bad[0, 0] = np.nan
        with pytest.raises(ValueError, match="Input X contains NaN"):
            est.fit(bad, y)
        with pytest.raises(ValueError, match="Reshape your data"):
            clone(est).fit(X[:, 0], y)
        with pytest.raises(TypeError, match="dense data is required"):
            clone(est).fit(scipy.sparse.csr_matrix(X), y)
        fitted = clone(est).fit(X, y)
        with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
            (fitted.transform if isinstance(est, Pixels) else fitted.predict)(X[:, :3])


def test_defaults_are_the_configs():
    knn = config.resolve(model_type="knn")
    assert KNNClassifier().get_params() == {"k": knn.model.k, "metric": knn.model.metric,
                                            "max_memory_mb": knn.model.max_memory_mb, "n_jobs": None}
    base = config.Config().preprocess
    assert Pixels().get_params() == {"scale": base.scale, "subtract_mean": base.subtract_mean}
    for cls, model in ((SoftmaxClassifier, "softmax"), (LinearSVMClassifier, "svm")):
        flat_cfg = config.flatten_config(config.resolve(model_type=model))
        used = {k for k in config.KEYS_USED_BY[model] if k.startswith(("model.", "train.")) and k != "train.checkpoint_every"}
        params = cls().get_params()
        assert {k.split(".")[1] for k in used} | {"dtype", "random_state"} == set(params)
        assert all(params[k.split(".")[1]] == flat_cfg[k] for k in used)
        assert params["random_state"] == flat_cfg["seed"] and params["dtype"] == LinearClassifier().dtype


def test_image_transformers_equal_the_core_and_work_in_a_pipeline(sample):
    X_img, y, X_test_img, y_test, classes = sample
    imgs, test = X_img[::3], X_test_img[::4]
    kmeans = dict(num_centroids=16, patch_size=5, num_patches=3000, iterations=3)
    cases = [(HOGFeatures(cell_size=8), HOG(cell_size=8)), (ColorHistogramFeatures(bins=6), ColorHistogram(bins=6)),
             (KMeansFeatures(random_state=4, **kmeans), CoreKMeans(seed=4, **kmeans))]
    for est, core in cases:
        assert np.array_equal(est.fit(imgs).transform(test), core.fit(imgs).transform(test))
        assert len(est.get_feature_names_out()) == core.output_dim((32, 32, 3)) and est.n_features_in_ == 3072
    chain = Features(steps=[("hog", {"cell_size": 8}), ("color_hist", {"bins": 6})]).fit(imgs)
    assert np.array_equal(chain.transform(test), chain.extractor_.transform(test))
    assert chain.transform(test).shape == (len(test), HOG(cell_size=8).output_dim((32, 32, 3)) + 6)

    # Pooled k-means codes run to the hundreds: standardised (as mlcv's feature chain does) the SVM learns.
    model = Pipeline([("features", KMeansFeatures(**kmeans)), ("scale", StandardScaler()), ("svm", LinearSVMClassifier(epochs=5))])
    assert model.fit(X_img[::2], classes[y[::2]]).score(X_test_img, classes[y_test]) > 0.15
    assert clone(model).get_params()["features__num_centroids"] == 16


def test_image_transformers_keep_the_estimator_contract(sample):
    imgs = sample[0][:40]
    rows = imgs.reshape(len(imgs), -1)
    for est in (HOGFeatures(cell_size=8), ColorHistogramFeatures(), Features(),
                KMeansFeatures(num_centroids=4, patch_size=4, num_patches=500, iterations=2)):
        fitted = clone(est).fit(imgs)
        out = fitted.transform(imgs)
        assert out.dtype == np.float32 and np.array_equal(clone(est).fit_transform(imgs), out)
        assert np.array_equal(fitted.fit(imgs).transform(imgs), out)  # idempotent
        # Order and subsets: k-means codes come from float32 matrix products whose blocking
        # follows the batch, so they agree to float32 rounding, not bit for bit.
        np.testing.assert_allclose(fitted.transform(imgs[::-1][:7]), out[::-1][:7], rtol=1e-5, atol=1e-6)
        assert np.array_equal(pickle.loads(pickle.dumps(fitted)).transform(imgs), out)
        as_rows = clone(est).set_params(image_shape=(32, 32, 3)).fit(rows)
        assert np.array_equal(as_rows.transform(rows), out) and np.array_equal(as_rows.transform(imgs), out)
        assert np.array_equal(clone(est).fit(imgs.astype(np.float64)).transform(imgs.astype(np.int32)), out)
        with pytest.raises(NotFittedError):
            clone(est).transform(imgs)
        with pytest.raises(ValueError, match="no image shape"):
            clone(est).fit(rows)
        with pytest.raises(ValueError, match="X has 3072 features, but .* is expecting 768"):
            clone(est).fit(imgs[:, :16, :16]).transform(rows)
        bad = imgs.astype(np.float64)
        bad[0, 0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="Input X contains NaN"):
            clone(est).fit(bad)
        for wrong in (imgs + 0.5, imgs * 2.0):
            with pytest.raises(ValueError, match="integers 0..255"):
                clone(est).fit(wrong)
        with pytest.raises(ValueError, match="Negative values"):
            clone(est).fit(imgs.astype(np.int16) - 1)


# -- the same numbers as the CLI ------------------------------------------------------------


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, sample):
    """An image folder (train: 40 per class, test: 5 per class) cut from the sample, as PNG."""
    X_img, y, X_test_img, y_test, classes = sample
    root = tmp_path_factory.mktemp("folder") / "cifar-bit"
    for split, images, labels, per_class in (("train", X_img, y, 40), ("test", X_test_img, y_test, 5)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i, j in enumerate(np.flatnonzero(labels == c)[:per_class]):
                Image.fromarray(images[j]).save(root / split / name / f"{i:03d}.png")
    return root


def test_gridsearch_with_mlcvs_folds_and_seeds_equals_mlcv_cv(image_folder, tmp_path):
    grid = {"train.lr": [1e-3, 1e-2], "model.reg": [1e-4, 1e-1]}
    result = run("cv", "--model", "softmax", "--folds", "3", "--json",
                 "--set", "data.dataset=folder", "--set", f"data.path={image_folder}", "--set", "data.num_val=0",
                 "--set", "train.epochs=3", "--set", f"output.dir={tmp_path}", "--set", f"data.dir={tmp_path / 'data'}",
                 *[a for key, values in grid.items() for a in ("--grid", f"{key}={','.join(map(str, values))}")])
    assert result.exit_code == 0, result.output
    cli_means = {(s["params"]["train.lr"], s["params"]["model.reg"]): s["mean"] for s in json.loads(result.stdout)["summary"]}

    ds, _ = datasets.load_folder(image_folder, size=32)  # what `mlcv cv` read, in its order
    cv = MlcvCV(grid, n_folds=3, seed=0)
    model = make_pipeline(Pixels(scale=1 / 255), SoftmaxClassifier(epochs=3, random_state=cv))
    search = GridSearchCV(model, cv.param_grid("softmaxclassifier"), cv=cv, n_jobs=2)
    search.fit(ds.train_x, ds.train_y, **cv.fit_params(ds.train_y, "softmaxclassifier"))
    sk_means = {(p["softmaxclassifier__lr"], p["softmaxclassifier__reg"]): m
                for p, m in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])}
    assert len(sk_means) == 4 and sk_means == cli_means
    assert len(set(sk_means.values())) > 1  # the grid points really differ
    # GridSearchCV's refit trains on every fold with the run's seed, as `mlcv cv --refit` does.
    assert search.best_estimator_[-1].seed_ == 0

    with pytest.raises(ValueError, match="cv_fold"):
        clone(model).fit(ds.train_x, ds.train_y)


@pytest.mark.parametrize("model, features", [("knn", None), ("svm", None), ("softmax", None), ("mlp", None),
                                             ("softmax", "[{type: hog, cell_size: 8}, {type: color_hist, bins: 6}]")])
def test_load_predicts_what_mlcv_predict_prints(model, features, image_folder, tmp_path, sample):
    extra = ["--set", f"features={features}"] if features else []
    result = run("train", "--model", model, "--json", "--set", "data.dataset=folder", "--set", f"data.path={image_folder}",
                 "--set", "data.num_val=50", "--set", "train.epochs=2", *(["--set", "model.k=3"] if model == "knn" else []), "--set", f"output.dir={tmp_path}",
                 "--set", f"data.dir={tmp_path / 'data'}", *extra)
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    files = [tmp_path / f"q{i}.png" for i in range(12)]
    for f, image in zip(files, sample[2][::16]):
        Image.fromarray(image).save(f)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (45, 60, 3), dtype=np.uint8)).save(files[-1])  # resized
    printed = run("predict", run_dir, *files, "--top", "10", "--json")
    assert printed.exit_code == 0, printed.output
    rows = json.loads(printed.stdout)["predictions"]

    est = load(run_dir)
    images = np.stack([datasets.read_image(f, size=32) for f in files])
    assert list(est.predict(images)) == [row["top"][0]["class"] for row in rows]
    key = registry.get(model).score_kind
    values = {"votes": lambda: est.predict_proba(images) * 3, "probability": lambda: est.predict_proba(images),
              "score": lambda: est.decision_function(images)}[key]()
    for row, v in zip(rows, values):
        for entry in row["top"]:
            assert v[list(est.classes_).index(entry["class"])] == pytest.approx(entry[key], rel=1e-6)
    assert est[-1].get_params()["k" if model == "knn" else "epochs"] == (3 if model == "knn" else 2)
    if model != "knn":
        steps = [name for name, _ in est[0].get_params()["steps"]]
        assert steps == (["hog", "color_hist"] if features else ["pixels"])


# -- the CLI without scikit-learn -------------------------------------------------------------

NO_SKLEARN_SCRIPT = """
import importlib.abc, inspect, json, sys

class NoSklearn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoSklearn())
import mlcv_cli, mlcv_cli.cli.app
from click.testing import CliRunner

folder, out = sys.argv[1], sys.argv[2]
data = ["--set", "data.dataset=folder", "--set", f"data.path={folder}", "--set", f"output.dir={out}"]
codes = {}

def run(name, *args):
    # stderr apart on every click (before 8.2 CliRunner mixes it into stdout unless told not to)
    separate = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters else {}
    r = CliRunner(**separate).invoke(mlcv_cli.cli.app.cli, list(args), prog_name="mlcv")
    codes[name] = (r.exit_code, r.output[-300:])
    return r

for cmd in sorted(mlcv_cli.cli.app.cli.commands):  # every command, including ones added later
    run(cmd + " --help", cmd, "--help")
train = run("train", "train", "--model", "softmax", "--json", "--set", "train.epochs=1", "--set", "data.num_val=20", *data)
run_dir = json.loads(train.stdout)["run_dir"]
run("cv", "cv", "--model", "knn", "--folds", "2", "--grid", "model.k=1,3", "--json", "--set", "data.num_val=20", *data)
run("evaluate", "evaluate", run_dir, "--json")
run("predict", "predict", run_dir, folder + "/test/cat/000.png", "--json")
run("gradcheck", "gradcheck", "--model", "svm", "--checks", "2")
run("plot", "plot", run_dir)
run("download folder", "download", "folder", folder, "--name", "bits", "--data-dir", out + "/data")
run("runs", "runs", out, "--json")
run("runs diff", "runs", "diff", run_dir, run_dir)
try:
    import mlcv_cli.sklearn
    codes["import mlcv_cli.sklearn"] = (0, "imported")
except ImportError as exc:
    codes["import mlcv_cli.sklearn"] = (1, str(exc))
codes["sklearn loaded"] = (int(any(m.split(".")[0] == "sklearn" for m in sys.modules)), "")
print(json.dumps(codes))
"""


def test_cli_works_without_scikit_learn(image_folder, tmp_path):
    proc = subprocess.run([sys.executable, "-c", NO_SKLEARN_SCRIPT, str(image_folder), str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    expected_ok = [name for name in codes if name not in ("import mlcv_cli.sklearn", "sklearn loaded")]
    ran = {"train", "cv", "evaluate", "predict", "gradcheck", "plot", "download folder", "runs", "runs diff"}
    assert ran <= set(expected_ok) and {n for n in expected_ok if n.endswith(" --help")} >= {c + " --help" for c in ran if " " not in c}
    assert {name: codes[name] for name in expected_ok if codes[name][0] != 0} == {}
    code, message = codes["import mlcv_cli.sklearn"]
    assert code == 1 and "pip install 'mlcv[sklearn]'" in message
    assert codes["sklearn loaded"][0] == 0
