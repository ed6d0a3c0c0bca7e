"""Training curves, and what every figure of the course shares: making a figure, sizes in short form, saving.

Every plotting function of :mod:`alexnet_lab.teaching` returns a matplotlib ``Figure``. In a
notebook the figure shows when it is the value of a cell's last line (or with ``display(fig)``);
anywhere, :func:`save_figure` writes it to a file. The figures are closed for pyplot
(:func:`new_figure`), so a notebook never shows one twice.

The figures live in the module of what they show:

* here: training curves, :func:`plot_history` and :class:`LiveCurves` (redrawn after every epoch);
* :mod:`alexnet_lab.teaching.gallery`: grids of images, and the most confident mistakes;
* :mod:`alexnet_lab.teaching.evaluation`: confusion matrices and per-class accuracy;
* :mod:`alexnet_lab.teaching.filters`: first-layer filters and feature maps;
* :mod:`alexnet_lab.teaching.diagrams`: architecture diagrams and per-layer costs;
* the experiments' own figures next to the experiments (:mod:`~alexnet_lab.teaching.activations`,
  :mod:`~alexnet_lab.teaching.costs`, :mod:`~alexnet_lab.teaching.smoke_test`,
  :mod:`~alexnet_lab.teaching.norms`, :mod:`~alexnet_lab.teaching.recipe`).

Importing this module imports neither a framework nor matplotlib's pyplot: a figure imports
matplotlib when it is drawn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from alexnet_lab.core.files import atomic_write

__all__ = ["COLORS", "new_figure", "image_grid", "si_format", "plot_history", "LiveCurves", "save_figure"]

#: One colour per run or model, in order (matplotlib's default cycle).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# ---------------------------------------------------------------------------
# Shared by every figure
# ---------------------------------------------------------------------------
def new_figure(rows: int = 1, cols: int = 1, *, figsize=None, **kwargs):
    """A figure with a ``rows`` × ``cols`` grid of axes (always a 2-D array), made with pyplot and closed for pyplot.

    Made with pyplot, so notebooks know how to show it. Closing it only means pyplot stops
    tracking it: the figure still draws, shows as a cell's value and saves. Without this, a
    notebook would show it twice (once as the value, once when pyplot flushes its open figures
    at the end of the cell). ``kwargs`` go to ``plt.subplots`` (e.g. ``sharex=True``).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False, **kwargs)
    plt.close(fig)
    return fig, axes


def image_grid(count: int, cols: int, cell: float = 1.5, title_lines: int = 1):
    """A figure with ``count`` image axes in rows of ``cols`` (unused grid cells removed, axis lines off).

    ``cell``: inches per image; ``title_lines``: lines of title above each image (room is made for them).
    Returns ``(figure, list of axes)``.
    """
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    fig, grid = new_figure(rows, cols, figsize=(cell * cols, (cell + 0.32 * title_lines) * rows))
    axes = list(grid.flat)
    for ax in axes[count:]:
        fig.delaxes(ax)
    for ax in axes[:count]:
        ax.set_axis_off()
    return fig, axes[:count]


def si_format(value: float) -> str:
    """A count in short form, as the figures write it: 950, 4.1k, 37.7M, 1.1G."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.0f}"


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------
def plot_history(*histories, metrics: Sequence[str] = ("loss", "accuracy"), ax=None, title: str | None = None):
    """Training curves of one or more :class:`~alexnet_lab.core.history.History` objects, one panel per metric.

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
        fig, grid = new_figure(1, len(metrics), figsize=(5.2 * len(metrics), 3.6))
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
