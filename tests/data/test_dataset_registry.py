"""data/registry.py: the datasets mlcv knows by name, each listed once with its title, native image
size and loader; the config's choices and defaults and `mlcv download` follow it."""

import pytest

from mlcv_cli import config
from mlcv_cli.data import prepare_cifar10
from mlcv_cli.data import registry
from mlcv_cli.errors import DataError


def test_every_named_dataset_has_a_title_and_a_loader():
    for name, d in registry.DATASETS.items():
        assert d.name == name and d.title, name
        # The shipped sample is the one dataset not loaded from the data dir (data.load_sample reads it).
        assert callable(d.load) if name != registry.SAMPLE else d.load is None, name
    assert registry.SAMPLE in registry.DATASETS and registry.FOLDER not in registry.DATASETS  # folders are named by path


def test_names_keep_the_order_messages_have_always_used():
    assert registry.NAMES == ("sample", "cifar10", "folder", "mnist", "fashion-mnist", "cifar100")
    assert set(registry.NAMES) == set(registry.DATASETS) | {registry.FOLDER}
    assert config.DATASETS == registry.NAMES and config.KEYS["data.dataset"]["choices"] == registry.NAMES


def test_native_sizes_are_the_config_defaults():
    assert registry.NATIVE_IMAGE_SIZE == {"cifar10": 32, "mnist": 28, "fashion-mnist": 28, "cifar100": 32}
    for name in registry.NAMES:
        cfg = config.resolve(overrides=[f"data.dataset={name}", *(["data.path=x"] if name == registry.FOLDER else [])])
        expected = registry.DATASETS[name].native_size if name in registry.DATASETS else None
        assert cfg.data.image_size == (expected or config.DataConfig().image_size), name
    # A size given by the user still wins over the native one.
    assert config.resolve(overrides=["data.dataset=mnist", "data.image_size=14"]).data.image_size == 14


@pytest.mark.parametrize("name", [n for n, d in registry.DATASETS.items() if d.load is not None])
def test_a_loader_without_its_download_says_which_command_makes_it(tmp_path, name):
    with pytest.raises(DataError, match=f"run `mlcv download {name}`"):
        registry.DATASETS[name].load(tmp_path, "fine")


def test_every_downloadable_dataset_has_its_download_command():
    from mlcv_cli.cli.download import download

    assert {n for n, d in registry.DATASETS.items() if d.load is not None} <= set(download.commands)


def test_the_cifar10_loader_reads_what_download_made(tmp_path, cifar_archive):
    archive, batches = cifar_archive
    prepare_cifar10(tmp_path, archive=archive, md5=None, progress=False, records_per_batch=20)
    ds = registry.DATASETS["cifar10"].load(tmp_path, "fine")
    size = registry.NATIVE_IMAGE_SIZE["cifar10"]
    assert ds.train_x.shape[1:] == (size, size, 3) and len(ds.train_y) == 5 * 20 and len(ds.test_y) == 20
