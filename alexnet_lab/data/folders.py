"""Image folders, one sub-folder per class: :func:`load_image_folder`, :func:`make_image_folder` and image decoding.

A folder ``path/cat/*.jpg``, ``path/dog/*.jpg`` ... (or ``path/train/<class>/`` + ``path/test/<class>/``)
becomes a ``(train, test)`` pair of :class:`~alexnet_lab.data.ImageSet`. Every image is decoded by
Pillow into RGB (:func:`decode_images`); files that are not images are skipped and counted, image
files that cannot be decoded raise :class:`~alexnet_lab.data.DataFormatError` listing them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet_lab.core.files import atomic_write
from alexnet_lab.data.imageset import (
    DataFormatError,
    DataNotFoundError,
    ImageSet,
    check_per_class,
    per_class_subset,
    say,
)

__all__ = ["decode_images", "read_split_folder", "load_image_folder", "make_image_folder"]

# The file name endings read as images (compared in lower case); other files are skipped.
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                   ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".avif"}
_DECODE_LIMIT_BYTES = 4 * 2**30  # refuse to decode image folders larger than 4 GiB in memory


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


def decode_images(paths: Sequence[str | os.PathLike], image_size: int | None = None) -> np.ndarray:
    """Decode image files into one uint8 array ``(N, H, W, 3)``, exactly as :func:`load_image_folder` does.

    Every image becomes RGB (grayscale copied to three channels, transparency laid over white, CMYK
    converted, EXIF orientation applied); with ``image_size`` the centre is cropped to a square and
    resized to ``image_size x image_size``.

    Raises:
        DataFormatError: some files cannot be decoded (all of them are listed, not just the first).
        ValueError: the images differ in size (pass ``image_size``), or would need more than 4 GiB.
    """
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


def read_split_folder(folder: Path, image_size, expected_classes=None):
    """Decode one ``<split>/<class>/*`` folder: ``(images, labels, classes, skipped)``."""
    classes, per_class, skipped = _list_split(folder, expected_classes)
    paths = [p for files in per_class for p in files]
    labels = np.concatenate([np.full(len(files), c, dtype=np.int64) for c, files in enumerate(per_class)])
    return decode_images(paths, image_size), labels, tuple(classes), skipped


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
        check_per_class(per_class)
        train_files = [[files[i] for i in sorted(rng.permutation(len(files))[:per_class])] for files in train_files]
    sets = []
    for split, files in (("train", train_files), ("test", test_files)):
        labels = np.concatenate([np.full(len(f), c, dtype=np.int64) for c, f in enumerate(files)])
        images = decode_images([p for f in files for p in f], image_size)
        sets.append(ImageSet(images, labels, tuple(classes), f"{folder.name} {split}"))
    train, test = sets
    if not len(test):  # every class had a single image: keep the shapes consistent
        test = ImageSet(np.zeros((0, *train.shape), np.uint8), test.labels, test.classes, test.name)
    if len(test) and train.shape != test.shape:
        raise ValueError(f"{folder}: train images are {train.shape} but test images {test.shape}. Pass image_size=... "
                         "to give them all the same size.")
    note = f"; skipped {skipped} non-image entr{'y' if skipped == 1 else 'ies'}" if skipped else ""
    say(f"Image folder {folder}: {len(train):,} train + {len(test):,} test images of {train.num_classes} classes "
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
