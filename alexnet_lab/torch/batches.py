"""What the PyTorch ``fit``, ``evaluate`` and ``predict`` accept as data, and the checks that explain a wrong batch.

Read this file beside :mod:`alexnet_lab.keras.batches`. The training functions take batches of
``(images, labels)``: a ``DataLoader`` (e.g. from :func:`alexnet_lab.torch.pipeline.make_batches`,
which also preprocesses and augments), a list of ``(x, y)`` tensor pairs, or whole arrays ``(x, y)``,
which :class:`ArrayBatches` cuts into batches. Images are float NCHW tensors, labels integer class
indices; :func:`check_batch` says clearly what is wrong with a batch that is not.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ArrayBatches", "as_batches", "num_batches", "check_batch"]


class ArrayBatches:
    """Whole arrays ``(x, y)`` served as batches, reshuffled every epoch when ``shuffle`` is True.

    ``fit(model, (x, y), batch_size=64)`` wraps its arrays in this. The shuffle uses
    PyTorch's global random generator, so :func:`alexnet_lab.seed_everything` makes it repeat.
    """

    def __init__(self, x, y, batch_size: int = 64, shuffle: bool = False):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"Got {len(self.x)} images but {len(self.y)} labels.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.batch_size, self.shuffle = batch_size, shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.y)) if self.shuffle else torch.arange(len(self.y))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]


def as_batches(data, *, batch_size: int = 64, shuffle: bool = False, what: str = "data"):
    """``data`` as an iterable of ``(x, y)`` batches: whole ``(x, y)`` arrays are cut into batches of ``batch_size``.

    Anything else that can be iterated (a ``DataLoader``, a list of ``(x, y)`` pairs) is returned
    as it is; None stays None. ``what`` names the argument in error messages (``"train"``, ``"val"``).
    """
    if data is None:
        return None
    if type(data).__name__ == "ImageSet":
        raise TypeError(f"{what} is an ImageSet (uint8 images, channels-last). Turn it into batches of float "
                        f"NCHW tensors first, e.g. alexnet_lab.torch.pipeline.make_batches({what}, preprocess, "
                        "batch_size=64).")
    if (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(a, (np.ndarray, torch.Tensor)) for a in data) and data[0].ndim == 4):
        return ArrayBatches(data[0], data[1], batch_size, shuffle)
    if not hasattr(data, "__iter__"):
        raise TypeError(f"{what} must yield (images, labels) batches: a DataLoader, a list of (x, y) tensor "
                        f"pairs, or a tuple of whole arrays (x, y). Got {type(data).__name__}.")
    return data


def num_batches(data, max_batches: int | None = None) -> int | None:
    """How many batches one pass over ``data`` gives (at most ``max_batches``); None when ``data`` has no length."""
    try:
        n = len(data)
    except TypeError:
        return max_batches
    return n if max_batches is None else min(n, max_batches)


def check_batch(batch, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch as ``(x, y)`` tensors (labels as int64), with a clear error for the usual mistakes.

    ``num_classes``: the model's number of classes, to check the labels against (on the CPU only:
    reading them from a GPU would wait for it).
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"Each batch must be a pair (images, labels); got {type(batch).__name__}"
                        f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}.")
    x, y = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
    if not x.is_floating_point():
        raise TypeError(f"Images must be float tensors (scaled and normalized), got {x.dtype}. Use "
                        "alexnet_lab.torch.pipeline.make_batches, or x.float() / 255 for a quick test.")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"Labels must be a 1-D tensor with one class index per image; got shape {tuple(y.shape)} "
                         f"for {len(x)} images. One-hot labels? Use y.argmax(1).")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"Labels must be integer class indices, got {y.dtype}.")
    if num_classes is not None and y.device.type == "cpu" and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1} for this {num_classes}-class model; this batch "
                         f"has {int(y.min())}..{int(y.max())}. Build the model with num_classes=... to match the data.")
    return x, y.long()
