"""How right a classifier is: confusion matrices, per-class accuracy, probabilities, the most confident mistakes.

* :func:`confusion_matrix`, :func:`per_class_accuracy`: counts and fractions, as numpy;
* :func:`plot_confusion_matrix`, :func:`plot_per_class_accuracy` (one or several models): the
  same as pictures;
* :func:`softmax` (probabilities from the models' logits) and :func:`confident_mistake_indices`
  (the wrong predictions, most confident first; :func:`alexnet_lab.teaching.gallery.most_confident_mistakes`
  shows those images).

Inputs are numpy arrays, framework-free: true labels and predictions are class indices, e.g. from
``alexnet_lab.torch.training.predict`` or ``alexnet_lab.keras.training.predict``. Every plotting
function returns a matplotlib ``Figure`` (see :mod:`alexnet_lab.teaching.plots`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alexnet_lab.teaching.plots import COLORS, new_figure

__all__ = [
    "confusion_matrix", "per_class_accuracy", "plot_confusion_matrix", "plot_per_class_accuracy", "softmax",
    "confident_mistake_indices",
]


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
        fig, grid = new_figure(figsize=(size + 0.8, size))
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
        fig, grid = new_figure(figsize=(6.4, 0.8 + 0.32 * k * max(1, len(runs)) ** 0.5))
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
                         "evaluation.softmax(logits).")
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
