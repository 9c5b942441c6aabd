"""Build mlcv_cli/sample/cifar10-sample.zip from the CIFAR-10 JPEG zips in ../shared/data.

The training split is a class-balanced, seeded selection of CIFAR-10 *training* images
(500 per class); the test split is the 1,000 images of the official CIFAR-10 *test* set in
cifar10-test-sample-jpeg.zip (100 per class), so a model trained on all 50,000 training
images is never scored on an image it has seen. JPEG bytes are copied unchanged.

    python data/make_sample.py ../shared/data/cifar10-train-jpeg.zip ../shared/data/cifar10-test-sample-jpeg.zip
"""

import argparse
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from mlcv_cli.data.images import read_image

ROOT = Path(__file__).resolve().parents[1]


def members_by_class(zf, split):
    """{class: sorted member names} for split/<class>/<name>.jpg."""
    by_class = {}
    for name in zf.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2].endswith(".jpg"):
            by_class.setdefault(parts[1], []).append(name)
    return {cls: sorted(names) for cls, names in by_class.items()}


def pixel_digest(data):
    """First 8 bytes of the SHA-256 of the decoded RGB pixels, as mlcv decodes them
    (two files with equal pixels are the same image, whatever their JPEG bytes)."""
    pixels = read_image(data, size=32)
    return int.from_bytes(hashlib.sha256(pixels.tobytes()).digest()[:8], "little")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_source", help="cifar10-train-jpeg.zip (train/<class>/NNNN.jpg)")
    parser.add_argument("test_source", help="cifar10-test-sample-jpeg.zip (test/<class>/NNNN.jpg, official test images)")
    parser.add_argument("--out", default=str(ROOT / "mlcv_cli" / "sample" / "cifar10-sample.zip"))
    parser.add_argument("--digests", default=str(ROOT / "tests" / "data" / "cifar10-train-pixel-digests.npy"),
                        help="where to write the pixel digests of all training images (tests/data/test_sample.py reads them)")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=231)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    with zipfile.ZipFile(args.train_source) as train_src, zipfile.ZipFile(args.test_source) as test_src:
        train_by_class = members_by_class(train_src, "train")
        test_by_class = members_by_class(test_src, "test")
        if sorted(train_by_class) != sorted(test_by_class):
            raise SystemExit(f"class folders differ: train {sorted(train_by_class)}, test {sorted(test_by_class)}")
        picked = []  # (split, class, source zip, member)
        for cls in sorted(train_by_class):
            for split, src, names, n in (("train", train_src, train_by_class[cls], args.train_per_class),
                                         ("test", test_src, test_by_class[cls], args.test_per_class)):
                if len(names) < n:
                    raise SystemExit(f"{split}/{cls}: {n} images asked for, {len(names)} available")
                for idx in np.sort(rng.choice(len(names), n, replace=False)):
                    picked.append((split, cls, src, names[idx]))

        # The whole point of the test split: none of its images may be a training image.
        # Checked against all 50,000 training images, not only the ones picked.
        test_digests = {pixel_digest(src.read(m)): m for split, _, src, m in picked if split == "test"}
        all_train = sorted(n for ns in train_by_class.values() for n in ns)
        train_digests = np.array([pixel_digest(train_src.read(m)) for m in all_train], dtype=np.uint64)
        clashes = [(test_digests[int(d)], m) for d, m in zip(train_digests, all_train) if int(d) in test_digests]
        if clashes:
            raise SystemExit(f"{len(clashes)} test images equal training images, e.g. {clashes[:3]}")

        tmp = args.out + ".tmp"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as dst:
            for split, cls, src, member in picked:
                info = zipfile.ZipInfo(f"{split}/{cls}/{Path(member).name}", date_time=(2026, 1, 1, 0, 0, 0))
                dst.writestr(info, src.read(member))
    Path(tmp).replace(args.out)
    # The tests hold the shipped test split to these without needing ../shared.
    np.save(args.digests + ".tmp.npy", np.unique(train_digests), allow_pickle=False)
    Path(args.digests + ".tmp.npy").replace(args.digests)
    n_train = sum(1 for p in picked if p[0] == "train")
    print(f"wrote {args.out} ({n_train} train + {len(picked) - n_train} test images, "
          f"{Path(args.out).stat().st_size / 1e6:.1f} MB); no test image equals any of the "
          f"{sum(map(len, train_by_class.values()))} training images")


if __name__ == "__main__":
    main()
