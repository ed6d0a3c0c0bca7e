"""Data sets for the course: Fashion-MNIST, CIFAR-10, image folders and random data.

Every loader returns ``(train, test)``: two :class:`ImageSet` objects holding uint8 images
``(N, H, W, C)``, integer labels ``(N,)`` and the class names::

    from alexnet_lab import data
    train, test = data.load_fashion_mnist()                 # 60,000 + 10,000 images of 28x28x1
    train, test = data.load_cifar10(per_class=500)          # 5,000 + 10,000 images of 32x32x3
    train, val, test = data.split_8_1_1(train, test)        # official test set halved: val + test
    train, test = data.load_image_folder("my_photos", image_size=64)

Where the data is looked for
----------------------------
When ``path`` is given, only there (``path="sample"`` picks the small bundled sample). Otherwise,
in this order (:func:`data_locations` lists the folders on your machine):

1. the folder named by the environment variable ``ALEXNET_LAB_DATA``;
2. Keras's cache, ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), where
   ``keras.datasets.fashion_mnist`` / ``cifar10`` store their downloads;
3. the usual torchvision roots: ``./data``, ``../data``, ``$TORCH_HOME`` and ``$TORCH_HOME/datasets``
   (default ``~/.cache/torch``); torchvision has no default root, these are the common choices;
4. Debian's package ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST only);
5. the alexnet-lab cache folder (``ALEXNET_LAB_CACHE``, default ``~/.cache/alexnet-lab`` on Linux),
   where earlier downloads went;
6. a download into the cache folder (``download=True``, the default), with a progress bar,
   checked against a known checksum and written atomically by `pooch <https://www.fatiando.org/pooch>`_:
   an interrupted or corrupted download never leaves a file that a later run accepts;
7. if all of that fails (offline, or ``download=False``), the small sample that ships inside the
   package, with a notice saying so and how to get the full set.

Inside each folder these layouts are recognised:

* Fashion-MNIST: the four IDX files (``train-images-idx3-ubyte`` ... , gzip-compressed or not) in
  ``fashion-mnist/``, ``FashionMNIST/raw/`` (torchvision) or the folder itself. Their decompressed
  content must match the official release's SHA-256 (repackagers such as Debian recompress the
  gzip streams, so the ``.gz`` files' own hashes differ).
* CIFAR-10: ``cifar-10-batches-bin/`` (the official binary release, preferred: it needs no pickle),
  ``cifar-10-batches-py/`` (the python release, read with a restricted unpickler), the archives
  ``cifar-10-binary.tar.gz`` / ``cifar-10-python.tar.gz`` / ``cifar10-jpg.tar.xz``, or the image-folder
  layout ``cifar10/train/<class>/*.jpg`` + ``cifar10/test/<class>/*.jpg``. Archives are extracted
  into the cache folder (the data folder may be read-only); the 60,000 decoded JPEGs are cached
  there as .npy files, so the second load takes well under a second.

Anything malformed (truncated gzip, wrong IDX header, image/label count mismatch, checksum
mismatch, a pickle holding anything but CIFAR data, an unreadable image) raises
:class:`DataFormatError` naming the file and what is wrong: bad data is never returned.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .files import atomic_write

__all__ = [
    "ImageSet",
    "DataFormatError",
    "DataNotFoundError",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "SAMPLE",
    "load_fashion_mnist",
    "load_cifar10",
    "load_image_folder",
    "load_sample",
    "random_dataset",
    "per_class_subset",
    "split_8_1_1",
    "validation_split",
    "make_image_folder",
    "read_idx",
    "read_cifar10_binary",
    "read_cifar10_python",
    "data_locations",
    "cache_dir",
]


@dataclass(frozen=True)
class ImageSet:
    """Images and labels held in memory, framework-free.

    Attributes:
        images: uint8 array of shape ``(N, H, W, C)`` (channels-last, values 0-255).
        labels: int64 array of shape ``(N,)`` with values in ``range(len(classes))``.
        classes: the class names, index ``i`` naming label ``i``.
        name: a short description ("fashion_mnist train", ...), shown in summaries.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"ImageSet.images must be uint8 of shape (N, H, W, C), got {self.images.dtype} "
                             f"{self.images.shape}.")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"ImageSet has {len(self.images)} images but labels of shape {self.labels.shape}.")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"ImageSet labels must lie in 0..{len(self.classes) - 1} for {len(self.classes)} "
                             f"classes, got {self.labels.min()}..{self.labels.max()}.")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(H, W, C)``."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices, name: str | None = None) -> ImageSet:
        """The images at ``indices`` (copied), as a new ImageSet."""
        indices = np.asarray(indices)
        return ImageSet(self.images[indices], self.labels[indices], self.classes,
                        self.name if name is None else name)

    def class_counts(self) -> np.ndarray:
        """How many images each class has: an int array of length ``num_classes``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        return (f"ImageSet({self.name!r}: {len(self)} images of {'×'.join(map(str, self.shape))}, "
                f"{self.num_classes} classes)")


class DataFormatError(ValueError):
    """A data file is malformed or is not what it claims to be; the message names the file."""


class DataNotFoundError(FileNotFoundError):
    """A data set was not found; the message says which files are needed and where to put them."""


class _DownloadFailed(ConnectionError):
    """Every download mirror failed for network reasons (offline, server down)."""


# --------------------------------------------------------------------------------------------
# Constants: class names, file names, checksums, download addresses
# --------------------------------------------------------------------------------------------

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: Pass ``path=SAMPLE`` to a loader to use the small sample bundled with the package.
SAMPLE = "sample"

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
#: The official CIFAR-10 binary release and its SHA-256.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"

_FASHION_HELP = ("Get them from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion) or, on "
                 "Debian/Ubuntu, `sudo apt install dataset-fashion-mnist`.")
_CIFAR_HELP = ("Get cifar-10-binary.tar.gz (or cifar-10-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html;"
               " the archive itself is enough, it is unpacked for you.")
#: Where Debian's dataset packages (``dataset-fashion-mnist``) install their files.
DEBIAN_DATASETS = Path("/usr/share/datasets")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                   ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".avif"}
_CIFAR_RECORD = 1 + 32 * 32 * 3  # one label byte, then 1024 red, 1024 green and 1024 blue bytes
_DECODE_LIMIT_BYTES = 4 * 2**30  # refuse to decode image folders larger than 4 GiB in memory


# --------------------------------------------------------------------------------------------
# Where data is looked for
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """The alexnet-lab cache folder: ``$ALEXNET_LAB_CACHE``, else pooch's per-user cache folder.

    Downloads, extracted archives and decoded image folders go here (created when first needed).
    """
    env = os.environ.get("ALEXNET_LAB_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    import pooch

    return Path(pooch.os_cache("alexnet-lab")).absolute()


def data_locations() -> list[tuple[str, Path]]:
    """The folders searched when no ``path`` is given, in order, each with why it is searched."""
    keras_datasets = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"
    torch_home = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch").expanduser()
    places = []
    if os.environ.get("ALEXNET_LAB_DATA"):
        places.append(("ALEXNET_LAB_DATA", Path(os.environ["ALEXNET_LAB_DATA"]).expanduser()))
    places += [
        ("Keras cache", keras_datasets),
        ("Keras cache", keras_datasets / "cifar-10-batches-py-target"),  # where Keras 3 unpacks CIFAR-10
        ("torchvision root", Path("data")),
        ("torchvision root", Path("..") / "data"),
        ("torchvision root", torch_home),
        ("torchvision root", torch_home / "datasets"),
        ("Debian package", DEBIAN_DATASETS),
        ("alexnet-lab cache", cache_dir()),
    ]
    unique, seen = [], set()
    for why, folder in places:
        folder = Path(os.path.abspath(folder))  # absolute, with ".." resolved
        if folder not in seen:
            seen.add(folder)
            unique.append((why, folder))
    return unique


def _say(message: str) -> None:
    """Tell the user something about the data (one short line, shown in notebooks and terminals)."""
    print(message, flush=True)


def _is_in_cache(path: Path) -> bool:
    return cache_dir() in Path(path).absolute().parents


# --------------------------------------------------------------------------------------------
# Small file helpers: atomic writes, cache keys, hashing
# --------------------------------------------------------------------------------------------

def _atomic_folder(target: Path, fill: Callable[[Path], None]) -> None:
    """Create the folder ``target`` by ``fill(tmp)`` on a temp folder beside it, renamed when complete.

    If ``fill`` fails, the temp folder is removed: ``target`` either exists complete or not at all.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process created the same folder first: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Downloads (pooch)
# --------------------------------------------------------------------------------------------

def _download(urls: Sequence[str], known_hash: str, folder: Path, fname: str) -> Path:
    """Download ``fname`` from the first mirror that works into ``folder``, verified by ``known_hash``.

    pooch streams into a temp file in ``folder``, checks the hash and only then renames it to
    ``fname``, so a failed or interrupted download leaves nothing that a later run would accept.

    Raises:
        DataFormatError: a mirror served a file with the wrong checksum.
        _DownloadFailed: every mirror failed for network reasons.
    """
    import pooch

    errors = []
    for url in urls:
        try:
            downloader = pooch.HTTPDownloader(progressbar=True, timeout=30)
            return Path(pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder,
                                       downloader=downloader, progressbar=True))
        except ValueError as e:  # pooch's hash mismatch
            raise DataFormatError(f"The download of {fname} from {url} failed its checksum check and was "
                                  f"discarded: {e}") from e
        except Exception as e:  # requests' network errors, OSError, ...
            errors.append(f"{url}: {type(e).__name__}: {e}")
    raise _DownloadFailed(f"Could not download {fname}:\n  " + "\n  ".join(errors))


# --------------------------------------------------------------------------------------------
# Fashion-MNIST: IDX files
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
    digest = _sha256(magic + dims_bytes + body)
    return np.frombuffer(body, dtype=np.uint8).reshape(dims), digest


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
    if _is_in_cache(path):
        path.unlink(missing_ok=True)
        removed = " It was in the alexnet-lab cache and has been deleted; the next load downloads it again."
    raise DataFormatError(f"{path}: the decompressed content has SHA-256 {found}, but the official Fashion-MNIST "
                          f"file has {expected}: the file is damaged or is not the official release.{removed}")


def _download_fashion() -> dict[str, Path]:
    folder = cache_dir() / "fashion-mnist"
    files = {}
    for role, name in FASHION_MNIST_FILES.items():
        urls = [base + name + ".gz" for base in FASHION_MNIST_URLS]
        files[role] = _download(urls, "md5:" + FASHION_MNIST_GZ_MD5[name], folder, name + ".gz")
    return files


def load_fashion_mnist(path: str | os.PathLike | None = None, *, per_class: int | None = None,
                       test_per_class: int | None = None, seed: int = 0,
                       download: bool = True) -> tuple[ImageSet, ImageSet]:
    """Fashion-MNIST: 60,000 training and 10,000 test images of 28x28x1, 10 classes of clothing.

    Args:
        path: a folder holding the four IDX files (or ``fashion-mnist/`` inside it), ``"sample"`` for
            the bundled sample, or None to search the places listed in this module's docstring.
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
    found = _locate(path, "Fashion-MNIST", _find_fashion, needed, _FASHION_HELP,
                    _download_fashion if download else None)
    if isinstance(found, _SampleReason):
        return _load_sample("fashion_mnist", found, per_class, test_per_class, seed)
    train, test = _read_fashion_files(found)
    where = found["train_images"].parent
    return _finish("Fashion-MNIST", train, test, where, per_class, test_per_class, seed)


# --------------------------------------------------------------------------------------------
# Searching, then downloading, then the sample: shared by both data sets
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _SampleReason:
    """Why the bundled sample is used instead of the full data set."""

    text: str
    help: str = ""


def _locate(path, title: str, find: Callable, needed: str, get_help: str, download: Callable | None):
    """Find a data set: ``path`` only if given, else the search list, then a download, then the sample.

    ``find(root, partial)`` returns what was found under ``root`` or None. Returns what ``find``
    returned, what ``download()`` returned, or a :class:`_SampleReason`.
    """
    partial: list[str] = []
    if path is not None and os.fspath(path) == SAMPLE:
        return _SampleReason(f'path="{SAMPLE}" was given')
    if path is not None:
        root = Path(path).expanduser()
        result = find(root, partial) if root.exists() else None
        if result is None:
            raise DataNotFoundError(f"{title} was not found in {root}" + (": " + "; ".join(partial) if partial else "")
                                    + f". Expected the files {needed} there (or in a sub-folder named as in the "
                                    f"alexnet_lab.data docstring). {get_help}")
        return result
    places = data_locations()
    for _why, root in places:
        if root.exists():
            result = find(root, partial)
            if result is not None:
                return result
    searched = "\n".join(f"  - {root} ({why})" for why, root in places)
    notes = "".join(f"\n  note: {p}" for p in partial)
    help_text = (f"{title} needs the files {needed}. {get_help}\nPut them in a folder (for example ~/data/) and set "
                 f"the environment variable ALEXNET_LAB_DATA to that folder, or pass path=... to the loader.\n"
                 f"Searched:\n{searched}{notes}")
    if download is None:
        return _SampleReason("download=False and the full data set was not found", help_text)
    try:
        return download()
    except _DownloadFailed as e:
        return _SampleReason(f"the download failed (offline?): {e}", help_text)


def _load_sample(which: str, reason: _SampleReason, per_class, test_per_class, seed) -> tuple[ImageSet, ImageSet]:
    """The small sample bundled in ``alexnet_lab/sample_data``, announced with a visible notice."""
    train, test = load_sample(which)
    title = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}[which]
    full = {"fashion_mnist": "60,000 + 10,000", "cifar10": "50,000 + 10,000"}[which]
    lines = [
        f"NOTICE: using the small {title} SAMPLE bundled with alexnet-lab: {len(train):,} train + {len(test):,} test "
        f"images ({train.class_counts()[0]} + {test.class_counts()[0]} per class) instead of the full {full}.",
        f"Why: {reason.text}.",
        "Accuracies measured on the sample are lower and noisier than on the full data set.",
    ]
    if reason.help:
        lines.append("To use the full data set: " + reason.help)
    bar = "=" * 100
    _say("\n".join([bar, *lines, bar]))
    return _subsets(train, test, per_class, test_per_class, seed)


def load_sample(which: str) -> tuple[ImageSet, ImageSet]:
    """The bundled sample ``"fashion_mnist"`` or ``"cifar10"`` as ``(train, test)``, without any notice."""
    from importlib.resources import files

    resource = files("alexnet_lab") / "sample_data" / f"{which}_sample.npz"
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        classes = tuple(str(c) for c in npz["classes"])
        return tuple(ImageSet(npz[f"{s}_images"], npz[f"{s}_labels"].astype(np.int64), classes,
                              f"{which} sample {s}") for s in ("train", "test"))


def _subsets(train, test, per_class, test_per_class, seed) -> tuple[ImageSet, ImageSet]:
    if per_class is not None:
        train = per_class_subset(train, per_class, seed=seed)
    if test_per_class is not None:
        test = per_class_subset(test, test_per_class, seed=seed)
    return train, test


def _finish(title, train, test, where, per_class, test_per_class, seed, detail="") -> tuple[ImageSet, ImageSet]:
    """Take the per-class subsets and print the one line that says what was loaded from where."""
    n_train, n_test = len(train), len(test)
    train, test = _subsets(train, test, per_class, test_per_class, seed)
    counts = [f"{len(train):,} train" + (f" (of {n_train:,})" if len(train) != n_train else ""),
              f"{len(test):,} test" + (f" (of {n_test:,})" if len(test) != n_test else "")]
    _say(f"{title}: {counts[0]} + {counts[1]} images from {where}{detail}")
    return train, test


# --------------------------------------------------------------------------------------------
# CIFAR-10: binary release, python release (restricted unpickler), archives, image folder
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
    """
    stem = archive.name.split(".tar")[0]
    target = cache_dir() / "extracted" / f"{stem}-{_file_key(archive)}"
    if target.is_dir():
        return target

    def extract(tmp: Path) -> None:
        _say(f"Unpacking {archive} into {target} (once) ...")
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
            if isinstance(e, PermissionError):
                raise
            raise DataFormatError(f"{archive}: cannot unpack: {type(e).__name__}: {e} (truncated or corrupt "
                                  "archive? Delete it and get it again).") from e

    _atomic_folder(target, extract)
    return target


def _read_cifar_folder(folder: Path) -> tuple[ImageSet, ImageSet]:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` (60,000 JPEGs: 10-40 s), cached as .npy files."""
    cache = cache_dir() / "decoded" / f"cifar10-{_folder_key(folder)}"
    cached = _load_decoded(cache, CIFAR10_CLASSES, "cifar10")
    if cached is not None:
        return cached
    _say(f"Decoding the CIFAR-10 images in {folder} (once; the arrays are cached in {cache}) ...")
    sets = []
    for split in ("train", "test"):
        images, labels, classes, _ = _read_split_folder(folder / split, None, expected_classes=CIFAR10_CLASSES)
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

    _atomic_folder(folder, write)


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
        _say(f"The cached arrays in {folder} are unreadable ({e}); decoding again.")
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
    return ("archive", _download([CIFAR10_URL], "sha256:" + CIFAR10_SHA256, cache_dir(), "cifar-10-binary.tar.gz"))


def load_cifar10(path: str | os.PathLike | None = None, *, per_class: int | None = None,
                 test_per_class: int | None = None, seed: int = 0,
                 download: bool = True) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10: 50,000 training and 10,000 test images of 32x32x3, 10 classes.

    Args:
        path: a folder holding one of the layouts listed in this module's docstring, one of those
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

    found = _locate(path, "CIFAR-10", find, needed, _CIFAR_HELP, _download_cifar if download else None)
    if isinstance(found, _SampleReason):
        return _load_sample("cifar10", found, per_class, test_per_class, seed)
    kind, where = found
    train, test, kind = _read_cifar(kind, where)
    detail = {"folder": " (JPEG images)", "python": " (python release)", "binary": " (binary release)"}.get(kind, "")
    return _finish("CIFAR-10", train, test, where, per_class, test_per_class, seed, detail)


# --------------------------------------------------------------------------------------------
# Image folders: class per sub-folder
# --------------------------------------------------------------------------------------------

def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _list_images(class_folder: Path) -> tuple[list[Path], int]:
    """The image files directly in ``class_folder`` (sorted by name), and how many other entries were skipped."""
    images, skipped = [], 0
    for entry in sorted(class_folder.iterdir()):
        if entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() in _IMAGE_SUFFIXES:
            images.append(entry)
        else:
            skipped += 1
    return images, skipped


def _to_rgb(image):
    """Any Pillow image as RGB: grayscale copied to 3 channels, transparency over white, CMYK converted."""
    from PIL import Image

    if image.mode.startswith("I;16"):  # 16-bit grayscale (some PNGs): scale 0-65535 to 0-255
        array = (np.asarray(image, dtype=np.uint32) // 257).astype(np.uint8)
        image = Image.fromarray(array)  # a 2-d uint8 array becomes a grayscale ("L") image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    """Decode one file into an (H, W, 3) uint8 array (EXIF rotation applied, resized if asked)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.load()
        image = _to_rgb(ImageOps.exif_transpose(image))
    if image_size is not None:
        image = ImageOps.fit(image, (image_size, image_size), method=Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _decode_all(paths: list[Path], image_size: int | None) -> np.ndarray:
    """Decode every path into one array; unreadable files and differing sizes raise one error listing them."""
    out, unreadable, odd_sizes = None, [], []
    for i, path in enumerate(paths):
        try:
            array = _decode(path, image_size)
        except Exception as e:  # Pillow raises many kinds of errors on damaged files
            unreadable.append(f"{path}: {type(e).__name__}: {e}")
            continue
        if out is None:
            if len(paths) * array.nbytes > _DECODE_LIMIT_BYTES:
                raise ValueError(f"{len(paths):,} images of {array.shape[1]}x{array.shape[0]} would need "
                                 f"{len(paths) * array.nbytes / 2**30:.1f} GiB of memory: pass image_size=... "
                                 "(e.g. 224) to shrink them while loading.")
            out = np.empty((len(paths), *array.shape), dtype=np.uint8)
        if array.shape != out.shape[1:]:
            odd_sizes.append(f"{path}: {array.shape[1]}x{array.shape[0]}")
            continue
        out[i] = array
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + (f"\n  ... and {len(unreadable) - 10} more" if len(unreadable) > 10
                                                 else "")
        raise DataFormatError(f"{len(unreadable)} image file(s) could not be read (corrupt or not really images); "
                              f"fix or delete them:\n  {shown}")
    if odd_sizes:
        first = f"{out.shape[2]}x{out.shape[1]} ({paths[0]})"
        raise ValueError(f"The images have different sizes: the first is {first}, but {len(odd_sizes)} differ, e.g. "
                         f"{'; '.join(odd_sizes[:3])}. Pass image_size=... (e.g. 64) to resize every image to a "
                         "square of that size.")
    if out is None:
        out = np.zeros((0, 1, 1, 3), dtype=np.uint8)
    return out


def _list_split(folder: Path, expected_classes=None) -> tuple[list[str], list[list[Path]], int]:
    """Class names, image paths per class and the number of skipped entries of one image folder."""
    if not folder.is_dir():
        raise DataNotFoundError(f"{folder}: no such folder.")
    class_dirs = _class_folders(folder)
    classes = [d.name for d in class_dirs]
    if expected_classes is not None and sorted(classes) != sorted(expected_classes):
        raise DataFormatError(f"{folder}: the class folders are {classes}, expected {list(expected_classes)}.")
    if expected_classes is not None:
        class_dirs = [folder / c for c in expected_classes]
        classes = list(expected_classes)
    if len(class_dirs) < 2:
        found = f"only the class folder '{classes[0]}'" if classes else "no class folders"
        raise ValueError(f"{folder}: found {found}. An image folder needs one sub-folder per class and at least two "
                         f"classes, e.g. {folder / 'cat'}/*.jpg and {folder / 'dog'}/*.jpg.")
    per_class, skipped = [], 0
    for class_dir in class_dirs:
        files, n_skipped = _list_images(class_dir)
        skipped += n_skipped
        if not files:
            raise ValueError(f"{class_dir}: the class '{class_dir.name}' has no images"
                             + (f" ({n_skipped} non-image entries skipped)" if n_skipped else "")
                             + f". Supported: {', '.join(sorted(_IMAGE_SUFFIXES))}.")
        per_class.append(files)
    return classes, per_class, skipped


def _read_split_folder(folder: Path, image_size, expected_classes=None):
    """Decode one ``<split>/<class>/*`` folder: ``(images, labels, classes, skipped)``."""
    classes, per_class, skipped = _list_split(folder, expected_classes)
    paths = [p for files in per_class for p in files]
    labels = np.concatenate([np.full(len(files), c, dtype=np.int64) for c, files in enumerate(per_class)])
    return _decode_all(paths, image_size), labels, tuple(classes), skipped


def _split_files(per_class: list[list[Path]], test_fraction: float, rng) -> tuple[list[list[Path]], list[list[Path]]]:
    """Split each class's files at random into train and test (at least one test image per class of 2+)."""
    train, test = [], []
    for files in per_class:
        order = rng.permutation(len(files))
        n_test = int(len(files) * test_fraction + 0.5)
        n_test = max(n_test, 1) if len(files) >= 2 else 0
        test.append([files[i] for i in sorted(order[:n_test])])
        train.append([files[i] for i in sorted(order[n_test:])])
    return train, test


def load_image_folder(path: str | os.PathLike, *, image_size: int | None = None, per_class: int | None = None,
                      test_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Your own images, one sub-folder per class: ``path/cat/*.jpg``, ``path/dog/*.jpg``, ...

    If ``path`` has ``train/`` and ``test/`` sub-folders (each with the same class folders), they
    are used as they are; otherwise each class's images are split at random into train and test
    (``test_fraction`` of them for test, stratified, reproducible with ``seed``).

    Every image becomes RGB: grayscale is copied to three channels, transparency (RGBA, palette)
    is laid over white, CMYK is converted, phone photos are turned upright (EXIF orientation).
    Files that are not images (by extension: .txt, .DS_Store, ...) are skipped and counted;
    image files that cannot be decoded raise :class:`DataFormatError` listing them.

    Args:
        path: the folder.
        image_size: resize every image to ``image_size x image_size`` (the centre is cropped to a
            square first, so nothing is stretched). Needed when the images differ in size;
            None keeps the size when all images share it.
        per_class: keep at most this many training images per class (chosen with ``seed``).
        test_fraction: the share of each class used for testing when there is no ``test/`` folder.
        seed: the seed of the random split and selection.

    Returns:
        ``(train, test)`` ImageSets with uint8 images ``(N, H, W, 3)``; classes are the sub-folder
        names in alphabetical order.
    """
    folder = Path(path).expanduser()
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size must be a positive int (the side of the square), got {image_size!r}.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    rng = np.random.default_rng(seed)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        classes, train_files, skipped = _list_split(folder / "train")
        _, test_files, skipped_test = _list_split(folder / "test", expected_classes=classes)
        skipped += skipped_test
        how = "train/ and test/ folders"
    else:
        classes, all_files, skipped = _list_split(folder)
        train_files, test_files = _split_files(all_files, test_fraction, rng)
        how = f"{test_fraction:.0%} of each class held out for testing, seed {seed}"
    if per_class is not None:
        _check_per_class(per_class)
        train_files = [[files[i] for i in sorted(rng.permutation(len(files))[:per_class])] for files in train_files]
    sets = []
    for split, files in (("train", train_files), ("test", test_files)):
        labels = np.concatenate([np.full(len(f), c, dtype=np.int64) for c, f in enumerate(files)])
        images = _decode_all([p for f in files for p in f], image_size)
        sets.append(ImageSet(images, labels, tuple(classes), f"{folder.name} {split}"))
    train, test = sets
    if not len(test):  # every class had a single image: keep the shapes consistent
        test = ImageSet(np.zeros((0, *train.shape), np.uint8), test.labels, test.classes, test.name)
    if len(test) and train.shape != test.shape:
        raise ValueError(f"{folder}: train images are {train.shape} but test images {test.shape}. Pass image_size=... "
                         "to give them all the same size.")
    note = f"; skipped {skipped} non-image entr{'y' if skipped == 1 else 'ies'}" if skipped else ""
    _say(f"Image folder {folder}: {len(train):,} train + {len(test):,} test images of {train.num_classes} classes "
         f"({', '.join(classes)}), {'×'.join(map(str, train.shape))} ({how}){note}")
    return train, test


def make_image_folder(imagesets: tuple[ImageSet, ImageSet], out_dir: str | os.PathLike, *,
                      classes: Sequence[str] = ("cat", "dog"), per_class: int | None = None,
                      test_per_class: int | None = None, format: str = "jpg", seed: int = 0) -> Path:
    """Write some classes of a ``(train, test)`` pair as an image folder: ``out_dir/train/<class>/00000.jpg``.

    This makes the kind of folder :func:`load_image_folder` reads (e.g. cats vs dogs from CIFAR-10)
    without needing a camera. Each file is written to a temp file and renamed, so an interrupted
    run never leaves half-written images; ``out_dir`` must not exist yet or be empty.

    Args:
        imagesets: ``(train, test)``, e.g. from :func:`load_cifar10`.
        out_dir: the folder to create.
        classes: the class names to write (they must be in ``train.classes``).
        per_class / test_per_class: at most this many images per class (chosen with ``seed``); None: all.
        format: ``"jpg"`` (quality 95) or ``"png"`` (lossless).

    Returns:
        ``out_dir`` as a Path.
    """
    train, test = imagesets
    out_dir = Path(out_dir).expanduser()
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}.get(format.lower())
    if pil_format is None:
        raise ValueError(f"format must be 'jpg' or 'png', got {format!r}.")
    unknown = [c for c in classes if c not in train.classes]
    if unknown:
        raise ValueError(f"Unknown class(es) {unknown}; {train.name!r} has {list(train.classes)}.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} already exists and is not empty: delete it or choose another folder.")
    for split, data, limit in (("train", train, per_class), ("test", test, test_per_class)):
        if limit is not None:
            data = per_class_subset(data, limit, seed=seed)
        for name in classes:
            folder = out_dir / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(data.images[data.labels == data.classes.index(name)]):
                _save_image(folder / f"{i:05d}.{format.lower()}", image, pil_format)
    return out_dir


def _save_image(path: Path, image: np.ndarray, pil_format: str) -> None:
    """Save one (H, W, C) uint8 array as an image file, atomically."""
    from PIL import Image

    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    options = {"quality": 95} if pil_format == "JPEG" else {}
    atomic_write(path, lambda f: picture.save(f, pil_format, **options), fsync=True)


# --------------------------------------------------------------------------------------------
# Random data, per-class subsets and splits
# --------------------------------------------------------------------------------------------

def random_dataset(n_train: int = 1000, n_test: int = 200, image_shape: tuple[int, int, int] = (32, 32, 3),
                   num_classes: int = 10, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Random uint8 images with random labels ("class 0", "class 1", ...): for tests and timing.

    There is nothing to learn here: a model should reach chance accuracy (1 / num_classes) on the
    test set, which makes it a quick sanity check.
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {image_shape}.")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    rng = np.random.default_rng(seed)
    classes = tuple(f"class {i}" for i in range(num_classes))
    sets = []
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8)
        labels = rng.integers(0, num_classes, size=n).astype(np.int64)
        sets.append(ImageSet(images, labels, classes, f"random {split}"))
    return tuple(sets)


def _check_per_class(per_class) -> None:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}.")


def per_class_subset(data: ImageSet, per_class: int, *, seed: int = 0) -> ImageSet:
    """``per_class`` images of each class, chosen at random with ``seed``, in their original order.

    The same seed always gives the same images, and with one seed a smaller ``per_class`` gives a
    subset of a larger one. A class with fewer images keeps all of them (and a note is printed).
    """
    _check_per_class(per_class)
    rng = np.random.default_rng(seed)
    chosen, short = [], []
    for c in range(data.num_classes):
        indices = np.flatnonzero(data.labels == c)
        if len(indices) < per_class:
            short.append(f"{data.classes[c]} ({len(indices)})")
        chosen.append(rng.permutation(indices)[:per_class])
    if short:
        _say(f"Note: {data.name}: per_class={per_class} but some classes have fewer images, all kept: "
             f"{', '.join(short)}.")
    return data.subset(np.sort(np.concatenate(chosen)))


def _stratified_split(data: ImageSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(rest, taken)``: ``fraction`` of each class taken at random (rounded per class)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}.")
    rng = np.random.default_rng(seed)
    rest, taken = [], []
    for c in range(data.num_classes):
        indices = rng.permutation(np.flatnonzero(data.labels == c))
        k = int(len(indices) * fraction + 0.5)
        taken.append(indices[:k])
        rest.append(indices[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(taken))


def _base_name(data: ImageSet) -> str:
    return data.name.rsplit(" ", 1)[0] if data.name.endswith((" train", " test")) else data.name


def validation_split(train: ImageSet, fraction: float = 0.1, *, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Hold out ``fraction`` of each class of ``train`` for validation: ``(train_rest, val)``.

    Stratified (every class keeps its share) and reproducible with ``seed``.
    """
    rest, val = _stratified_split(train, fraction, seed)
    base = _base_name(train)
    return train.subset(rest, f"{base} train"), train.subset(val, f"{base} val")


def split_8_1_1(train: ImageSet, test: ImageSet, *, seed: int = 0) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The common "8:1:1" scheme: keep ``train``, halve the official test set into validation and test.

    Each class of ``test`` is split in half at random (stratified, reproducible with ``seed``), so
    hyper-parameters are tuned on the validation half and the other half is looked at once, at
    the end. The actual proportions are those of the data set: Fashion-MNIST 60,000 / 5,000 /
    5,000 (12:1:1), CIFAR-10 50,000 / 5,000 / 5,000 (10:1:1).

    Returns:
        ``(train, val, test)``.
    """
    if train.classes != test.classes:
        raise ValueError(f"train and test have different classes: {train.classes} vs {test.classes}.")
    test_half, val_half = _stratified_split(test, 0.5, seed)
    base = _base_name(test)
    return train, test.subset(val_half, f"{base} val"), test.subset(test_half, f"{base} test")
