import hashlib
import tarfile

import numpy as np
import pytest

from mlcv_cli.data import load_cifar10, prepare_cifar10
from mlcv_cli.data.cifar10 import CLASSES, FOLDER, decode_batch, encode_batch, parse_archive
from mlcv_cli.errors import DataError

RECORDS = 20


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_decode_planes_to_hwc():
    # One record whose R, G and B planes are distinct known ramps.
    r = np.arange(1024, dtype=np.uint8).reshape(32, 32)
    g = (r + 1).astype(np.uint8)
    b = (255 - r).astype(np.uint8)
    record = bytes([7]) + r.tobytes() + g.tobytes() + b.tobytes()
    images, labels = decode_batch(record, 1)
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [7] and labels.dtype == np.int64
    np.testing.assert_array_equal(images[0, :, :, 0], r)
    np.testing.assert_array_equal(images[0, :, :, 1], g)
    np.testing.assert_array_equal(images[0, :, :, 2], b)
    assert images[0, 0, 1].tolist() == [1, 2, 254]  # row 0, column 1


def test_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 5)
    got_images, got_labels = decode_batch(encode_batch(images, labels), 5)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_prepare_from_local_archive_then_cached(tmp_path, cifar_archive):
    path, batches = cifar_archive
    data_dir = tmp_path / "data"
    result = prepare_cifar10(data_dir, archive=path, md5=md5_of(path), progress=False, records_per_batch=RECORDS)
    assert result["status"] == "imported"
    ds = load_cifar10(data_dir)
    assert ds.classes == CLASSES
    assert ds.train_x.shape == (5 * RECORDS, 32, 32, 3) and ds.train_x.dtype == np.uint8
    assert ds.train_y.dtype == np.int64 and ds.test_x.shape == (RECORDS, 32, 32, 3)
    train = [batches[f"{FOLDER}/data_batch_{i}.bin"] for i in range(1, 6)]
    np.testing.assert_array_equal(ds.train_x, np.concatenate([b[0] for b in train]))
    np.testing.assert_array_equal(ds.train_y, np.concatenate([b[1] for b in train]))
    np.testing.assert_array_equal(ds.test_y, batches[f"{FOLDER}/test_batch.bin"][1])
    assert isinstance(ds.train_x, np.memmap)
    # Nothing extracted: only the cache directory was created.
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar10"]
    again = prepare_cifar10(data_dir, archive=path, md5=md5_of(path), progress=False, records_per_batch=RECORDS)
    assert again["status"] == "cached"


def test_force_rebuilds(tmp_path, cifar_archive):
    path, _ = cifar_archive
    kwargs = dict(archive=path, md5=md5_of(path), progress=False, records_per_batch=RECORDS)
    prepare_cifar10(tmp_path, **kwargs)
    assert prepare_cifar10(tmp_path, force=True, **kwargs)["status"] == "imported"


def test_local_archive_md5_mismatch(tmp_path, cifar_archive):
    path, _ = cifar_archive
    with pytest.raises(DataError, match="md5.*expected 0{32}"):
        prepare_cifar10(tmp_path / "data", archive=path, md5="0" * 32, records_per_batch=RECORDS)
    assert not (tmp_path / "data" / "cifar10").exists()


def test_missing_local_archive(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_cifar10(tmp_path, archive=tmp_path / "nope.tar.gz")


def test_load_missing_names_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"mlcv download cifar10.*data.dataset: sample"):
        load_cifar10(tmp_path)


def test_production_size_is_strict(cifar_archive):
    path, _ = cifar_archive  # 20 records per batch, not 10000
    with pytest.raises(DataError, match=r"data_batch_1.bin.*61,460 bytes, expected 30,730,000"):
        parse_archive(path)


def test_wrong_size_batch_refused(tmp_path, make_archive):
    path, _ = make_archive(sizes={f"{FOLDER}/data_batch_3.bin": RECORDS * 3073 - 1})
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=r"data_batch_3.bin.*61,459 bytes, expected 61,460"):
        prepare_cifar10(data_dir, archive=path, md5=None, records_per_batch=RECORDS)
    assert not (data_dir / "cifar10").exists()


def test_missing_member_refused(tmp_path, make_archive):
    _, batches = make_archive()
    del batches[f"{FOLDER}/test_batch.bin"]
    path, _ = make_archive("partial.tar.gz", batches=batches)
    with pytest.raises(DataError, match="lacks .*test_batch.bin"):
        parse_archive(path, records_per_batch=RECORDS)


@pytest.mark.parametrize(
    "member, attrs, match",
    [
        ("../evil", {}, "'..'"),
        (f"{FOLDER}/../../evil.bin", {}, "'..'"),
        ("/tmp/mlcv-evil-abs", {}, "absolute"),
        (f"{FOLDER}/link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "link"),
        (f"{FOLDER}/hard", {"type": tarfile.LNKTYPE, "linkname": f"{FOLDER}/batches.meta.txt"}, "link"),
        (f"{FOLDER}/dev", {"type": tarfile.CHRTYPE}, "device"),
    ],
)
def test_hostile_members_refused(tmp_path, make_archive, add_member, member, attrs, match):
    data = b"" if attrs else b"pwned"
    path, _ = make_archive(extra=lambda tar: add_member(tar, member, data, **attrs))
    data_dir = tmp_path / "data"
    before = set(tmp_path.rglob("*"))
    with pytest.raises(DataError, match=match):
        prepare_cifar10(data_dir, archive=path, md5=None, records_per_batch=RECORDS)
    assert set(tmp_path.rglob("*")) == before  # nothing written, inside or outside data_dir
    assert not (tmp_path.parent / "evil").exists()


def test_oversized_other_member_refused(make_archive, add_member):
    path, _ = make_archive(extra=lambda tar: add_member(tar, f"{FOLDER}/readme.html", b"x" * (2 << 20)))
    with pytest.raises(DataError, match="readme.html.*bytes"):
        parse_archive(path, records_per_batch=RECORDS)


def test_label_out_of_range_refused(make_archive):
    _, batches = make_archive()
    images, labels = batches[f"{FOLDER}/data_batch_2.bin"]
    labels = labels.copy()
    labels[0] = 10
    batches[f"{FOLDER}/data_batch_2.bin"] = (images, labels)
    path, _ = make_archive("bad-label.tar.gz", batches=batches)
    with pytest.raises(DataError, match="label 10"):
        parse_archive(path, records_per_batch=RECORDS)


def test_not_a_tar(tmp_path):
    bogus = tmp_path / "cifar.tar.gz"
    bogus.write_bytes(b"<html>mirror error page</html>")
    with pytest.raises(DataError, match="damaged or not a tar"):
        parse_archive(bogus, records_per_batch=RECORDS)


def test_truncated_archive(tmp_path, cifar_archive):
    path, _ = cifar_archive
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=str(cut.name)):
        parse_archive(cut, records_per_batch=RECORDS)
