"""Builders for small datasets in the official CIFAR-10 binary layout and image folders."""

import io
import struct
import tarfile
import zlib

import numpy as np
import pytest

from mlcv_cli.data.cifar10 import FOLDER, encode_batch

RECORDS = 20


def cifar_batches(records=RECORDS, seed=0):
    """{member name: (images, labels)} for 5 train batches and 1 test batch."""
    rng = np.random.default_rng(seed)
    names = [f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)] + [f"{FOLDER}/test_batch.bin"]
    return {
        name: (rng.integers(0, 256, (records, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, records))
        for name in names
    }


def add_bytes(tar, name, data, **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def write_cifar_archive(path, batches, extra=None, sizes=None):
    """Write a .tar.gz like cifar-10-binary.tar.gz; ``extra(tar)`` may add hostile members first."""
    with tarfile.open(path, "w:gz") as tar:
        if extra is not None:
            extra(tar)
        add_bytes(tar, f"{FOLDER}/batches.meta.txt", b"airplane\nautomobile\n")
        for name, (images, labels) in batches.items():
            data = encode_batch(images, labels)
            if sizes and name in sizes:
                data = data[: sizes[name]]
            add_bytes(tar, name, data)
    return path


@pytest.fixture
def cifar_archive(tmp_path):
    """(path, batches) of a valid small archive with RECORDS records per batch."""
    batches = cifar_batches()
    path = write_cifar_archive(tmp_path / "cifar-small.tar.gz", batches)
    return path, batches


@pytest.fixture
def make_archive(tmp_path):
    """make_archive(name, records=RECORDS, extra=None, sizes=None, batches=None) -> (path, batches)."""

    def make(name="cifar.tar.gz", records=RECORDS, extra=None, sizes=None, batches=None):
        batches = batches if batches is not None else cifar_batches(records)
        return write_cifar_archive(tmp_path / name, batches, extra=extra, sizes=sizes), batches

    return make


@pytest.fixture
def add_member():
    """add_member(tar, name, data=b"...", **TarInfo attributes)."""
    return add_bytes


@pytest.fixture
def png_header_only():
    """png_header_only(width, height) -> bytes of a PNG whose header claims that size but holds ~no data."""

    def make(width, height):
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        idat = zlib.compress(b"\0" * 16)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")

    return make
