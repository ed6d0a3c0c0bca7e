"""Notebook 01's experiment: why ReLUs train faster than saturating units, tested at small scale.

The AlexNet paper's Figure 1 claims that a small convolutional network with ReLUs reaches 25%
training error on CIFAR-10 six times faster than the same network with tanh units.
:func:`plot_activation_functions` shows why (a saturating unit lets little of the gradient
through), and :func:`relu_vs_tanh` repeats the measurement::

    from alexnet_lab import data
    from alexnet_lab.teaching import activations
    train, _ = data.load_cifar10(per_class=300)
    result = activations.relu_vs_tanh(train, epochs=30)
    print(result.summary())          # epochs to 25% training error, and their ratio
    activations.plot_training_error(result)

:func:`describe_figure1_net` is the network, :func:`epochs_to_error` and :func:`speedup` the
arithmetic of the comparison. Importing this module imports no framework: :func:`relu_vs_tanh`
imports PyTorch when it runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from alexnet_lab.core import architecture as arch
from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet
from alexnet_lab.teaching.plots import new_figure

__all__ = [
    "plot_activation_functions", "describe_figure1_net", "epochs_to_error", "speedup", "SpeedupResult",
    "relu_vs_tanh", "plot_training_error",
]


# ---------------------------------------------------------------------------
# The activation functions
# ---------------------------------------------------------------------------
def plot_activation_functions(functions: Sequence[str] = ("tanh", "relu", "sigmoid"), limit: float = 4.0):
    """The activation functions (left) and their derivatives (right), which scale every gradient passing back."""
    x = np.linspace(-limit, limit, 401)
    curves = {
        "relu": (np.maximum(x, 0), (x > 0).astype(float), "#1f77b4", "-"),
        "tanh": (np.tanh(x), 1 - np.tanh(x) ** 2, "#d62728", "--"),
        "sigmoid": (1 / (1 + np.exp(-x)), np.exp(-x) / (1 + np.exp(-x)) ** 2, "#7f7f7f", ":"),
    }
    unknown = [f for f in functions if f not in curves]
    if unknown:
        raise ValueError(f"Unknown activation(s) {unknown}; choose from {list(curves)}.")
    fig, grid = new_figure(1, 2, figsize=(10.0, 3.4))
    value_ax, slope_ax = grid[0]
    for name in functions:
        f, df, color, style = curves[name]
        value_ax.plot(x, f, style, color=color, linewidth=2, label=name)
        slope_ax.plot(x, df, style, color=color, linewidth=2, label=name)
    value_ax.set_title("f(x)", fontsize=10)
    slope_ax.set_title("f'(x): how much of the gradient gets through", fontsize=10)
    for ax in (value_ax, slope_ax):
        ax.axhline(0, color="#999", linewidth=0.6)
        ax.axvline(0, color="#999", linewidth=0.6)
        ax.set_xlabel("x (the unit's input)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    value_ax.set_ylim(-1.3, min(limit, 3.0))
    slope_ax.set_ylim(-0.1, 1.15)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# The paper's Figure 1: ReLU against tanh
# ---------------------------------------------------------------------------
def describe_figure1_net(activation: str = "relu", *, filters: tuple[int, int, int] = (32, 32, 64), kernel: int = 5,
                         image_size: int = 32, in_channels: int = 3,
                         num_classes: int = 10) -> tuple[tuple[int, int, int], list]:
    """A small four-layer convolutional network for CIFAR-10, like the one of the AlexNet paper's Figure 1.

    Three convolutions (``kernel``×``kernel``, "same" padding), each followed by the activation
    (``"relu"`` or ``"tanh"``) and a 3×3 pooling window with stride 2 (max-pooling after the first,
    average-pooling after the others), then one fully connected layer: four layers with weights.
    This is the layout of cuda-convnet's ``layers-80sec.cfg``, Krizhevsky's fast CIFAR-10 network
    of the time. Returns ``(input_shape, layers)`` for :func:`alexnet_lab.torch.models.build` or
    :func:`alexnet_lab.keras.models.build`.
    """
    if activation not in arch.ACTIVATIONS:
        raise ValueError(f"activation must be one of {arch.ACTIVATIONS}, got {activation!r}.")
    if len(filters) != 3 or any(int(f) != f or f < 1 for f in filters):
        raise ValueError(f"filters must be three positive integers (one per convolution), got {filters!r}.")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number (so that padding keeps the size), got {kernel}.")
    layers = []
    for i, (n, pool) in enumerate(zip(filters, (arch.MaxPool, arch.AvgPool, arch.AvgPool)), start=1):
        layers += [arch.Conv(f"conv{i}", int(n), kernel, padding=kernel // 2),
                   arch.Activation(f"act{i}", activation), pool(f"pool{i}", 3, 2)]
    layers += [arch.Flatten("flatten"), arch.Dense("fc4", num_classes)]
    input_shape = (image_size, image_size, in_channels)
    rows = arch.compute_rows(input_shape, layers)
    if any(d < 1 for r in rows for d in r.output_shape):
        smallest = arch.min_image_size(in_channels, layers)
        raise ValueError(f"A {image_size}×{image_size} image is too small for this network: the feature maps "
                         f"vanish before fc4. The smallest image it accepts is {smallest}×{smallest}.")
    return input_shape, layers


def epochs_to_error(history: History, target: float = 0.25, key: str = "error") -> int | None:
    """The first epoch (counting from 1) whose training error is at most ``target``; None if none is.

    ``key`` names the per-epoch training error in ``history``; a history without it uses
    ``1 - accuracy``.
    """
    if not 0 < target < 1:
        raise ValueError(f"target is an error rate between 0 and 1, got {target}.")
    errors = history[key] if key in history else [1.0 - a for a in history["accuracy"]]
    for epoch, error in enumerate(errors, start=1):
        if error <= target:
            return epoch
    return None


def speedup(fast_epochs: int | None, slow_epochs: int | None, epochs_run: int) -> tuple[float | None, bool]:
    """How many times fewer epochs the fast network needed to reach the target: ``(ratio, is_lower_bound)``.

    When the slow network never reached the target within ``epochs_run`` epochs, it would have
    needed at least ``epochs_run + 1``, so the ratio is at least ``(epochs_run + 1) / fast_epochs``:
    that number is returned with ``is_lower_bound=True``. When the fast network never reached it,
    nothing can be said: ``(None, False)``.
    """
    if fast_epochs is None:
        return None, False
    if slow_epochs is None:
        return (epochs_run + 1) / fast_epochs, True
    return slow_epochs / fast_epochs, False


@dataclass
class SpeedupResult:
    """What :func:`relu_vs_tanh` measured.

    Attributes:
        histories: ``{"relu": History, "tanh": History}``, each with the per-epoch ``error``
            (training error, ``1 - accuracy``) next to ``loss`` and ``accuracy``.
        target_error: the training error to reach (the paper's 0.25).
        epochs: epochs trained (each network).
        epochs_to_target: ``{"relu": int or None, "tanh": int or None}`` (see :func:`epochs_to_error`).
        ratio: tanh's epochs over ReLU's; with ``lower_bound`` True, tanh never got there and the
            true ratio is at least this; None when ReLU never got there either.
        images_per_epoch: training images seen per epoch.
    """

    histories: dict[str, History]
    target_error: float
    epochs: int
    epochs_to_target: dict[str, int | None]
    ratio: float | None
    lower_bound: bool
    images_per_epoch: int
    settings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph saying what was measured, in words."""
        target = f"{self.target_error:.0%} training error"
        lines = []
        for name in ("relu", "tanh"):
            reached = self.epochs_to_target[name]
            final = self.histories[name]["error"][-1]
            lines.append(f"{name:4}: " + (f"reached {target} in epoch {reached}" if reached else
                                          f"did not reach {target} in {self.epochs} epochs") +
                         f" (final training error {final:.1%})")
        if self.ratio is None:
            verdict = (f"ReLU did not reach {target} within {self.epochs} epochs: no ratio can be measured; "
                       "train longer.")
        elif self.lower_bound:
            verdict = (f"tanh needs at least {self.epochs + 1} epochs, so ReLU is at least {self.ratio:.1f}× faster "
                       f"(a lower bound: train longer to measure it).")
        else:
            verdict = f"ReLU reached {target} {self.ratio:.1f}× faster than tanh (in epochs)."
        return "\n".join(lines + [verdict])


def relu_vs_tanh(train: ImageSet, *, epochs: int, batch_size: int = 64, lr: float = 0.01, momentum: float = 0.9,
                 target_error: float = 0.25, seed: int = 0, filters: tuple[int, int, int] = (32, 32, 64),
                 max_batches: int | None = None, device=None, progress: bool = False,
                 verbose: int = 0) -> SpeedupResult:
    """Train the same small network twice on ``train``, with ReLU and with tanh, and compare their training error.

    Everything but the activation function is the same: the initial weights (copied from the
    ReLU network into the tanh network; He-uniform, the course's default), the learning rate,
    the order of the batches (``seed``). As in the paper's Figure 1, there is no regularization:
    no weight decay, no dropout, no data augmentation; the images are only normalized with the
    training set's per-channel mean and standard deviation. Trains with PyTorch and
    :func:`alexnet_lab.torch.training.fit` (SGD with momentum).

    The training error of an epoch is the error on the batches of that epoch while training
    (``1 - accuracy`` of the History), as cuda-convnet reported it for the paper.

    Returns:
        A :class:`SpeedupResult` with both histories, the epochs each needed to reach
        ``target_error`` and the ratio tanh/ReLU (or its lower bound).
    """
    from alexnet_lab.data import preprocessing
    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.torch import models as torch_models
    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import training as torch_training

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if train.num_classes < 2 or len(train) == 0:
        raise ValueError(f"relu_vs_tanh needs a training set with images of at least 2 classes, got {train!r}.")
    mean, std = preprocessing.channel_stats(train)
    preprocess = preprocessing.Preprocess(mean=mean, std=std)  # normalize only: no augmentation
    h, w, c = train.shape
    if h != w:
        raise ValueError(f"relu_vs_tanh needs square images, got {h}×{w}.")
    histories: dict[str, History] = {}
    initial_weights = None
    for activation in ("relu", "tanh"):
        seed_everything(seed, frameworks=("torch",))
        input_shape, layers = describe_figure1_net(activation, filters=filters, image_size=h, in_channels=c,
                                                   num_classes=train.num_classes)
        model = torch_models.build(input_shape, layers, name=f"figure1_{activation}")
        if initial_weights is None:
            initial_weights = copy.deepcopy(model.state_dict())
        else:
            model.load_state_dict(initial_weights)  # the very same starting point
        loader = torch_pipeline.make_batches(train, preprocess, batch_size=batch_size, shuffle=True, seed=seed)
        history = torch_training.fit(model, loader, epochs=epochs, lr=lr, momentum=momentum, weight_decay=0.0,
                                     max_batches=max_batches, device=device, progress=progress, verbose=verbose,
                                     label=activation)
        history.metrics["error"] = [1.0 - a for a in history["accuracy"]]
        histories[activation] = history
    reached = {name: epochs_to_error(h, target_error) for name, h in histories.items()}
    ratio, lower_bound = speedup(reached["relu"], reached["tanh"], epochs)
    images = len(train) if max_batches is None else min(len(train), max_batches * batch_size)
    settings = {"batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed, "filters": tuple(filters),
                "max_batches": max_batches}
    return SpeedupResult(histories, target_error, epochs, reached, ratio, lower_bound, images, settings)


def plot_training_error(result: SpeedupResult, ax=None, title: str | None = None):
    """Training error per epoch of the ReLU and tanh networks, with the target line, as in the paper's Figure 1.

    ReLU is a solid line, tanh a dashed one (the paper's styles); a marker shows the epoch each
    first reached the target.
    """
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    if ax is None:
        fig, grid = new_figure(figsize=(6.4, 4.0))
        ax = grid[0, 0]
    else:
        fig = ax.figure
    styles = {"relu": ("-", "#1f77b4", "ReLU"), "tanh": ("--", "#d62728", "tanh")}
    for name, history in result.histories.items():
        style, color, label = styles.get(name, ("-", "#555", name))
        errors = history["error"]
        epochs = np.arange(1, len(errors) + 1)
        ax.plot(epochs, errors, style, color=color, marker="o", markersize=3, label=label)
        reached = result.epochs_to_target.get(name)
        if reached:
            ax.plot([reached], [errors[reached - 1]], "o", color=color, markersize=9, markerfacecolor="none")
            ax.annotate(f"epoch {reached}", (reached, errors[reached - 1]), textcoords="offset points",
                        xytext=(6, -14), fontsize=8, color=color)
    ax.axhline(result.target_error, color="#444", linewidth=0.8, linestyle=":",
               label=f"{result.target_error:.0%} training error")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, max(0.95, max(max(h["error"]) for h in result.histories.values()) + 0.03))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if result.ratio is None:
        measured = "ReLU did not reach the target: no ratio"
    else:
        measured = f"ReLU {'≥ ' if result.lower_bound else ''}{result.ratio:.1f}× faster"
    ax.set_title(title or f"ReLU vs tanh, {result.images_per_epoch:,} images per epoch: {measured}", fontsize=10)
    fig.tight_layout()
    return fig
