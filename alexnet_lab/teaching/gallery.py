"""Grids of images: a data set's images with their classes, and the images a model got most confidently wrong.

* :func:`show_images`: the first images of a set, titled with their classes (and, given
  predictions, green when right and red when wrong);
* :func:`most_confident_mistakes`: the test images a model got wrong with the highest probability.

Inputs are numpy arrays, framework-free. Images are always channels-last, ``(N, H, W, C)``, uint8
(0-255) or float; labels and predictions are class indices. Every plotting function returns a
matplotlib ``Figure`` (see :mod:`alexnet_lab.teaching.plots`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alexnet_lab.teaching.evaluation import confident_mistake_indices
from alexnet_lab.teaching.plots import image_grid, new_figure

__all__ = ["RIGHT", "WRONG", "show_images", "most_confident_mistakes"]

RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red for correct and wrong predictions


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def _as_images(images) -> np.ndarray:
    """Check that ``images`` are channels-last ``(N, H, W, C)`` and return them as numpy.

    Also accepted: one image ``(H, W, 3)`` or ``(H, W, 1)``, and grayscale images ``(N, H, W)``.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None] if images.shape[-1] in (1, 3) else images[..., None]
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, H, W, C) or (N, H, W), got shape {images.shape}.")
    if images.shape[-1] not in (1, 3):
        hint = (" They look channels-first: transpose them with np.transpose(images, (0, 2, 3, 1))."
                if images.shape[1] in (1, 3) else "")
        raise ValueError(f"Expected images with 1 or 3 channels last, (N, H, W, C), got shape {images.shape}.{hint}")
    return images


def _displayable(image: np.ndarray) -> np.ndarray:
    """One image as imshow draws it faithfully: uint8 as is, floats in [0, 1] as is, other floats rescaled to [0, 1]."""
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:  # e.g. standardized images: stretch to the full range for display
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image


def _show(ax, image: np.ndarray) -> None:
    image = _displayable(image)
    if image.shape[-1] == 1:
        vmax = 255 if image.dtype == np.uint8 else 1.0
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=vmax)
    else:
        ax.imshow(image)


def show_images(images, labels=None, classes: Sequence[str] | None = None, predictions=None,
                n: int = 16, cols: int = 8, title: str | None = None):
    """A grid of the first ``n`` images, titled with their class names.

    ``labels`` and ``predictions`` are class indices; with ``classes`` they are shown as names.
    With predictions, a correct one is titled in green, a wrong one in red with the true class below.
    """
    images = _as_images(images)
    n = min(n, len(images))
    if n == 0:
        raise ValueError("show_images got no images to show.")
    labels = None if labels is None else np.asarray(labels)
    predictions = None if predictions is None else np.asarray(predictions)
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values is not None and len(values) < n:
            raise ValueError(f"show_images: {len(values)} {name} for {n} images.")

    def name_of(i):
        return classes[i] if classes is not None else str(i)

    fig, axes = image_grid(n, cols, title_lines=2 if predictions is not None else 1)
    for i, ax in enumerate(axes):
        _show(ax, images[i])
        if predictions is not None:
            right = labels is not None and predictions[i] == labels[i]
            text = name_of(predictions[i]) if right or labels is None else \
                f"{name_of(predictions[i])}\n(true: {name_of(labels[i])})"
            ax.set_title(text, fontsize=8, color=RIGHT if right else (WRONG if labels is not None else "black"))
        elif labels is not None:
            ax.set_title(name_of(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# A model's mistakes
# ---------------------------------------------------------------------------
def most_confident_mistakes(images, y_true, probs, classes: Sequence[str], n: int = 12, cols: int = 6):
    """The test images the model got wrong with the most confidence, titled 'predicted (confidence)' and the truth."""
    images = _as_images(images)
    indices = confident_mistake_indices(y_true, probs, n)  # checks the probabilities and the labels
    probs, y_true = np.asarray(probs, dtype=np.float64), np.asarray(y_true)
    if len(images) != len(probs):
        raise ValueError(f"{len(images)} images but {len(probs)} rows of probabilities.")
    if len(indices) == 0:
        fig, grid = new_figure(figsize=(4, 1.5))
        grid[0, 0].set_axis_off()
        grid[0, 0].text(0.5, 0.5, f"No mistakes among {len(images):,} images.", ha="center", va="center")
        return fig
    fig, axes = image_grid(len(indices), cols, cell=1.7, title_lines=2)
    for ax, i in zip(axes, indices):
        predicted = int(probs[i].argmax())
        _show(ax, images[i])
        ax.set_title(f"{classes[predicted]} ({probs[i, predicted]:.0%})\ntrue: {classes[y_true[i]]}",
                     fontsize=8, color=WRONG)
    fig.suptitle("most confident mistakes: prediction (probability), true class", fontsize=10)
    fig.tight_layout()
    return fig
