"""`mlcv download`: CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST and image folders into the data dir
(the work is in data/; these commands parse options and report)."""

from __future__ import annotations

import re
import shlex
import sys

import click

from ..data import cifar10, cifar100, idx, import_folder
from ..data import registry as datasets
from ..data.base import load_cache
from ..data.idx import FILES, SOURCES
from ..data.splits import holdout_size
from ..errors import UsageError
from ..system import output
from .common import CONTEXT, Group, data_dir_of


@click.group(cls=Group, context_settings=CONTEXT)
def download():
    """Fetch CIFAR-10, CIFAR-100, MNIST or Fashion-MNIST, or import an image folder, into the data dir.

    The data dir is --data-dir, else $MLCV_DATA_DIR, else ./data.
    """


@download.command("cifar10", context_settings=CONTEXT)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where datasets live (default $MLCV_DATA_DIR or ./data).")
@click.option("--url", help="Download from this mirror instead of the official site.")
@click.option("--archive", type=click.Path(dir_okay=False, exists=True), help="Use a local copy of cifar-10-binary.tar.gz instead of downloading.")
@click.option("--md5", help="Expected MD5 of the archive (for a mirror that repacks it).")
@click.option("--force", is_flag=True, help="Download and decode again even if a verified copy is there.")
def download_cifar10(data_dir, url, archive, md5, force):
    """Download the CIFAR-10 binary archive, verify it, and cache it as .npy arrays.

    A partial download is resumed; nothing is used before its MD5 checks out.
    """

    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise UsageError(f"--md5 expects 32 hexadecimal digits, found {md5!r}")
    kwargs = {"force": force, "progress": True}
    if url:
        kwargs["url"] = url
    if archive:
        kwargs["archive"] = archive
    if md5:
        kwargs["md5"] = md5
    result = cifar10.prepare_cifar10(data_dir_of(data_dir), **kwargs)
    if result["status"] == "cached":
        output.echo(f"CIFAR-10 is already in {result['path']} (verified); nothing to do. Use --force to fetch it again.")
    else:
        output.echo(f"CIFAR-10 ready in {result['path']} (50,000 training and 10,000 test images).")


@download.command("folder", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", required=True, help="Name to use it by: data.dataset: folder, data.path: NAME.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where datasets live (default $MLCV_DATA_DIR or ./data).")
@click.option("--size", default=32, show_default=True, type=click.IntRange(4, 512), help="Images are resized to SIZE x SIZE.")
@click.option("--skip-bad", is_flag=True, help="Import the readable images and list the unreadable ones, instead of stopping.")
def download_folder(path, name, data_dir, size, skip_bad):
    """Import an image folder (ROOT/<split>/<class>/<image>, a directory or .zip) into the cache."""

    result = import_folder(path, data_dir_of(data_dir), name, size=size, skip_bad=skip_bad, progress=True)
    if result["replaced"]:
        output.echo(f"Replaced the dataset previously imported as {name}.", err=True)
    for bad_path, reason in result.get("skipped", []):
        output.echo(f"skipped {bad_path}: {reason}", err=True)
    for note in result.get("notes", []):
        output.echo(f"Warning: {note}", err=True)
    output.echo(
        f"Imported {result['n_train']} training and {result['n_test']} test images in "
        f"{len(result['classes'])} class{'' if len(result['classes']) == 1 else 'es'} into {result['path']}. Use it with: --set data.dataset=folder --set data.path={shlex.quote(name)}"
        + (f" --set data.image_size={size}" if size != 32 else "")
    )
    if not result["n_test"]:

        held = holdout_size(result["n_train"])
        share = f"{100 * held / result['n_train']:.2g}%" + (", 10% up to 1,000 images" if held == 1000 else "")
        output.echo(f"It has no test/ split: {held:,} of its {result['n_train']:,} images ({share}) are held out as the test split "
                    "when it is used (data.num_test sets how many)." if held else "It has no test/ split, and too few images to hold one out.",
                    err=True)


_HEX = re.compile(r"[0-9a-fA-F]{32}")

_common = [
    click.option("--data-dir", type=click.Path(file_okay=False), help="Where datasets live (default $MLCV_DATA_DIR or ./data)."),
    click.option("--no-verify", is_flag=True, help="Skip the checksums (a mirror that publishes none); a warning is printed."),
    click.option("--force", is_flag=True, help="Download and decode again even if a verified copy is there."),
]


def _with_common(fn):
    for option in reversed(_common):
        fn = option(fn)
    return fn


def _mirror_lines(mirrors):
    if len(mirrors) == 1:
        return f"Official site: {mirrors[0]}"
    return "Mirrors, tried in order (each file from the first that serves it with the published MD5):\n" + "\n".join(
        f"      {m}" for m in mirrors)


def _idx_command(key):

    source = SOURCES[key]

    @click.command(key, context_settings=CONTEXT, help=f"""Download {source.title} (four gzipped IDX files), verify and cache it.

    \b
    {_mirror_lines(source.mirrors)}
    --url BASE/ is another mirror folder holding the official file names
    ({', '.join(FILES.values())}); --archive FOLDER uses local copies.
    The published MD5s are checked; for a mirror serving other files give
    --md5 FILE=HEX for each, or --no-verify. Images are 28x28 grayscale (one channel).
    """)
    @click.option("--url", metavar="BASE/", help="Mirror folder under which the official file names are found.")
    @click.option("--archive", type=click.Path(exists=True), help="Folder holding the four official .gz files (or one of them).")
    @click.option("--md5", "md5_items", multiple=True, metavar="FILE=HEX", help="Expected MD5 of one file, replacing the published one (repeatable).")
    @_with_common
    def command(url, archive, md5_items, data_dir, no_verify, force):

        md5 = {}
        for item in md5_items:
            name, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--md5 expects FILE=HEX (e.g. {FILES['train_x']}=<32 hex digits>), found {item!r}")
            if name not in FILES.values():
                raise UsageError(f"--md5: {name!r} is not one of the official file names ({', '.join(FILES.values())})")
            if not _HEX.fullmatch(value):
                raise UsageError(f"--md5 {name}: expected 32 hexadecimal digits, found {value!r}")
            md5[name] = value.lower()
        if md5 and no_verify:
            raise UsageError("give either --md5 or --no-verify, not both")
        result = idx.prepare_idx(source, data_dir_of(data_dir), url=url, archive=archive, md5=md5, verify=not no_verify,
                                 force=force, progress=sys.stderr.isatty())
        _report(source.title, result, key)

    return command




def _report(title, result, key):

    if not result["verified"]:
        output.echo(f"Warning: checksums not verified (--no-verify); {title} in {result['path']} may not be the official data.", err=True)
    if result["status"] == "cached":
        output.echo(f"{title} is already in {result['path']}; nothing to do. Use --force to fetch it again.")
        return
    ds = load_cache(result["path"])
    n_test = 0 if ds.test_y is None else len(ds.test_y)
    shape = "x".join(str(d) for d in ds.train_x.shape[1:3])
    channels = "grayscale" if ds.train_x.shape[3] == 1 else "colour"
    output.echo(f"{title} ready in {result['path']} ({len(ds.train_y):,} training and {n_test:,} test images, {shape} {channels}, "
                f"{len(ds.classes)} classes). Use it with: --set data.dataset={key}"
                + (f" --set data.image_size={ds.train_x.shape[1]}" if ds.train_x.shape[1] != datasets.NATIVE_IMAGE_SIZE.get(key) else ""))


@click.command("cifar100", context_settings=CONTEXT)
@click.option("--url", metavar="BASE/", help="Mirror folder holding cifar-100-binary.tar.gz (or the archive's full URL).")
@click.option("--archive", type=click.Path(exists=True), help="A local cifar-100-binary.tar.gz (or the folder holding it).")
@click.option("--md5", help="Expected MD5 of the archive, replacing the published one (a mirror that repacks it).")
@_with_common
def download_cifar100(url, archive, md5, data_dir, no_verify, force):
    """Download CIFAR-100 (the binary archive), verify it and cache it.

    \b
    Both label sets are kept: the 100 fine classes (default) and the 20 coarse
    superclasses (--set data.labels=coarse); class names come from the archive.
    """

    if md5 is not None and not _HEX.fullmatch(md5):
        raise UsageError(f"--md5 expects 32 hexadecimal digits, found {md5!r}")
    if md5 and no_verify:
        raise UsageError("give either --md5 or --no-verify, not both")
    result = cifar100.prepare_cifar100(data_dir_of(data_dir), url=url, archive=archive, md5=None if no_verify else (md5 or cifar100.MD5),
                                       force=force, progress=sys.stderr.isatty())
    _report("CIFAR-100", result, "cifar100")


download.add_command(_idx_command("mnist"))
download.add_command(_idx_command("fashion-mnist"))
download.add_command(download_cifar100)
