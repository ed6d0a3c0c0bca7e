"""Normalization layers from scratch, in NumPy, to check the frameworks' built-ins against.

Notebook 03 builds Batch Normalization (Ioffe & Szegedy, 2015) here and compares it with
``keras.layers.BatchNormalization`` and ``torch.nn.BatchNorm2d``. For one channel, over the
``m`` values that channel takes in a batch (every image and every position)::

    mean  = sum(x) / m
    var   = sum((x - mean) ** 2) / m                 # biased: divides by m
    x_hat = (x - mean) / sqrt(var + epsilon)
    y     = gamma * x_hat + beta                     # learned scale and shift

That is *training* mode. At the same time the layer keeps running averages of the batch
statistics, and *inference* mode normalizes with those instead of the batch's own::

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var_for_running
    y            = gamma * (x - running_mean) / sqrt(running_var + epsilon) + beta

Two conventions differ between the frameworks, and :class:`NumpyBatchNorm` can follow either:

* **momentum**: here, as in PyTorch (``momentum=0.1``), it is the weight of the *new* batch
  statistic. Keras' ``momentum`` is the weight of the *old* running value (default 0.99), so
  PyTorch's 0.1 is Keras' 0.9.
* **the variance in the running average**: PyTorch stores the *unbiased* batch variance
  ``sum((x - mean) ** 2) / (m - 1)``, Keras the biased one it normalized with. Both normalize
  the batch itself with the biased variance.

The module also describes a small convolutional network with the normalization in any of the
places people put it (:func:`describe_small_convnet`), for notebook 03's placement figure and
its training experiment, and draws the notebook's three figures (:func:`plot_lrn_response`,
:func:`plot_placements`, :func:`plot_lr_sweep`). Importing this module imports neither
TensorFlow nor PyTorch, nor matplotlib until a figure is drawn.
"""

from __future__ import annotations

import numpy as np

from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching.plots import new_figure

__all__ = [
    "NumpyBatchNorm", "batch_statistics", "PLACEMENTS", "describe_small_convnet",
    "lrn_scale", "plot_lrn_response", "plot_placements", "plot_lr_sweep",
]


def _reduce_axes(x: np.ndarray, axis: int) -> tuple[int, ...]:
    """All axes of ``x`` but the channel axis: BatchNorm averages over batch and positions."""
    axis = axis % x.ndim
    return tuple(i for i in range(x.ndim) if i != axis)


def batch_statistics(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and (biased) variance of a batch, and ``m``, the number of values per channel.

    ``x`` is ``(N, H, W, C)`` channels-last with ``axis=-1``, ``(N, C, H, W)`` with ``axis=1``,
    or ``(N, C)`` for fully connected features.
    """
    axes = _reduce_axes(x, axis)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)  # NumPy's default ddof=0: divide by m, as BatchNorm does
    m = x.size // x.shape[axis]
    return mean, var, m


class NumpyBatchNorm:
    """Batch Normalization in NumPy, in training mode and in inference mode.

    Args:
        channels: number of channels (features) normalized separately.
        epsilon: added to the variance before the square root (PyTorch's default 1e-5;
            Keras' default is 1e-3).
        momentum: weight of the new batch statistic in the running averages (PyTorch's
            convention and default, 0.1). Keras' ``momentum`` is ``1 - momentum``.
        unbiased_running_var: store the unbiased batch variance (divided by ``m - 1``) in the
            running average, as PyTorch does (``True``), or the biased one, as Keras does (``False``).
        axis: the channel axis of the inputs: ``-1`` for channels-last (Keras), ``1`` for
            channels-first (PyTorch).

    Attributes ``gamma`` and ``beta`` (start at 1 and 0) are the learned scale and shift,
    ``running_mean`` and ``running_var`` (start at 0 and 1) the statistics for inference.
    Like a framework layer, the object starts in training mode; :meth:`eval` and
    :meth:`train` switch, or pass ``training=`` to a single call.
    """

    def __init__(self, channels: int, *, epsilon: float = 1e-5, momentum: float = 0.1,
                 unbiased_running_var: bool = True, axis: int = -1):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}.")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum is the weight of the new batch statistic (PyTorch's convention): "
                             f"0 <= momentum <= 1, got {momentum}. A Keras momentum of 0.99 is 0.01 here.")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive (it keeps the division finite), got {epsilon}.")
        self.channels = channels
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.unbiased_running_var = unbiased_running_var
        self.axis = axis
        self.gamma = np.ones(channels)
        self.beta = np.zeros(channels)
        self.running_mean = np.zeros(channels)
        self.running_var = np.ones(channels)
        self.training = True

    def train(self) -> NumpyBatchNorm:
        """Switch to training mode (batch statistics, running averages updated); returns ``self``."""
        self.training = True
        return self

    def eval(self) -> NumpyBatchNorm:
        """Switch to inference mode (running statistics, nothing updated); returns ``self``."""
        self.training = False
        return self

    def _broadcast(self, values: np.ndarray, ndim: int) -> np.ndarray:
        """Reshape a per-channel vector so it lines up with the channel axis of an ``ndim``-d input."""
        shape = [1] * ndim
        shape[self.axis % ndim] = self.channels
        return values.reshape(shape)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 2:
            raise ValueError(f"BatchNorm needs a batch: inputs of shape (N, ..., channels), got shape {x.shape}.")
        if x.shape[self.axis] != self.channels:
            raise ValueError(
                f"This BatchNorm normalizes {self.channels} channels on axis {self.axis}, but the input of shape "
                f"{x.shape} has {x.shape[self.axis]} there. Channels-first inputs (N, C, H, W) need axis=1, "
                "channels-last (N, H, W, C) axis=-1."
            )
        return x

    def __call__(self, x: np.ndarray, training: bool | None = None) -> np.ndarray:
        """Normalize ``x``; ``training`` overrides the layer's mode for this call only."""
        x = self._check_input(x)
        training = self.training if training is None else training
        if training:
            mean, var, m = batch_statistics(x, self.axis)
            if m < 2:
                raise ValueError(
                    f"BatchNorm in training mode needs more than one value per channel to compute a variance, "
                    f"got an input of shape {x.shape}. Use a larger batch, or inference mode (training=False)."
                )
            self._update_running(mean, var, m)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - self._broadcast(mean, x.ndim)) / np.sqrt(self._broadcast(var, x.ndim) + self.epsilon)
        return self._broadcast(self.gamma, x.ndim) * x_hat + self._broadcast(self.beta, x.ndim)

    def _update_running(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        """Blend this batch's statistics into the running averages."""
        var_for_running = var * m / (m - 1) if self.unbiased_running_var else var
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
        self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var_for_running

    def __repr__(self) -> str:
        mode = "training" if self.training else "inference"
        return (f"NumpyBatchNorm({self.channels} channels, epsilon={self.epsilon:g}, momentum={self.momentum:g}, "
                f"unbiased_running_var={self.unbiased_running_var}, {mode} mode)")


# ---------------------------------------------------------------------------
# Where to put the normalization: a small network in each arrangement.
# ---------------------------------------------------------------------------
PLACEMENTS = {
    "none": "conv → ReLU → pool (no normalization)",
    "bn_relu": "conv → BN → ReLU → pool (Ioffe & Szegedy 2015; the package's norm='batch')",
    "relu_bn": "conv → ReLU → BN → pool (normalize what the next layer sees)",
    "pool_bn": "conv → ReLU → pool → BN (normalize after pooling: 4× fewer positions)",
    "lrn": "conv → ReLU → LRN → pool (AlexNet 2012)",
}


def describe_small_convnet(
    placement: str = "bn_relu",
    *,
    filters: tuple[int, ...] = (32, 64, 128),
    hidden_units: int = 256,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
) -> tuple[tuple[int, int, int], list[arch.Layer]]:
    """A small AlexNet-like network for 32×32 images, with the normalization at ``placement``.

    Each block is a 3×3 convolution (padding 1), the ReLU, the normalization where
    ``placement`` puts it (see :data:`PLACEMENTS`), and 2×2 max-pooling; then one hidden
    fully connected layer and the class scores. Where BatchNorm comes right after the
    convolution (``"bn_relu"``) the convolution has no bias: BatchNorm subtracts the mean,
    which would cancel it, and its ``beta`` takes the bias' role.

    Returns ``(input_shape, layers)`` for :func:`alexnet_lab.keras.models.build` and
    :func:`alexnet_lab.torch.models.build`.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}.")
    if not filters:
        raise ValueError("filters must name at least one convolutional block, e.g. (32, 64, 128).")
    layers: list[arch.Layer] = []
    for i, n in enumerate(filters, start=1):
        layers.append(arch.Conv(f"conv{i}", n, 3, padding=1, bias=(placement != "bn_relu")))
        if placement == "bn_relu":
            layers.append(arch.BatchNorm(f"bn{i}"))
        layers.append(arch.Activation(f"relu{i}"))
        if placement == "relu_bn":
            layers.append(arch.BatchNorm(f"bn{i}"))
        if placement == "lrn":
            layers.append(arch.LRN(f"lrn{i}"))
        layers.append(arch.MaxPool(f"pool{i}", 2, 2))
        if placement == "pool_bn":
            layers.append(arch.BatchNorm(f"bn{i}"))
    layers += [arch.Flatten("flatten"), arch.Dense("fc1", hidden_units), arch.Activation("relu_fc1"),
               arch.Dense("fc2", num_classes)]
    input_shape = (image_size, image_size, in_channels)
    rows = arch.compute_rows(input_shape, layers)
    if any(d < 1 for r in rows for d in r.output_shape):
        raise ValueError(f"A {image_size}×{image_size} image is too small for {len(filters)} blocks of 2×2 "
                         f"pooling: use images of at least {2 ** len(filters)}×{2 ** len(filters)} or fewer blocks.")
    return input_shape, layers


# ---------------------------------------------------------------------------
# Figures for notebook 03
# ---------------------------------------------------------------------------
def lrn_scale(activation, neighbours_active: int, *, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
              k: float = 2.0) -> np.ndarray:
    """LRN's factor ``b / a`` for a channel with ``activation`` when ``neighbours_active`` of the ``size``
    channels in its window (itself included) carry that same activation and the others are 0."""
    if not 1 <= neighbours_active <= size:
        raise ValueError(f"neighbours_active counts the channel itself: 1 <= neighbours_active <= size={size}, "
                         f"got {neighbours_active}.")
    a = np.asarray(activation, dtype=np.float64)
    return 1.0 / (k + alpha * neighbours_active * a ** 2) ** beta


def plot_lrn_response(*, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                      max_activation: float = 400.0):
    """How much LRN scales an activation down, ``b / a``, as the activations in its window grow.

    One curve per number of active channels in the window (1: the channel alone, ``size``: all of
    them equally strong). Flat at ``k ** -beta`` for small activations: there LRN is only a
    constant factor, and it starts to *normalize* once ``alpha * sum(a ** 2)`` is comparable to ``k``.
    """
    a = np.linspace(0.0, max_activation, 400)
    fig, axes = new_figure(figsize=(6.4, 3.8))
    ax = axes[0, 0]
    for active in sorted({1, (size + 1) // 2, size}):
        ax.plot(a, lrn_scale(a, active, size=size, alpha=alpha, beta=beta, k=k),
                label=f"{active} of {size} channels active" if active > 1 else "only the channel itself")
    ax.axhline(k ** -beta, color="#777", linestyle=":", linewidth=1)
    ax.text(max_activation, k ** -beta, f"$k^{{-\\beta}}$ = {k ** -beta:.2f}  ", ha="right", va="bottom", fontsize=8,
            color="#555")
    ax.set_xlabel("activation a (the same value in every active channel)")
    ax.set_ylabel("b / a  (output ÷ input)")
    ax.set_ylim(0, 1)
    ax.set_title(f"LRN with the paper's constants: n={size}, α={alpha:g}, β={beta:g}, k={k:g}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


_BOX_COLORS = {"Conv": "#8cb4e0", "BatchNorm": "#e8a0a0", "Activation": "#d0d7de", "MaxPool": "#f2b880",
               "LRN": "#c8b6e2"}
_BOX_TEXT = {"Conv": "conv", "BatchNorm": "BN", "Activation": "ReLU", "MaxPool": "pool", "LRN": "LRN"}


def plot_placements(placements=("bn_relu", "relu_bn", "pool_bn", "lrn")):
    """One row of boxes per placement: the first block of :func:`describe_small_convnet` with that placement."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    placements = list(placements)
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown or not placements:
        raise ValueError(f"placements must be a non-empty list of {list(PLACEMENTS)}, got {placements!r}.")
    fig, axes = new_figure(figsize=(9.0, 0.75 * len(placements) + 0.8))
    ax = axes[0, 0]
    width, gap = 0.9, 0.45
    for row, placement in enumerate(placements):
        y = -row
        _, layers = describe_small_convnet(placement, filters=(32,))
        block = [layer for layer in layers if layer.name in ("conv1", "bn1", "relu1", "lrn1", "pool1")]
        for i, layer in enumerate(block):
            kind = type(layer).__name__
            x = i * (width + gap)
            ax.add_patch(FancyBboxPatch((x, y - 0.28), width, 0.56, boxstyle="round,pad=0.02",
                                        facecolor=_BOX_COLORS[kind], edgecolor="#444", linewidth=0.8))
            label = _BOX_TEXT[kind] + ("\n(no bias)" if kind == "Conv" and not layer.bias else "")
            ax.text(x + width / 2, y, label, ha="center", va="center", fontsize=8.5, linespacing=1.0)
            if i:
                ax.add_patch(FancyArrowPatch((x - gap + 0.04, y), (x - 0.04, y), arrowstyle="-|>",
                                             mutation_scale=8, color="#666", linewidth=0.8))
        description = PLACEMENTS[placement].split("(", 1)
        note = description[1].rstrip(")") if len(description) > 1 else ""
        ax.text(4 * (width + gap) - gap + 0.3, y, f"{placement}: {note}", ha="left", va="center", fontsize=8.5)
    ax.set_xlim(-0.2, 12.5)
    ax.set_ylim(-len(placements) + 0.4, 0.6)
    ax.set_axis_off()
    ax.set_title("Where the normalization goes in a convolutional block", fontsize=10)
    fig.tight_layout()
    return fig


def plot_lr_sweep(histories, metric: str = "val_accuracy", title: str | None = None, ylabel: str | None = None,
                  chance: float | None = None):
    """A learning-rate sweep: ``metric`` per epoch for each rate, and the final value against the rate.

    ``histories``: :class:`~alexnet_lab.core.history.History` objects whose ``info`` has ``"lr"``; runs
    with the same ``label`` (e.g. "BatchNorm", "no normalization") share a colour, and Keras runs
    are drawn dashed beside PyTorch's solid lines. The last panel puts the final epoch's value
    against the learning rate on a log scale, one line per label and framework. ``ylabel``
    names the metric on the axes (default: the metric's name); ``chance`` draws a dotted line at
    that value (e.g. 0.1, the accuracy of guessing among 10 classes).
    """
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    histories = list(histories)
    if not histories or any("lr" not in h.info for h in histories):
        raise ValueError("plot_lr_sweep needs Histories with info['lr'] (the learning rate of each run).")
    rates = sorted({h.info["lr"] for h in histories})
    labels = list(dict.fromkeys(h.label for h in histories))
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
    styles = {"torch": "-", "keras": "--"}
    fig, axes = new_figure(1, len(rates) + 1, figsize=(3.0 * (len(rates) + 1), 3.4), sharey=True)
    for ax, rate in zip(axes[0], rates):
        for h in histories:
            if h.info["lr"] != rate:
                continue
            values = np.asarray(h.metrics.get(metric, []), dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, styles.get(h.framework, ":"), marker="o", markersize=3,
                    color=colors[labels.index(h.label) % len(colors)])
        ax.set_title(f"learning rate {rate:g}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        longest = max((len(h.metrics.get(metric, [])) for h in histories), default=1)
        ax.set_xlim(0.5, max(longest, 1) + 0.5)
        ax.grid(alpha=0.3)
    ylabel = ylabel or metric.replace("_", " ")
    axes[0, 0].set_ylabel(ylabel)
    last = axes[0, -1]
    frameworks = list(dict.fromkeys(h.framework for h in histories))
    for label in labels:
        for framework in frameworks:
            runs = sorted((h.info["lr"], h.last(metric)) for h in histories if h.label == label
                          and h.framework == framework)
            if runs:
                x, y = zip(*runs)
                name = "PyTorch" if framework == "torch" else "Keras" if framework == "keras" else framework
                last.plot(x, y, styles.get(framework, ":"), marker="o", color=colors[labels.index(label) % len(colors)],
                          label=f"{label} ({name})")
    last.set_xscale("log")
    last.set_xlabel("learning rate")
    last.set_title(f"after the last epoch: {ylabel}", fontsize=9)
    last.grid(alpha=0.3)
    if chance is not None:
        for ax in axes[0]:
            ax.axhline(chance, color="#777", linestyle=":", linewidth=1)
    if "accuracy" in metric:
        axes[0, 0].yaxis.set_major_formatter(PercentFormatter(1.0))
    handles, names = last.get_legend_handles_labels()
    if chance is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="#777", linestyle=":", linewidth=1))
        names.append(f"chance ({chance:.0%})" if "accuracy" in metric else f"chance ({chance:g})")
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8, frameon=False)
    fig.suptitle(title or f"{ylabel} for each learning rate", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
