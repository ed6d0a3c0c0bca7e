"""The in-memory data set every loader returns, its errors, random data, per-class subsets and splits.

:class:`ImageSet` holds uint8 images ``(N, H, W, C)``, integer labels ``(N,)`` and the class names.
:func:`per_class_subset`, :func:`validation_split` and :func:`split_8_1_1` select from one
reproducibly (stratified, with a seed); :func:`random_dataset` makes one with nothing to learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ImageSet",
    "DataFormatError",
    "DataNotFoundError",
    "say",
    "check_per_class",
    "random_dataset",
    "per_class_subset",
    "validation_split",
    "split_8_1_1",
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


def say(message: str) -> None:
    """Tell the user something about the data (one short line, shown in notebooks and terminals)."""
    print(message, flush=True)


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


def check_per_class(per_class) -> None:
    """Raise ValueError unless ``per_class`` (a number of images per class) is a positive int."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}.")


def per_class_subset(data: ImageSet, per_class: int, *, seed: int = 0) -> ImageSet:
    """``per_class`` images of each class, chosen at random with ``seed``, in their original order.

    The same seed always gives the same images, and with one seed a smaller ``per_class`` gives a
    subset of a larger one. A class with fewer images keeps all of them (and a note is printed).
    """
    check_per_class(per_class)
    rng = np.random.default_rng(seed)
    chosen, short = [], []
    for c in range(data.num_classes):
        indices = np.flatnonzero(data.labels == c)
        if len(indices) < per_class:
            short.append(f"{data.classes[c]} ({len(indices)})")
        chosen.append(rng.permutation(indices)[:per_class])
    if short:
        say(f"Note: {data.name}: per_class={per_class} but some classes have fewer images, all kept: "
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
