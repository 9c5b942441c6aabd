"""data/folder.py: image folders and .zip files, loaded directly or imported into the data dir."""

import io
import os
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from helpers import SIDE, make_folder
from mlcv_cli.data import import_folder, load_folder, load_imported
from mlcv_cli.errors import DataError

# (split, class, file, mode, size, colour)
IMAGES = [
    ("train", "dog", "a.png", "RGB", (10, 10), (250, 0, 0)),
    ("train", "dog", "b.jpg", "L", (64, 48), (128, 128, 128)),
    ("train", "cat", "c.PNG", "RGBA", (32, 32), (0, 250, 0)),
    ("train", "cat", "d.jpeg", "RGB", (20, 40), (0, 0, 250)),
    ("train", "bird", "e.png", "P", (33, 31), (250, 250, 0)),
    ("test", "cat", "f.png", "L", (8, 8), (60, 60, 60)),
    ("test", "dog", "g.jpg", "RGB", (100, 50), (250, 0, 0)),
]


def write_image(path, mode, size, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size, colour).convert(mode)
    if path.suffix.lower() in (".jpg", ".jpeg") and mode not in ("RGB", "L"):
        im = im.convert("RGB")
    im.save(path, "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    for split, cls, name, mode, size, colour in IMAGES:
        write_image(root / split / cls / name, mode, size, colour)
    (root / "train" / "dog" / "notes.txt").write_text("not an image, ignored")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "README.md").write_text("ignored")
    return root


def zip_folder(root, dest, prefix="", extra=()):
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(root).as_posix())
        for name, data in extra:
            zf.writestr(name, data)
    return dest


def check_pets(ds, skipped):
    assert ds.classes == ["bird", "cat", "dog"]
    assert ds.train_x.shape == (5, 32, 32, 3) and ds.train_x.dtype == np.uint8
    assert ds.train_y.dtype == np.int64
    # Sorted by path: train/bird/e, train/cat/c, train/cat/d, train/dog/a, train/dog/b
    assert ds.train_y.tolist() == [0, 1, 1, 2, 2]
    assert ds.test_y.tolist() == [1, 2]
    assert ds.test_x.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(ds.train_x[3].reshape(-1, 3).mean(0), [250, 0, 0], atol=2)
    np.testing.assert_allclose(ds.train_x[1].reshape(-1, 3).mean(0), [0, 250, 0], atol=2)
    assert skipped == []


def test_directory(folder):
    ds, skipped = load_folder(folder)
    check_pets(ds, skipped)
    assert ds.name == "pets" and ds.source == str(folder)


def test_zip(folder, tmp_path):
    path = zip_folder(folder, tmp_path / "pets.zip", extra=[("__MACOSX/train/cat/._c.PNG", b"junk"),
                                                             ("train/cat/.hidden.png", b"junk")])
    check_pets(*load_folder(path))


def test_zip_with_wrapper_directory(folder, tmp_path):
    check_pets(*load_folder(zip_folder(folder, tmp_path / "wrapped.zip", prefix="pets/")))


def test_val_used_when_no_test(folder):
    (folder / "test").rename(folder / "val")
    ds, _ = load_folder(folder)
    assert ds.test_y.tolist() == [1, 2]


def test_no_test_split(folder):
    import shutil

    shutil.rmtree(folder / "test")
    ds, _ = load_folder(folder, size=16)
    assert ds.test_x is None and ds.test_y is None and ds.train_x.shape == (5, 16, 16, 3)


def test_test_classes_must_be_subset(folder):
    write_image(folder / "test" / "horse" / "h.png", "RGB", (4, 4), (1, 1, 1))
    with pytest.raises(DataError, match="horse"):
        load_folder(folder)


def test_missing_train(tmp_path):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="train/<class>/<image>.*found: cat"):
        load_folder(tmp_path / "photos")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nowhere")


def test_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_text("nope")
    with pytest.raises(DataError, match="neither a directory nor a .zip"):
        load_folder(tmp_path / "x.zip")


def add_corrupt(folder):
    (folder / "train" / "cat" / "empty.png").write_bytes(b"")
    (folder / "train" / "dog" / "text.png").write_text("just text")
    good = (folder / "train" / "dog" / "b.jpg").read_bytes()
    (folder / "test" / "dog" / "cut.jpg").write_bytes(good[: len(good) // 3])


@pytest.mark.parametrize("as_zip", [False, True])
def test_corrupt_files_named(folder, tmp_path, as_zip):
    add_corrupt(folder)
    path = zip_folder(folder, tmp_path / "pets.zip") if as_zip else folder
    with pytest.raises(DataError) as info:
        load_folder(path)
    message = str(info.value)
    assert "3 unreadable" in message and "--skip-bad" in message
    for name in ("empty.png", "text.png", "cut.jpg"):
        assert name in message


@pytest.mark.parametrize("as_zip", [False, True])
def test_skip_bad(folder, tmp_path, as_zip):
    add_corrupt(folder)
    path = zip_folder(folder, tmp_path / "pets.zip") if as_zip else folder
    ds, skipped = load_folder(path, skip_bad=True)
    check_pets(ds, [])
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in skipped) == ["cut.jpg", "empty.png", "text.png"]
    assert all(reason for _, reason in skipped)


@pytest.mark.parametrize("evil", ["../evil.png", "train/cat/../../../evil.png", "/abs/train/cat/x.png"])
def test_zip_escaping_member_refused(folder, tmp_path, evil):
    path = zip_folder(folder, tmp_path / "evil.zip")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(zipfile.ZipInfo(evil), b"x")
    with pytest.raises(DataError, match="points outside"):
        load_folder(path)


def test_bomb_in_folder_named(folder, png_header_only):
    (folder / "train" / "cat" / "bomb.png").write_bytes(png_header_only(30000, 30000))
    with pytest.raises(DataError, match="bomb.png"):
        load_folder(folder)


def test_import_round_trip(folder, tmp_path):
    data_dir = tmp_path / "data"
    result = import_folder(folder, data_dir, "pets", progress=False)
    assert result["n_train"] == 5 and result["n_test"] == 2
    assert result["classes"] == ["bird", "cat", "dog"] and result["skipped"] == []
    assert result["path"] == str(data_dir / "folders" / "pets")
    ds = load_imported(data_dir, "pets")
    fresh, _ = load_folder(folder)
    np.testing.assert_array_equal(ds.train_x, fresh.train_x)
    np.testing.assert_array_equal(ds.test_y, fresh.test_y)
    assert ds.classes == fresh.classes and ds.name == "pets"


def test_import_no_test_split(folder, tmp_path):
    import shutil

    shutil.rmtree(folder / "test")
    import_folder(folder, tmp_path, "pets", progress=False)
    ds = load_imported(tmp_path, "pets")
    assert ds.test_x is None and len(ds.train_y) == 5


@pytest.mark.parametrize("name", ["../x", "a/b", "", "..", "with space"])
def test_import_name_must_be_safe(folder, tmp_path, name):
    with pytest.raises(DataError, match="not allowed"):
        import_folder(folder, tmp_path, name, progress=False)
    assert not (tmp_path / "folders").exists()


def test_load_imported_missing(tmp_path):
    with pytest.raises(DataError, match="no imported dataset 'pets'"):
        load_imported(tmp_path, "pets")


def test_import_with_progress_bar(folder, tmp_path, capsys):
    import_folder(folder, tmp_path, "pets")  # progress defaults to on, on stderr
    assert capsys.readouterr().out == ""


def test_load_sample(folder, tmp_path, monkeypatch):
    import mlcv_cli.data as datasets

    monkeypatch.setattr(datasets, "SAMPLE_ZIP", zip_folder(folder, tmp_path / "cifar10-sample.zip"))
    ds = datasets.load_sample()
    assert ds.name == "sample" and ds.classes == ["bird", "cat", "dog"] and ds.train_x.shape == (5, 32, 32, 3)
    monkeypatch.setattr(datasets, "SAMPLE_ZIP", tmp_path / "gone.zip")
    with pytest.raises(DataError, match="sample dataset is missing"):
        datasets.load_sample()


# -- names and paths: duplicate zip members, links out of the folder, leftovers of killed imports -------------


def two_classes(root):
    """ROOT/train/{a,b}/0..3.png: 8x8 noise, no test split."""
    return make_folder(root, ("a", "b"), n_train=4, n_test=0, noise=256, tint=0)


def test_duplicate_zip_members_are_refused(tmp_path):
    folder = two_classes(tmp_path / "f")
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, p.relative_to(folder).as_posix())
        zf.write(folder / "train" / "a" / "0.png", "train/a/1.png")
    with pytest.raises(DataError, match="appears twice"):
        load_folder(path, size=SIDE)


def test_links_out_of_the_folder_are_refused_links_inside_are_fine(tmp_path):
    folder = two_classes(tmp_path / "f")
    secret = two_classes(tmp_path / "elsewhere")
    os.symlink(secret / "train" / "a" / "0.png", folder / "train" / "a" / "linked.png")
    with pytest.raises(DataError, match="outside the folder"):
        load_folder(folder, size=SIDE)
    (folder / "train" / "a" / "linked.png").unlink()
    os.symlink(secret / "train" / "b", folder / "train" / "c")
    with pytest.raises(DataError, match="outside the folder"):
        load_folder(folder, size=SIDE)
    (folder / "train" / "c").unlink()
    os.symlink(folder / "train" / "a" / "0.png", folder / "train" / "a" / "again.png")
    ds, _ = load_folder(folder, size=SIDE)
    assert len(ds.train_y) == 9


def test_an_import_removes_what_killed_imports_left_behind(tmp_path):
    folder = two_classes(tmp_path / "f")
    cache = tmp_path / "data" / "folders" / "x"
    import_folder(folder, tmp_path / "data", "x", size=SIDE, progress=False)
    (cache / ".train_x-0badcafe.npy.k1ll3d.tmp").write_bytes(b"half" * 1000)
    (cache / "train_x-0badcafe.npy").write_bytes(b"orphan")
    import_folder(folder, tmp_path / "data", "x", size=SIDE, progress=False)
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 3 and names[0] == "manifest.json", names


def _info_zip_style(path, members):
    """A zip as Info-ZIP on Linux writes it: UTF-8 names without the UTF-8 flag."""
    with zipfile.ZipFile(path, "w") as z:
        for i, (name, data) in enumerate(members.items()):
            z.writestr(f"placeholder{i:02d}".ljust(len(name.encode("utf-8")), "_"), data)
    raw = path.read_bytes()
    for i, name in enumerate(members):
        raw = raw.replace(f"placeholder{i:02d}".ljust(len(name.encode("utf-8")), "_").encode(), name.encode("utf-8"))
    path.write_bytes(raw)


def test_zip_names_are_utf8_when_valid(tmp_path):
    def png(value):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    archive = tmp_path / "pets.zip"
    _info_zip_style(archive, {"train/grün/a.png": png(10), "train/grün/b.png": png(20), "train/öl/c.png": png(30)})
    with zipfile.ZipFile(archive) as z:
        assert not any(i.flag_bits & 0x800 for i in z.infolist()) and "gr├╝n" in z.namelist()[0]
    ds, _ = load_folder(archive, size=8)
    assert ds.classes == ["grün", "öl"] and ds.train_y.tolist() == [0, 0, 1]
