"""What the Keras ``fit``, ``evaluate`` and ``predict`` accept as data, and the checks that explain a wrong batch.

Read this file beside :mod:`alexnet_lab.torch.batches`. The training functions take a
``tf.data.Dataset`` of ``(images, labels)`` batches (e.g. from
:func:`alexnet_lab.keras.pipeline.make_batches`, which also preprocesses and augments), or whole
NumPy arrays ``(x, y)``, which :func:`as_batches` cuts into batches. Images are float NHWC,
labels integer class indices; the checks say clearly what is wrong when they are not.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["as_batches", "num_batches"]


def as_batches(data, *, batch_size: int = 64, shuffle: bool = False, what: str = "data",
               max_batches: int | None = None, num_classes: int | None = None):
    """``data`` as a ``tf.data.Dataset`` of ``(x, y)`` batches, checked, limited to ``max_batches`` batches.

    Whole NumPy arrays ``(x, y)`` are cut into batches of ``batch_size`` (reshuffled every epoch
    with ``shuffle``), their labels checked against ``num_classes``; a dataset is checked by its
    element spec (dtypes and shapes); None stays None. ``what`` names the argument in error messages.
    """
    if data is None:
        return None
    if type(data).__name__ == "ImageSet":
        raise TypeError(f"{what} is an ImageSet (uint8 images). Turn it into batches of float images first, e.g. "
                        f"alexnet_lab.keras.pipeline.make_batches({what}, preprocess, batch_size=64).")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(a, np.ndarray) for a in data):
        x, y = data
        _check_arrays(x, y, num_classes)
        data = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            data = data.shuffle(len(x), reshuffle_each_iteration=True)
        data = data.batch(batch_size)
    if not isinstance(data, tf.data.Dataset):
        raise TypeError(f"{what} must be a tf.data.Dataset of (images, labels) batches or a tuple of NumPy arrays "
                        f"(x, y); got {type(data).__name__}.")
    _check_spec(data.element_spec)
    return data.take(max_batches) if max_batches is not None else data


def _check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int | None) -> None:
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"Labels must be a 1-D array with one class index per image; got shape {y.shape} for "
                         f"{len(x)} images. One-hot labels? Use y.argmax(1).")
    if x.ndim != 4:
        raise ValueError(f"Images must have the shape (N, H, W, C); got {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"Images must be floats (scaled and normalized), got {x.dtype}. Use "
                        "alexnet_lab.keras.pipeline.make_batches, or x.astype('float32') / 255 for a quick test.")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"Labels must be integers (class indices), got {y.dtype}.")
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1} for this {num_classes}-class model; got "
                         f"{y.min()}..{y.max()}. Build the model with num_classes=... to match the data.")


def _check_spec(spec) -> None:
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise TypeError(f"The dataset must yield (images, labels) pairs; its elements are {spec}.")
    x, y = spec
    if not x.dtype.is_floating:
        raise TypeError(f"Images must be floats (scaled and normalized), got {x.dtype.name}. Add "
                        ".map(lambda x, y: (tf.cast(x, tf.float32) / 255, y)), or use "
                        "alexnet_lab.keras.pipeline.make_batches.")
    if x.shape.rank is not None and x.shape.rank != 4:
        raise ValueError(f"Images must come in batches of shape (batch, H, W, C); got {x.shape}. Call .batch(64).")
    if y.shape.rank is not None and y.shape.rank != 1:
        raise ValueError(f"Labels must come as 1-D batches of class indices; got {y.shape}. One-hot labels? "
                         "Use .map(lambda x, y: (x, tf.argmax(y, axis=-1))).")
    if not y.dtype.is_integer:
        raise TypeError(f"Labels must be integers (class indices), got {y.dtype.name}.")


def num_batches(data, max_batches: int | None = None) -> int | None:
    """How many batches one pass over the dataset gives (at most ``max_batches``); None when TensorFlow cannot tell."""
    n = int(data.cardinality())
    if n < 0:
        return max_batches
    return n if max_batches is None else min(n, max_batches)
