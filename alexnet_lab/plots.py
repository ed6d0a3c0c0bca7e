"""Pictures for the course: training curves, images, confusion matrices, filters, feature maps, diagrams.

Every plotting function returns a matplotlib ``Figure``. In a notebook the figure shows when
it is the value of a cell's last line (or with ``display(fig)``); anywhere, :func:`save_figure`
writes it to a file. The figures are closed for pyplot, so a notebook never shows one twice.

Inputs are numpy arrays, framework-free. Two helpers fetch what they need from a Keras or a
PyTorch model, importing the framework only when they run:

* :func:`conv1_weights` returns the first layer's filters as ``(kh, kw, in, out)``,
* :func:`feature_maps` returns a layer's output for one image as ``(H, W, C)``.

Images are always channels-last, ``(N, H, W, C)``, uint8 (0-255) or float.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import architecture as arch
from .files import atomic_write

__all__ = [
    "plot_history", "LiveCurves", "show_images", "confusion_matrix", "per_class_accuracy",
    "plot_confusion_matrix", "plot_per_class_accuracy", "softmax", "confident_mistake_indices", "most_confident_mistakes",
    "filter_mosaic", "plot_filters", "conv1_weights", "feature_maps", "plot_feature_maps",
    "Stage", "architecture_stages", "plot_architecture", "plot_layer_costs", "save_figure",
]

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red for correct and wrong predictions


def _new_figure(rows: int = 1, cols: int = 1, *, figsize=None, **kwargs):
    """A figure with a grid of axes, made with pyplot (so notebooks know how to show it) and closed for pyplot.

    Closing it only means pyplot stops tracking it: the figure still draws, shows as a cell's
    value and saves. Without this, a notebook would show it twice (once as the value, once when
    pyplot flushes its open figures at the end of the cell).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False, **kwargs)
    plt.close(fig)
    return fig, axes


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------
def plot_history(*histories, metrics: Sequence[str] = ("loss", "accuracy"), ax=None, title: str | None = None):
    """Training curves of one or more :class:`~alexnet_lab.history.History` objects, one panel per metric.

    Training values are solid lines, validation values (``val_<metric>``) dashed, one colour per
    history (e.g. one Keras and one PyTorch run), labelled ``history.label or history.framework``.
    ``ax``: an Axes, or a sequence of one Axes per metric, to draw into instead of a new figure.
    """
    if not histories:
        raise ValueError("plot_history needs at least one History, e.g. plot_history(keras_history, torch_history).")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    known = sorted({k for h in histories for k in h.metrics})
    missing = [m for m in metrics if not any(m in h or f"val_{m}" in h for h in histories)]
    if missing and any(h.epochs for h in histories):
        raise ValueError(f"No history has the metric(s) {missing}; they have: {', '.join(known) or 'nothing yet'}.")
    if ax is None:
        fig, grid = _new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 3.6))
        axes = list(grid[0])
    else:
        axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) != len(metrics):
            raise ValueError(f"plot_history draws {len(metrics)} metric(s) {metrics}: pass as many Axes, "
                             f"got {len(axes)}.")
        fig = axes[0].figure
    for panel, metric in zip(axes, metrics):
        _draw_metric(panel, histories, metric)
    if axes[0].get_lines():  # nothing to list before the first epoch
        axes[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_metric(ax, histories, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    for i, h in enumerate(histories):
        color = COLORS[i % len(COLORS)]
        name = h.label or h.framework
        for key, style, part in ((metric, "-", "train"), (f"val_{metric}", "--", "validation")):
            values = h.metrics.get(key) or []
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, color=color, marker="o", markersize=3, label=f"{name} {part}")
    ax.set_title(metric.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if max((h.epochs for h in histories), default=0) == 1:  # one point per line: show epoch 1, not 0.95 ... 1.05
        ax.set_xlim(0.5, 1.5)
        ax.set_xticks([1])
    if "accuracy" in metric:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)


class LiveCurves:
    """Training curves that redraw in place in a notebook, once per epoch.

    ::

        live = LiveCurves(metrics=("loss", "accuracy"), others=[keras_history])
        for epoch in range(epochs):
            ...                      # train, then history.append(loss=..., val_loss=..., ...)
            live.update(history)

    In Jupyter (JupyterLab, classic Notebook, VS Code, or nbval with no screen) the figure is
    one output that each call replaces. Outside a notebook, each call prints one line with the
    last epoch's values instead. ``others``: finished histories drawn alongside, e.g. the other
    framework's run. After training, ``live.figure`` is the last figure drawn (for
    :func:`save_figure`).
    """

    def __init__(self, metrics: Sequence[str] = ("loss", "accuracy"), others: Sequence = (), title: str | None = None):
        self.metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        self.others = list(others)
        self.title = title
        self.figure = None
        self._handle = None

    def update(self, history) -> None:
        """Redraw the curves with ``history`` (the run in progress) after the finished ``others``."""
        self.figure = plot_history(*self.others, history, metrics=self.metrics, title=self.title)
        if not _in_notebook():
            print(_epoch_line(history))
            return
        from IPython.display import Image, display

        image = Image(data=_png_bytes(self.figure), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where outputs can be displayed and replaced)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _epoch_line(history) -> str:
    shown = [f"{k} {history.last(k):.4g}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in history]
    name = history.label or history.framework
    return f"{name} epoch {history.epochs}: " + ", ".join(shown)


def _png_bytes(fig, dpi: int = 100) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


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


def _image_grid(count: int, cols: int, cell: float = 1.5, title_lines: int = 1):
    """A figure with ``count`` image axes in rows of ``cols`` (unused grid cells removed)."""
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    fig, grid = _new_figure(rows, cols, figsize=(cell * cols, (cell + 0.32 * title_lines) * rows))
    axes = list(grid.flat)
    for ax in axes[count:]:
        fig.delaxes(ax)
    for ax in axes[:count]:
        ax.set_axis_off()
    return fig, axes[:count]


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

    fig, axes = _image_grid(n, cols, title_lines=2 if predictions is not None else 1)
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
# Confusion matrix and mistakes
# ---------------------------------------------------------------------------
def _class_indices(name: str, values, num_classes: int) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {values.shape}"
                         + (" (probabilities? take probs.argmax(axis=1))" if values.ndim == 2 else "") + ".")
    if values.size and not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices, got values such as {values[:3]}.")
        values = values.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(f"{name} must lie in 0..{num_classes - 1} for {num_classes} classes, "
                         f"got {values.min()}..{values.max()}.")
    return values.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``m[t, p]`` of images of true class ``t`` predicted as class ``p`` (rows: truth, columns: prediction)."""
    y_true = _class_indices("y_true", y_true, num_classes)
    y_pred = _class_indices("y_pred", y_pred, num_classes)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}.")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_accuracy(y_true, y_pred, num_classes: int) -> np.ndarray:
    """The fraction of each class's images predicted correctly (NaN for a class with no images)."""
    m = confusion_matrix(y_true, y_pred, num_classes)
    totals = m.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(m) / totals, np.nan)


def plot_confusion_matrix(y_true, y_pred, classes: Sequence[str], normalize: bool = True, ax=None,
                          title: str | None = None):
    """The confusion matrix as a picture: rows are true classes, columns predicted ones.

    ``normalize=True`` shows each row as fractions of that class's images (the diagonal is the
    per-class accuracy); ``False`` shows counts.
    """
    m = confusion_matrix(y_true, y_pred, len(classes))
    totals = m.sum(axis=1, keepdims=True)
    shown = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0) if normalize else m
    if ax is None:
        size = max(4.5, 0.5 * len(classes) + 2)
        fig, grid = _new_figure(figsize=(size + 0.8, size))
        ax = grid[0, 0]
    else:
        fig = ax.figure
    vmax = 1.0 if normalize else max(int(m.max()), 1)
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    k = len(classes)
    if k <= 20:  # write the numbers into the cells
        for t in range(k):
            for p in range(k):
                text = f"{shown[t, p]:.0%}" if normalize else f"{m[t, p]:d}"
                if normalize and m[t, p] == 0:
                    text = "·"
                ax.text(p, t, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[t, p] > 0.6 * vmax else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(m) / max(m.sum(), 1)
    ax.set_title(title or f"accuracy {accuracy:.1%} on {m.sum():,} images")
    fig.tight_layout()
    return fig


def plot_per_class_accuracy(y_true, predictions, classes: Sequence[str], ax=None, title: str | None = None):
    """Each class's accuracy as horizontal bars, one colour per model, with the chance level dashed.

    ``predictions``: one model's predicted class indices, or a dict ``{name: predictions}`` to
    compare several models (e.g. ``{"Keras": k_pred, "PyTorch": t_pred}``) on the same ``y_true``.
    The legend gives each model's overall accuracy. Classes are listed top to bottom in ``classes``' order.
    """
    runs = dict(predictions) if isinstance(predictions, dict) else {"model": predictions}
    if not runs:
        raise ValueError("plot_per_class_accuracy needs at least one model's predictions.")
    k = len(classes)
    y_true = _class_indices("y_true", y_true, k)
    if ax is None:
        fig, grid = _new_figure(figsize=(6.4, 0.8 + 0.32 * k * max(1, len(runs)) ** 0.5))
        ax = grid[0, 0]
    else:
        fig = ax.figure
    height = 0.8 / len(runs)
    positions = np.arange(k)
    for i, (name, y_pred) in enumerate(runs.items()):
        y_pred = _class_indices(f"predictions[{name!r}]", y_pred, k)
        if len(y_pred) != len(y_true):
            raise ValueError(f"y_true has {len(y_true)} labels but the predictions of {name!r} have {len(y_pred)}.")
        accuracy = per_class_accuracy(y_true, y_pred, k)
        overall = float(np.mean(y_pred == y_true)) if len(y_true) else float("nan")
        offset = (i - (len(runs) - 1) / 2) * height
        ax.barh(positions + offset, np.nan_to_num(accuracy), height=height * 0.92, color=COLORS[i % len(COLORS)],
                label=f"{name} ({overall:.1%} overall)")
    ax.axvline(1 / k, color="#555", linestyle="--", linewidth=1, label=f"chance ({1 / k:.0%})")
    from matplotlib.ticker import PercentFormatter

    ax.set_yticks(positions, classes, fontsize=8)
    ax.invert_yaxis()  # first class at the top
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("accuracy (share of the class's images classified correctly)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    counts = np.bincount(y_true, minlength=k)
    ax.set_title(title or f"accuracy per class ({counts.min():,} to {counts.max():,} images per class)", fontsize=10)
    fig.tight_layout()
    return fig


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Probabilities from logits (what the course's models return), computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _check_probs(probs) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.size == 0:
        raise ValueError(f"probs must be (N, num_classes) probabilities for at least one image, got shape "
                         f"{probs.shape}.")
    sums = probs.sum(axis=1)
    if probs.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError("probs must be probabilities: non-negative, each row summing to 1 (rows sum to "
                         f"{sums.min():.3g}..{sums.max():.3g}). The models return logits: pass "
                         "plots.softmax(logits).")
    return probs


def confident_mistake_indices(y_true, probs, n: int = 12) -> np.ndarray:
    """Indices of the wrongly classified images, most confident first (highest probability of the wrong class)."""
    probs = _check_probs(probs)
    y_true = _class_indices("y_true", y_true, probs.shape[1])
    if len(y_true) != len(probs):
        raise ValueError(f"y_true has {len(y_true)} labels but probs has {len(probs)} rows.")
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probs[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:n]


def most_confident_mistakes(images, y_true, probs, classes: Sequence[str], n: int = 12, cols: int = 6):
    """The test images the model got wrong with the most confidence, titled 'predicted (confidence)' and the truth."""
    images = _as_images(images)
    probs = _check_probs(probs)
    if len(images) != len(probs):
        raise ValueError(f"{len(images)} images but {len(probs)} rows of probabilities.")
    indices = confident_mistake_indices(y_true, probs, n)
    y_true = np.asarray(y_true)
    if len(indices) == 0:
        fig, grid = _new_figure(figsize=(4, 1.5))
        grid[0, 0].set_axis_off()
        grid[0, 0].text(0.5, 0.5, f"No mistakes among {len(images):,} images.", ha="center", va="center")
        return fig
    fig, axes = _image_grid(len(indices), cols, cell=1.7, title_lines=2)
    for ax, i in zip(axes, indices):
        predicted = int(probs[i].argmax())
        _show(ax, images[i])
        ax.set_title(f"{classes[predicted]} ({probs[i, predicted]:.0%})\ntrue: {classes[y_true[i]]}",
                     fontsize=8, color=WRONG)
    fig.suptitle("most confident mistakes: prediction (probability), true class", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# First-layer filters and feature maps
# ---------------------------------------------------------------------------
def filter_mosaic(weights, cols: int = 16, pad: int = 1) -> np.ndarray:
    """First-layer filters ``(kh, kw, in, out)`` laid out as one image, each filter scaled to 0-1 on its own.

    Returns ``(rows * (kh + pad) + pad, cols * (kw + pad) + pad, in)`` with white ``pad``-pixel
    lines between filters. ``in`` must be 1 (grayscale) or 3 (colour).
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"Expected filters of shape (kh, kw, in, out) (Keras' layout), got shape {w.shape}. "
                         "For a model, use conv1_weights(model).")
    kh, kw, cin, cout = w.shape
    if cin not in (1, 3):
        raise ValueError(f"Filters with {cin} input channels cannot be shown as images: plot_filters draws the "
                         "first layer (1 or 3 input channels). Is this a deeper layer, or a PyTorch "
                         "(out, in, kh, kw) tensor? conv1_weights(model) gives the right layout.")
    cols = max(1, min(cols, cout))
    rows = math.ceil(cout / cols)
    mosaic = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, cin), dtype=np.float32)
    for f in range(cout):
        kernel = w[..., f]
        low, high = kernel.min(), kernel.max()
        kernel = (kernel - low) / (high - low) if high > low else np.full_like(kernel, 0.5)
        r, c = divmod(f, cols)
        top, left = pad + r * (kh + pad), pad + c * (kw + pad)
        mosaic[top:top + kh, left:left + kw] = kernel
    return mosaic


def plot_filters(weights, cols: int = 16, title: str | None = None):
    """The first layer's filters as a colour mosaic, like Figure 3 of Krizhevsky et al. (2012).

    ``weights``: numpy ``(kh, kw, in, out)``, e.g. ``conv1_weights(model)``. Each filter is
    scaled to 0-1 on its own, so the picture shows patterns, not sizes; 1-channel filters are grey.
    """
    mosaic = filter_mosaic(weights, cols)
    kh, kw, cin, cout = np.shape(weights)
    height, width = mosaic.shape[:2]
    scale = min(0.06, 9.0 / width)  # inches per mosaic pixel: at most 9 inches wide
    fig, grid = _new_figure(figsize=(max(3.0, width * scale), max(1.5, height * scale + 0.5)))
    ax = grid[0, 0]
    if cin == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"{cout} filters of {kh}×{kw}×{cin}", fontsize=10)
    fig.tight_layout()
    return fig


def _framework(model) -> str:
    """'torch' or 'keras', from the modules of the model's classes."""
    modules = [cls.__module__ for cls in type(model).__mro__]
    if any(m == "torch" or m.startswith("torch.") for m in modules):
        return "torch"
    if any(m == "keras" or m.startswith(("keras.", "tf_keras.")) for m in modules):
        return "keras"
    raise TypeError(f"Expected a Keras or PyTorch model, got a {type(model).__module__}.{type(model).__name__}.")


def _torch_conv_layers(model):
    from torch import nn
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _keras_conv_layers(model):
    import keras
    return [(layer.name, layer) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def conv1_weights(model, layer_name: str | None = None) -> np.ndarray:
    """The filters of a model's first convolution (or of ``layer_name``) as numpy ``(kh, kw, in, out)``.

    Works for Keras models (whose kernels already have this layout) and PyTorch models (whose
    ``(out, in, kh, kw)`` weights are transposed). With groups, ``in`` is the channels each
    filter sees (``in_channels / groups``).
    """
    framework = _framework(model)
    convs = _torch_conv_layers(model) if framework == "torch" else _keras_conv_layers(model)
    if not convs:
        raise ValueError(f"The {framework} model has no 2-D convolution layer.")
    if layer_name is None:
        _, layer = convs[0]
    else:
        found = dict(convs)
        if layer_name not in found:
            raise ValueError(f"No convolution named {layer_name!r}; the model's convolutions are: "
                             f"{', '.join(found)}.")
        layer = found[layer_name]
    if framework == "torch":
        return layer.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)
    import keras
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel))


def feature_maps(model, image, layer_name: str) -> np.ndarray:
    """The output of layer ``layer_name`` for one image, as numpy ``(H, W, C)`` (``(units,)`` for dense layers).

    ``image``: one channels-last float image ``(H, W, C)`` exactly as the model receives it
    (after your preprocessing), or a batch of one. For a PyTorch model it is transposed to
    ``(1, C, H, W)`` here. The model runs in inference mode (no dropout, BatchNorm's running
    statistics) and is left as it was.
    """
    x = np.asarray(image)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"feature_maps takes one image (H, W, C) or a batch of one, got shape {np.shape(image)}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"feature_maps needs the image as the model sees it: floats after your preprocessing "
                         f"(e.g. image / 255.0), got {x.dtype}.")
    x = x.astype(np.float32)[None]
    if _framework(model) == "torch":
        return _torch_feature_maps(model, x, layer_name)
    return _keras_feature_maps(model, x, layer_name)


def _torch_feature_maps(model, x: np.ndarray, layer_name: str) -> np.ndarray:
    import torch

    modules = dict(model.named_modules())
    if layer_name not in modules or layer_name == "":
        raise ValueError(f"The model has no layer {layer_name!r}; its layers are: "
                         f"{', '.join(n for n in modules if n)}.")
    captured = {}

    def hook(module, inputs, output):
        captured["out"] = output.detach()

    handle = modules[layer_name].register_forward_hook(hook)
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.from_numpy(x).permute(0, 3, 1, 2).to(device))
    finally:
        handle.remove()
        model.train(was_training)
    out = captured["out"][0].cpu().numpy()
    return out.transpose(1, 2, 0) if out.ndim == 3 else out


def _keras_feature_maps(model, x: np.ndarray, layer_name: str) -> np.ndarray:
    import keras

    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"The model has no layer {layer_name!r}; its layers are: {', '.join(names)}.")
    sub_model = keras.Model(model.inputs[0], model.get_layer(layer_name).output)
    out = sub_model(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(out))[0]


def plot_feature_maps(activations, n: int = 32, cols: int = 8, title: str | None = None):
    """The first ``n`` channels of one image's feature maps ``(H, W, C)``, one small picture per channel.

    Each channel is scaled on its own (bright: strong activation); a channel that is zero
    everywhere (a 'dead' ReLU for this image) is marked.
    """
    a = np.asarray(activations, dtype=np.float32)
    if a.ndim != 3:
        raise ValueError(f"plot_feature_maps takes one image's activations (H, W, C), got shape {a.shape}"
                         + (": a fully connected layer has no maps to show." if a.ndim == 1 else "."))
    n = min(n, a.shape[-1])
    fig, axes = _image_grid(n, cols, cell=1.3)
    for c, ax in enumerate(axes):
        channel = a[..., c]
        ax.imshow(channel, cmap="viridis", interpolation="nearest")
        dead = not np.any(channel)
        ax.set_title(f"{c}" + (" (all 0)" if dead else ""), fontsize=7)
    h, w, total = a.shape
    fig.suptitle(title or f"{n} of {total} feature maps, {h}×{w} each", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Architecture diagrams and per-layer costs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One box of an architecture diagram: a convolution, pooling, resize or fully connected layer."""
    name: str
    kind: str              # "input", "resize", "conv", "pool" or "fc"
    shape: tuple[int, ...]  # output (H, W, C), or (units,) for "fc"
    operation: str          # e.g. "11×11 conv, stride 4", "3×3 max-pool, stride 2"
    extras: tuple[str, ...] = ()  # what follows inside the stage: "ReLU", "LRN", "dropout 0.5"...


def _describe(preset: str, **kwargs):
    if preset == "lenet5":
        return arch.describe_lenet5(**kwargs)
    return arch.describe_alexnet(preset, **kwargs)


def architecture_stages(preset: str = "classic", **kwargs) -> list[Stage]:
    """The boxes of :func:`plot_architecture`, computed from the framework-free description."""
    input_shape, layers = _describe(preset, **kwargs)
    rows = arch.compute_rows(input_shape, layers)
    stages = [Stage("input", "input", tuple(input_shape), "image")]
    for layer, row in zip(layers, rows):
        if isinstance(layer, arch.Resize):
            stages.append(Stage(layer.name, "resize", row.output_shape, "bilinear resize"))
        elif isinstance(layer, arch.Conv):
            op = f"{layer.kernel}×{layer.kernel} conv" + (f", stride {layer.stride}" if layer.stride > 1 else "")
            if layer.groups > 1:
                op += f", {layer.groups} groups"
            stages.append(Stage(layer.name, "conv", row.output_shape, op))
        elif isinstance(layer, (arch.MaxPool, arch.AvgPool)):
            kind = "max" if isinstance(layer, arch.MaxPool) else "avg"
            stages.append(Stage(layer.name, "pool", row.output_shape,
                                f"{layer.size}×{layer.size} {kind}-pool, stride {layer.stride}"))
        elif isinstance(layer, arch.AdaptiveAvgPool):
            stages.append(Stage(layer.name, "pool", row.output_shape,
                                f"adaptive avg-pool, to {layer.output}×{layer.output}"))
        elif isinstance(layer, arch.Dense):
            stages.append(Stage(layer.name, "fc", row.output_shape, "fully connected"))
        elif isinstance(layer, (arch.Activation, arch.LRN, arch.BatchNorm, arch.Dropout)):
            last = stages[-1]  # these act inside the stage before them: note them under its box
            stages[-1] = Stage(last.name, last.kind, last.shape, last.operation, last.extras + (_extra(layer),))
    return stages


def _extra(layer) -> str:
    """How an activation, normalization or dropout layer is noted under a box."""
    if isinstance(layer, arch.Activation):
        return "ReLU" if layer.function == "relu" else layer.function
    if isinstance(layer, arch.Dropout):
        return f"dropout {layer.rate:g}"
    return "LRN" if isinstance(layer, arch.LRN) else "BatchNorm"


_STAGE_COLORS = {"input": "#d0d7de", "resize": "#c8b6e2", "conv": "#8cb4e0", "pool": "#f2b880", "fc": "#9fd3a5"}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


def plot_architecture(preset: str = "classic", ax=None, title: str | None = None, **kwargs):
    """A flat diagram of AlexNet (any preset) or LeNet-5 (``preset="lenet5"``), one box per stage.

    A box's height grows with the logarithm of the feature map's side, its width with the
    logarithm of its channels; fully connected layers are thin bars whose height grows with
    the logarithm of their units. Above each box: the layer's name and operation; below: its
    output shape and what follows inside the stage (ReLU, LRN, dropout). ``kwargs`` are those
    of ``alexnet`` (``num_classes``, ``norm``, ...) or of ``lenet5``.
    """
    from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

    stages = architecture_stages(preset, **kwargs)
    spatial = [s.shape[0] for s in stages if len(s.shape) == 3]
    channels = [s.shape[2] for s in stages if len(s.shape) == 3]
    units = [s.shape[0] for s in stages if len(s.shape) == 1]
    max_side, max_channels = math.log2(max(spatial)), math.log2(max(channels))
    max_units = math.log2(max(units)) if units else 1.0

    def size(stage):  # (width, height) of the box, in data units (about inches)
        if stage.kind == "fc":
            return 0.16, 0.6 + 2.0 * math.log2(stage.shape[0]) / max_units
        h, _, c = stage.shape
        return 0.2 + 0.5 * math.log2(max(c, 1)) / max(max_channels, 1), 0.4 + 2.4 * math.log2(max(h, 1)) / max_side

    step = 1.0  # distance between box centres
    top = max(size(s)[1] for s in stages) / 2
    if ax is None:
        fig, grid = _new_figure(figsize=(step * (len(stages) - 1) + 1.3, 2 * top + 2.3))
        ax = grid[0, 0]
    else:
        fig = ax.figure
    for i, stage in enumerate(stages):
        x = i * step
        w, h = size(stage)
        ax.add_patch(Rectangle((x - w / 2, -h / 2), w, h, facecolor=_STAGE_COLORS[stage.kind],
                               edgecolor="#444", linewidth=0.8))
        above = stage.operation.replace(", ", "\n")
        ax.text(x, h / 2 + 0.08, above, ha="center", va="bottom", fontsize=7, linespacing=1.1, color="#333")
        ax.text(x, top + 0.62, stage.name, ha="center", va="bottom", fontsize=8.5, fontweight="bold")
        below = _shape_text(stage.shape) + ("\n" + "\n".join(stage.extras) if stage.extras else "")
        ax.text(x, -h / 2 - 0.08, below, ha="center", va="top", fontsize=7, linespacing=1.15)
        if i:
            previous_w = size(stages[i - 1])[0]
            ax.add_patch(FancyArrowPatch(((i - 1) * step + previous_w / 2 + 0.03, 0), (x - w / 2 - 0.03, 0),
                                         arrowstyle="-|>", mutation_scale=7, color="#666", linewidth=0.8))
    ax.set_xlim(-0.6, step * (len(stages) - 1) + 0.6)
    ax.set_ylim(-top - 0.95, top + 0.95)
    ax.set_axis_off()
    kinds = [k for k in _STAGE_COLORS if any(s.kind == k for s in stages)]
    labels = {"input": "input", "resize": "resize", "conv": "convolution", "pool": "pooling", "fc": "fully connected"}
    ax.legend(handles=[Patch(facecolor=_STAGE_COLORS[k], edgecolor="#444", label=labels[k]) for k in kinds],
              loc="lower right", fontsize=7, ncol=len(kinds), frameon=False, bbox_to_anchor=(1.0, -0.04))
    rows = arch.compute_rows(*_describe(preset, **kwargs))
    t = arch.totals(rows)
    name = "LeNet-5" if preset == "lenet5" else f"AlexNet, preset {preset!r}"
    default = f"{name}: {t['params']:,} parameters, {_si(t['macs'])} multiply-accumulates (MACs) per image"
    ax.set_title(title or default, fontsize=10)
    fig.tight_layout()
    return fig


def _si(value: float) -> str:
    """A count in short form: 950, 4.1k, 37.7M, 1.1G."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.0f}"


def plot_layer_costs(rows: Sequence, name: str | None = None, title: str | None = None):
    """Per-layer parameters, multiply-accumulates (MACs) and activations as bars on a log scale.

    ``rows`` is a layer table, e.g. ``architecture.layer_table("classic")``. Activation,
    dropout, flatten and LRN layers are left out: they repeat the previous layer's output and
    hold no weights. Each bar is labelled with its value and its share of the total.
    ``name`` (e.g. "AlexNet") starts the title; ``title`` replaces it.
    """
    shown = [r for r in rows if r.kind not in ("Activation", "Dropout", "Flatten", "LRN")]
    if not shown:
        raise ValueError("plot_layer_costs got no layers with costs: pass architecture.layer_table(...).")
    t = arch.totals(rows)
    panels = (("params", "parameters", "#8cb4e0"), ("macs", "multiply-accumulates (MACs) per image", "#f2b880"),
              ("activations", "activations (outputs per image)", "#9fd3a5"))
    fig, grid = _new_figure(3, 1, figsize=(max(7.0, 0.62 * len(shown) + 1.5), 7.6), sharex=True)
    x = np.arange(len(shown))
    for ax, (key, label, color) in zip(grid[:, 0], panels):
        values = np.array([getattr(r, key) for r in shown], dtype=float)
        total = float(sum(getattr(r, key) for r in rows)) if key != "activations" else float(values.sum())
        ax.bar(x, np.where(values > 0, values, np.nan), color=color, edgecolor="#444", linewidth=0.6)
        ax.set_yscale("log")
        positive = values[values > 0]
        low = 10 ** math.floor(math.log10(positive.min())) if positive.size else 1
        ax.set_ylim(low / 2, (positive.max() if positive.size else 10) * 30)
        for xi, v in zip(x, values):
            if v > 0:
                share = f"\n{v / total:.0%}" if total and v / total >= 0.005 else ""
                ax.text(xi, v * 1.25, _si(v) + share, ha="center", va="bottom", fontsize=6.5, linespacing=1.0)
            else:
                ax.text(xi, low / 2 * 1.4, "0", ha="center", va="bottom", fontsize=6.5, color="#777")
        heading = f"{label}: total {_si(total)}" if key != "activations" else f"{label}: {_si(total)} in these layers"
        ax.set_title(heading, fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    grid[-1, 0].set_xticks(x, [r.name for r in shown], rotation=45, ha="right", fontsize=8)
    default = f"where the {_si(t['params'])} parameters and {_si(t['macs'])} MACs live"
    fig.suptitle(title or (f"{name}: {default}" if name else default[0].upper() + default[1:]), fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------
def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> str:
    """Write ``fig`` to ``path`` (format from the extension: .png, .pdf, .svg), atomically.

    The picture goes to a temporary file in the same folder first and then replaces ``path``,
    so a failed write never leaves a half-written image. Missing folders are created.
    Returns the path written.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    if not extension:
        raise ValueError(f"save_figure needs a file name with an extension (.png, .pdf, .svg), got {path!r}.")
    atomic_write(path, lambda f: fig.savefig(f, format=extension, dpi=dpi, bbox_inches="tight"))
    return path
