"""atomic.py: the temporary files of a writer killed mid-write are found by the name atomic_open gives them."""

import os

from mlcv_cli.system import atomic


def test_remove_temporaries_takes_what_a_killed_writer_leaves_and_nothing_else(tmp_path):
    with atomic.atomic_open(tmp_path / "model.npz") as fh:
        fh.write(b"complete")
        [temporary] = [n for n in os.listdir(tmp_path) if n != "model.npz"]
    (tmp_path / temporary).write_bytes(b"half a model")  # what a writer killed at that moment leaves
    others = [".meta.json.k1ll3d.tmp", ".model.npz.bak.k1ll3d.tmp"]  # temporaries of other files
    for other in others:
        (tmp_path / other).write_bytes(b"{")
    kept = ["model.npz", "notes.tmp", ".hidden", ".tmp", "model.npz.tmp"]
    for name in kept[1:]:
        (tmp_path / name).write_bytes(b"someone's file")

    atomic.remove_temporaries(tmp_path, name="model.npz")  # only model.npz's
    assert sorted(os.listdir(tmp_path)) == sorted(kept + others)
    atomic.remove_temporaries(tmp_path)  # any file's
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    assert (tmp_path / "model.npz").read_bytes() == b"complete"
    atomic.remove_temporaries(tmp_path / "missing")  # no directory: nothing to do, no error
