"""Build mlcv_cli/sample/cifar10-sample.zip from the CIFAR-10 JPEG zip.

Takes a class-balanced, seeded selection of real CIFAR-10 training images
(500 train + 100 test per class) and copies their JPEG bytes unchanged.

    python data/make_sample.py ../shared/data/cifar10-train-jpeg.zip
"""

import argparse
import zipfile
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="cifar10-train-jpeg.zip (train/<class>/NNNN.jpg)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "mlcv_cli" / "sample" / "cifar10-sample.zip"))
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=231)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    with zipfile.ZipFile(args.source) as src:
        by_class = {}
        for name in src.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "train" and parts[2].endswith(".jpg"):
                by_class.setdefault(parts[1], []).append(name)
        tmp = args.out + ".tmp"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as dst:
            for cls in sorted(by_class):
                names = sorted(by_class[cls])
                picked = rng.choice(len(names), args.train_per_class + args.test_per_class, replace=False)
                for i, idx in enumerate(picked):
                    split = "train" if i < args.train_per_class else "test"
                    member = names[idx]
                    info = zipfile.ZipInfo(f"{split}/{cls}/{Path(member).name}", date_time=(2026, 1, 1, 0, 0, 0))
                    dst.writestr(info, src.read(member))
    Path(tmp).replace(args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
