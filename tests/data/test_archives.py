"""data/archives.py: one rule for archive member paths, used by the CIFAR tarballs and zipped folders."""
import io
import tarfile
import zipfile

import pytest

from mlcv_cli.data.archives import path_problem, tar_member_problem
from mlcv_cli.data.folder import import_folder
from mlcv_cli.errors import DataError


@pytest.mark.parametrize("name", ["/etc/passwd", "\\evil", "C:/evil.png", "c:evil", "../x", "a/../../x", "a\\..\\..\\x",
                                  "train/cat/../../../x.png", "..", "a/.."])
def test_paths_that_leave_the_folder_are_named(name):
    assert path_problem(name) is not None


@pytest.mark.parametrize("name", ["train/cat/0001.jpg", "cifar-10-batches-bin/data_batch_1.bin", "./a/b.bin", "a..b/c..jpg",
                                  "x"])
def test_ordinary_paths_pass(name):
    assert path_problem(name) is None


def _tar_member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_tar_members_that_are_links_or_devices_are_refused():
    assert "link" in tar_member_problem(_tar_member("a", tarfile.SYMTYPE, "/etc/passwd"))
    assert "link" in tar_member_problem(_tar_member("a", tarfile.LNKTYPE, "b"))
    assert "device" in tar_member_problem(_tar_member("a", tarfile.CHRTYPE))
    assert "absolute" in tar_member_problem(_tar_member("/a"))
    assert tar_member_problem(_tar_member("a/b.bin")) is None
    assert tar_member_problem(_tar_member("a", tarfile.DIRTYPE)) is None


def test_a_zipped_folder_uses_the_same_rule(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("train/cat/a.png", b"x")
        z.writestr("train\\..\\..\\evil.png", b"x")
    path = tmp_path / "f.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match=r"outside the archive \(has a '\.\.' component\)"):
        import_folder(path, tmp_path / "data", "f", progress=False)
