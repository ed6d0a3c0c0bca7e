"""Data sets for the course: Fashion-MNIST, CIFAR-10, image folders and random data.

Every loader returns ``(train, test)``: two :class:`ImageSet` objects holding uint8 images
``(N, H, W, C)``, integer labels ``(N,)`` and the class names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImageSet"]


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

    def __repr__(self) -> str:
        return (f"ImageSet({self.name!r}: {len(self)} images of {'×'.join(map(str, self.shape))}, "
                f"{self.num_classes} classes)")
