"""CIFAR-10: the binary and python releases, archives and the JPEG image-folder copy; :func:`load_cifar10`.

The binary release is read as records of bytes, the python release with a restricted unpickler
that rebuilds numpy arrays and nothing else, archives are extracted once into the cache folder and
the JPEG copy is decoded once and cached as .npy files. The layouts recognised, and where they are
looked for, are listed in :mod:`alexnet_lab.data`.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import pickle
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np

from alexnet_lab.data.folders import read_split_folder
from alexnet_lab.data.imageset import DataFormatError, ImageSet, say
from alexnet_lab.data.sources import (
    SampleReason,
    atomic_folder,
    cache_dir,
    download_file,
    finish_loading,
    load_sample_with_notice,
    locate,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR10_SHA256",
    "read_cifar10_binary",
    "read_cifar10_python",
    "load_cifar10",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: The official CIFAR-10 binary release and its SHA-256.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"

_CIFAR_HELP = ("Get cifar-10-binary.tar.gz (or cifar-10-python.tar.gz) from "
               "https://www.cs.toronto.edu/~kriz/cifar.html; the archive itself is enough, it is unpacked for you.")
_CIFAR_RECORD = 1 + 32 * 32 * 3  # one label byte, then 1024 red, 1024 green and 1024 blue bytes


# --------------------------------------------------------------------------------------------
# Cache keys: an extraction or a decoded copy is redone when its source changes
# --------------------------------------------------------------------------------------------

def _file_key(path: Path) -> str:
    """A short key that changes when the file at ``path`` is replaced or modified."""
    st = path.stat()
    return hashlib.sha1(f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _folder_key(folder: Path) -> str:
    """A short key for an image folder: its sub-folders' names, modification times and file counts.

    Adding, removing or renaming images changes it (the folder's modification time changes); an image
    edited in place does not, so delete the cache folder after editing images in place.
    """
    parts = [str(folder.absolute())]
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        parts.append(f"{os.path.relpath(dirpath, folder)}|{os.stat(dirpath).st_mtime_ns}|"
                     f"{len(dirnames)}|{len(filenames)}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# The binary release, the python release (restricted unpickler), archives, the image folder
# --------------------------------------------------------------------------------------------

_CIFAR_BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]


def _read_cifar_binary_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One ``*.bin`` batch: records of 1 label byte + 3072 pixel bytes (red, green, blue planes)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _CIFAR_RECORD:
        raise DataFormatError(f"{path}: {raw.size:,} bytes is not a whole number of CIFAR-10 records of "
                              f"{_CIFAR_RECORD:,} bytes (1 label + 3,072 pixels): truncated or not a CIFAR-10 "
                              "binary file.")
    records = raw.reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataFormatError(f"{path}: record {bad} has label {labels[bad]}, expected 0-9: not CIFAR-10 data.")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10_binary(folder: str | os.PathLike) -> tuple[ImageSet, ImageSet]:
    """Read the official binary release (``cifar-10-batches-bin/``: data_batch_1-5.bin, test_batch.bin)."""
    folder = Path(folder)
    return _read_cifar_batches(folder, [f"{b}.bin" for b in _CIFAR_BATCHES], "test_batch.bin",
                               _read_cifar_binary_file)


def _read_cifar_batches(folder: Path, train_names, test_name, read_one) -> tuple[ImageSet, ImageSet]:
    missing = [n for n in [*train_names, test_name] if not (folder / n).is_file()]
    if missing:
        raise DataFormatError(f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)} (incomplete copy?).")
    parts = [read_one(folder / n) for n in train_names]
    train = ImageSet(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                     CIFAR10_CLASSES, "cifar10 train")
    images, labels = read_one(folder / test_name)
    return train, ImageSet(images, labels, CIFAR10_CLASSES, "cifar10 test")


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    The python release's batches are pickled dicts of bytes, lists of ints and one uint8 array.
    Rebuilding an array needs exactly these numpy functions; any other global (``os.system``,
    ``builtins.eval``, ...) is refused, so a tampered file cannot run code.
    """

    _RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's multiarray._reconstruct
    _FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # numpy's numeric._frombuffer (pickle protocol 5)
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which a CIFAR-10 batch never "
                                         "contains; refused (the file may be tampered with)") from None


def _read_cifar_python_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-release batch: a dict with ``data`` (N x 3072 uint8) and ``labels`` (N ints)."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # garbage makes the unpickler fail in many ways; all mean "not a CIFAR batch"
        raise DataFormatError(f"{path}: not a readable CIFAR-10 python batch: {type(e).__name__}: {e}") from e
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path}: holds a {type(batch).__name__}, expected the dict of a CIFAR-10 batch.")
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    allowed = {"data": np.ndarray, "labels": list, "batch_label": (bytes, str), "filenames": list}
    for key, value in batch.items():
        if key not in allowed or not isinstance(value, allowed[key]):
            raise DataFormatError(f"{path}: unexpected entry {key!r} of type {type(value).__name__}; a CIFAR-10 "
                                  "batch holds only data (array), labels (list), batch_label and filenames.")
    data, labels = batch.get("data"), batch.get("labels")
    if data is None or labels is None:
        raise DataFormatError(f"{path}: the batch has no 'data' or no 'labels' entry.")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072).")
    if len(labels) != len(data) or not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise DataFormatError(f"{path}: 'labels' must be {len(data):,} integers 0-9 (one per image).")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, dtype=np.int64)


def read_cifar10_python(folder: str | os.PathLike) -> tuple[ImageSet, ImageSet]:
    """Read the python release (``cifar-10-batches-py/``) with a restricted unpickler (no ``pickle.load``)."""
    return _read_cifar_batches(Path(folder), _CIFAR_BATCHES, "test_batch", _read_cifar_python_file)


_CIFAR_ARCHIVES = ("cifar-10-binary.tar.gz", "cifar-10-python.tar.gz", "cifar10-jpg.tar.xz")


def _find_cifar(root: Path, partial: list[str], *, explicit: bool = False) -> tuple[str, Path] | None:
    """``(kind, path)`` of the best CIFAR-10 copy under ``root``: kind is binary, python, folder or archive.

    The official releases come before the (lossy) JPEG folder; unpacked folders before archives.
    """
    if explicit and root.is_file():
        return ("archive", root)
    candidates = [("binary", root / "cifar-10-batches-bin"), ("python", root / "cifar-10-batches-py")]
    candidates += [("archive", root / name) for name in _CIFAR_ARCHIVES[:2]]
    candidates += [("folder", root / "cifar10"), ("archive", root / _CIFAR_ARCHIVES[2])]
    if explicit:  # the path may also be one of those folders itself
        candidates[:0] = [("binary", root), ("python", root), ("folder", root)]
    for kind, path in candidates:
        if kind == "binary" and (path / "data_batch_1.bin").is_file():
            return kind, path
        if kind == "python" and (path / "data_batch_1").is_file():
            return kind, path
        if kind == "folder" and (path / "train").is_dir() and (path / "test").is_dir():
            return kind, path
        if kind == "archive" and path.is_file():
            return kind, path
    return None


def _extract_archive(archive: Path) -> Path:
    """Unpack ``archive`` into the cache folder (once) and return the folder holding its contents.

    Extraction goes into a temp folder that is renamed when complete, so an interrupted
    extraction is never mistaken for a complete one. tarfile's ``"data"`` filter refuses absolute
    paths, ``..``, links out of the folder and device files.

    Not ``pooch.Untar``: on Python 3.11 (pooch 1.9) it extracts without the ``"data"`` filter, so a
    member named ``../../x`` would be written outside the folder.
    """
    stem = archive.name.split(".tar")[0]
    target = cache_dir() / "extracted" / f"{stem}-{_file_key(archive)}"
    if target.is_dir():
        return target

    def extract(tmp: Path) -> None:
        say(f"Unpacking {archive} into {target} (once) ...")
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
            if isinstance(e, PermissionError):
                raise
            raise DataFormatError(f"{archive}: cannot unpack: {type(e).__name__}: {e} (truncated or corrupt "
                                  "archive? Delete it and get it again).") from e

    atomic_folder(target, extract)
    return target


def _read_cifar_folder(folder: Path) -> tuple[ImageSet, ImageSet]:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` (60,000 JPEGs: 10-40 s), cached as .npy files."""
    cache = cache_dir() / "decoded" / f"cifar10-{_folder_key(folder)}"
    cached = _load_decoded(cache, CIFAR10_CLASSES, "cifar10")
    if cached is not None:
        return cached
    say(f"Decoding the CIFAR-10 images in {folder} (once; the arrays are cached in {cache}) ...")
    sets = []
    for split in ("train", "test"):
        images, labels, classes, _ = read_split_folder(folder / split, None, expected_classes=CIFAR10_CLASSES)
        if images.shape[1:] != (32, 32, 3):
            raise DataFormatError(f"{folder / split}: images of {images.shape[1:]}, expected 32x32 RGB for CIFAR-10.")
        sets.append(ImageSet(images, labels, CIFAR10_CLASSES, f"cifar10 {split}"))
    _save_decoded(cache, *sets)
    return tuple(sets)


def _save_decoded(folder: Path, train: ImageSet, test: ImageSet) -> None:
    """Cache decoded arrays as four .npy files in ``folder``, written to a temp folder renamed when complete."""
    def write(tmp: Path) -> None:
        for split, data in (("train", train), ("test", test)):
            np.save(tmp / f"{split}_images.npy", data.images)
            np.save(tmp / f"{split}_labels.npy", data.labels)

    atomic_folder(folder, write)


def _load_decoded(folder: Path, classes, name) -> tuple[ImageSet, ImageSet] | None:
    """The cached arrays, or None if absent; an unreadable cache folder is deleted (and rebuilt).

    The .npy files are memory-mapped and copied: for CIFAR-10's 184 MB this takes about 0.1 s,
    several times faster than a plain ``np.load`` (or an .npz file).
    """
    if not folder.is_dir():
        return None
    try:
        sets = []
        for split in ("train", "test"):
            images = np.array(np.load(folder / f"{split}_images.npy", mmap_mode="r", allow_pickle=False))
            labels = np.load(folder / f"{split}_labels.npy", allow_pickle=False)
            sets.append(ImageSet(images, labels, tuple(classes), f"{name} {split}"))
        return tuple(sets)
    except (OSError, ValueError) as e:
        say(f"The cached arrays in {folder} are unreadable ({e}); decoding again.")
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _read_cifar(kind: str, where: Path) -> tuple[ImageSet, ImageSet, str]:
    """Read one CIFAR-10 copy; also returns the kind actually read (an archive holds one of the others)."""
    if kind == "archive":
        extracted = _extract_archive(where)
        inner = _find_cifar(extracted, [])
        if inner is None or inner[0] == "archive":
            raise DataFormatError(f"{where}: the archive holds no CIFAR-10 data (expected cifar-10-batches-bin/, "
                                  "cifar-10-batches-py/ or cifar10/train + cifar10/test inside).")
        kind, where = inner
    readers = {"binary": read_cifar10_binary, "python": read_cifar10_python, "folder": _read_cifar_folder}
    return (*readers[kind](where), kind)


def _download_cifar() -> tuple[str, Path]:
    archive = download_file([CIFAR10_URL], "sha256:" + CIFAR10_SHA256, cache_dir(), "cifar-10-binary.tar.gz")
    return ("archive", archive)


def load_cifar10(path: str | os.PathLike | None = None, *, per_class: int | None = None,
                 test_per_class: int | None = None, seed: int = 0,
                 download: bool = True) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10: 50,000 training and 10,000 test images of 32x32x3, 10 classes.

    Args:
        path: a folder holding one of the layouts listed in :mod:`alexnet_lab.data.cifar10`, one of those
            folders or archives itself, ``"sample"`` for the bundled sample, or None to search.
        per_class: keep only this many training images per class (chosen at random with ``seed``).
        test_per_class: the same for the test set.
        seed: the seed of the per-class selection.
        download: download the official binary release (162 MB) into the cache folder when no
            copy is found.

    Returns:
        ``(train, test)`` ImageSets with uint8 images ``(N, 32, 32, 3)`` and the class names
        :data:`CIFAR10_CLASSES`.
    """
    needed = "cifar-10-binary.tar.gz (or its unpacked folder cifar-10-batches-bin/)"

    def find(root, partial):
        return _find_cifar(root, partial, explicit=path is not None)

    found = locate(path, "CIFAR-10", find, needed, _CIFAR_HELP, _download_cifar if download else None)
    if isinstance(found, SampleReason):
        return load_sample_with_notice("cifar10", found, per_class, test_per_class, seed)
    kind, where = found
    train, test, kind = _read_cifar(kind, where)
    detail = {"folder": " (JPEG images)", "python": " (python release)", "binary": " (binary release)"}.get(kind, "")
    return finish_loading("CIFAR-10", train, test, where, per_class, test_per_class, seed, detail)
