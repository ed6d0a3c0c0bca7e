"""Fashion-MNIST: the IDX file format (:func:`read_idx`) and the loader :func:`load_fashion_mnist`.

The four IDX files are checked against the SHA-256 of the official release's decompressed bytes;
the layouts recognised, and where they are looked for, are listed in :mod:`alexnet_lab.data`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from alexnet_lab.data.imageset import DataFormatError, ImageSet
from alexnet_lab.data.sources import (
    SampleReason,
    cache_dir,
    download_file,
    finish_loading,
    is_in_cache,
    load_sample_with_notice,
    locate,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SHA256",
    "FASHION_MNIST_GZ_MD5",
    "FASHION_MNIST_URLS",
    "read_idx",
    "load_fashion_mnist",
]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: The four Fashion-MNIST files (without ``.gz``), keyed by role.
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: SHA-256 of the DECOMPRESSED official files (the same whatever gzip settings packed them).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: MD5 of the upstream ``.gz`` files, as published by Zalando; checked by pooch while downloading.
FASHION_MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: Download mirrors, tried in order; each must serve the upstream ``.gz`` files.
FASHION_MNIST_URLS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

_FASHION_HELP = ("Get them from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion) or, on "
                 "Debian/Ubuntu, `sudo apt install dataset-fashion-mnist`.")


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

def _open_maybe_gzip(path: Path) -> BinaryIO:
    """Open ``path`` for reading, through gzip if its first bytes say it is gzip-compressed."""
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")


def _read_exactly(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataFormatError(f"{path}: the file ends early: expected {n:,} bytes of {what}, found {len(data):,} "
                              "(truncated download or copy?).")
    return data


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> tuple[np.ndarray, str]:
    """Read one IDX file (the MNIST / Fashion-MNIST format), gzip-compressed or not.

    The header is checked (magic number: two zero bytes, type 0x08 = unsigned byte, number of
    dimensions), then exactly the announced number of bytes is read, and the file must end there.

    Args:
        path: the file.
        ndim: the number of dimensions expected (3 for images, 1 for labels), or None for any.

    Returns:
        ``(array, sha256)``: the uint8 array and the SHA-256 of the decompressed bytes.

    Raises:
        DataFormatError: wrong magic number, truncated or corrupt file, trailing bytes.
    """
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as f:
            magic = _read_exactly(f, 4, path, "header")
            if magic[:2] != b"\0\0" or magic[2] != 0x08 or not 1 <= magic[3] <= 4:
                raise DataFormatError(
                    f"{path}: not an IDX file of unsigned bytes: the magic number is 0x{magic.hex()}, expected "
                    f"0x0000080N (N = number of dimensions, {ndim or '1-4'}).")
            if ndim is not None and magic[3] != ndim:
                kind = {1: "labels", 3: "images"}.get(ndim, f"{ndim}-d data")
                raise DataFormatError(f"{path}: expected {kind} (magic 0x0000080{ndim}), found a {magic[3]}-d IDX "
                                      f"file (magic 0x{magic.hex()}). Are the image and label files swapped?")
            dims_bytes = _read_exactly(f, 4 * magic[3], path, "dimensions")
            dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
            body = _read_exactly(f, int(np.prod(dims)), path, f"data for shape {dims}")
            if f.read(1):
                raise DataFormatError(f"{path}: there are bytes after the {np.prod(dims):,} announced by the "
                                      f"header (shape {dims}): not a valid IDX file.")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"{path}: cannot decompress: {e} (truncated or corrupt gzip file).") from e
    digest = hashlib.sha256(magic + dims_bytes + body).hexdigest()
    return np.frombuffer(body, dtype=np.uint8).reshape(dims), digest


# --------------------------------------------------------------------------------------------
# Finding, checking and downloading the four files
# --------------------------------------------------------------------------------------------

def _fashion_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The Fashion-MNIST files found in ``folder`` (``name.gz`` or ``name``) and the names missing."""
    found, missing = {}, []
    for role, name in FASHION_MNIST_FILES.items():
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _find_fashion(root: Path, partial: list[str]) -> dict[str, Path] | None:
    """The four files in one of the layouts under ``root``; notes incomplete sets in ``partial``."""
    for folder in (root / "fashion-mnist", root / "FashionMNIST" / "raw", root):
        found, missing = _fashion_files(folder)
        if not missing:
            return found
        if found:
            partial.append(f"{folder} has only {len(found)} of the 4 files (missing: {', '.join(missing)})")
    return None


def _read_fashion_files(files: dict[str, Path]) -> tuple[ImageSet, ImageSet]:
    """Read and verify the four IDX files: shapes, counts, label values, then official checksums."""
    arrays, digests = {}, {}
    for role, path in files.items():
        arrays[role], digests[role] = read_idx(path, ndim=3 if role.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise DataFormatError(f"{files[f'{split}_images']}: images of {images.shape[1:]}, expected 28x28.")
        if len(images) != len(labels):
            raise DataFormatError(f"{files[f'{split}_images']} holds {len(images):,} images but "
                                  f"{files[f'{split}_labels']} holds {len(labels):,} labels: they must match.")
        if labels.size and labels.max() > 9:
            raise DataFormatError(f"{files[f'{split}_labels']}: label {labels.max()} found, expected 0-9.")
    for role, path in files.items():
        expected = FASHION_MNIST_SHA256[FASHION_MNIST_FILES[role]]
        if digests[role] != expected:
            _refuse_checksum(path, digests[role], expected)
    return tuple(ImageSet(arrays[f"{s}_images"][..., None], arrays[f"{s}_labels"].astype(np.int64),
                          FASHION_MNIST_CLASSES, f"fashion_mnist {s}") for s in ("train", "test"))


def _refuse_checksum(path: Path, found: str, expected: str) -> None:
    """Raise a checksum error for ``path``; a file in our own cache is deleted so it is fetched again."""
    removed = ""
    if is_in_cache(path):
        path.unlink(missing_ok=True)
        removed = " It was in the alexnet-lab cache and has been deleted; the next load downloads it again."
    raise DataFormatError(f"{path}: the decompressed content has SHA-256 {found}, but the official Fashion-MNIST "
                          f"file has {expected}: the file is damaged or is not the official release.{removed}")


def _download_fashion() -> dict[str, Path]:
    folder = cache_dir() / "fashion-mnist"
    files = {}
    for role, name in FASHION_MNIST_FILES.items():
        urls = [base + name + ".gz" for base in FASHION_MNIST_URLS]
        files[role] = download_file(urls, "md5:" + FASHION_MNIST_GZ_MD5[name], folder, name + ".gz")
    return files


def load_fashion_mnist(path: str | os.PathLike | None = None, *, per_class: int | None = None,
                       test_per_class: int | None = None, seed: int = 0,
                       download: bool = True) -> tuple[ImageSet, ImageSet]:
    """Fashion-MNIST: 60,000 training and 10,000 test images of 28x28x1, 10 classes of clothing.

    Args:
        path: a folder holding the four IDX files (or ``fashion-mnist/`` inside it), ``"sample"`` for
            the bundled sample, or None to search the places listed in :mod:`alexnet_lab.data`.
        per_class: keep only this many training images per class (chosen at random with ``seed``).
        test_per_class: the same for the test set.
        seed: the seed of the per-class selection: the same seed gives the same images, and a
            smaller ``per_class`` gives a subset of a larger one.
        download: download the files into the cache folder when they are not found.

    Returns:
        ``(train, test)`` ImageSets with uint8 images ``(N, 28, 28, 1)`` and the class names
        :data:`FASHION_MNIST_CLASSES`.
    """
    needed = ", ".join(f"{n}.gz" for n in FASHION_MNIST_FILES.values())
    found = locate(path, "Fashion-MNIST", _find_fashion, needed, _FASHION_HELP,
                   _download_fashion if download else None)
    if isinstance(found, SampleReason):
        return load_sample_with_notice("fashion_mnist", found, per_class, test_per_class, seed)
    train, test = _read_fashion_files(found)
    where = found["train_images"].parent
    return finish_loading("Fashion-MNIST", train, test, where, per_class, test_per_class, seed)
