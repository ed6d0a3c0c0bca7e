"""Make the small data samples bundled in ``alexnet_lab/data/sample_data/`` (so notebooks run offline).

    ALEXNET_LAB_DATA=../shared/data .venv/bin/python scripts/make_samples.py

Reads the full Fashion-MNIST and CIFAR-10 from the data folder (``--data``, default
``$ALEXNET_LAB_DATA``), takes a fixed number of images per class with a fixed seed, and writes
``fashion_mnist_sample.npz`` and ``cifar10_sample.npz`` (compressed). Running it again on the same
data gives the same images. The CIFAR-10 sample comes from whatever copy the folder holds (the
JPEG re-encoding in ../shared/data: pixels differ slightly from the official release).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from alexnet_lab import data
from alexnet_lab.core import files

OUT = Path(__file__).resolve().parent.parent / "alexnet_lab" / "data" / "sample_data"
SEED = 0
SIZES = {  # data set: (train images per class, test images per class)
    "fashion_mnist": (100, 20),
    "cifar10": (50, 20),
}
LOADERS = {"fashion_mnist": data.load_fashion_mnist, "cifar10": data.load_cifar10}


def make_sample(which: str, folder: str) -> Path:
    """Write ``<which>_sample.npz`` from the full data set in ``folder``; return its path."""
    per_class, test_per_class = SIZES[which]
    train, test = LOADERS[which](folder, per_class=per_class, test_per_class=test_per_class, seed=SEED,
                                 download=False)
    path = OUT / f"{which}_sample.npz"
    files.atomic_write(path, fsync=True, write=lambda f: np.savez_compressed(
        f, train_images=train.images, train_labels=train.labels, test_images=test.images, test_labels=test.labels,
        classes=np.array(train.classes)))
    print(f"wrote {path}: {len(train)} train + {len(test)} test images, {path.stat().st_size / 1e6:.2f} MB")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("ALEXNET_LAB_DATA"),
                        help="the folder with fashion-mnist/ and CIFAR-10 (default: $ALEXNET_LAB_DATA)")
    args = parser.parse_args()
    if not args.data:
        parser.error("no data folder: pass --data or set ALEXNET_LAB_DATA")
    for which in SIZES:
        make_sample(which, args.data)


if __name__ == "__main__":
    main()
