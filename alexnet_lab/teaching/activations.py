"""Notebook 01's experiment: why ReLUs train faster than saturating units, the paper's Figure 1.

The AlexNet paper's Figure 1 claims that a small convolutional network with ReLUs reaches 25%
training error on CIFAR-10 six times faster than the same network with tanh units, each with the
learning rate that made it train fastest. :func:`plot_activation_functions` shows why (a saturating
unit lets little of the gradient through), and :func:`relu_vs_tanh` repeats the measurement::

    from alexnet_lab import data
    from alexnet_lab.teaching import activations
    train, _ = data.load_cifar10(per_class=None)                 # all 50,000 training images
    grid = activations.learning_rate_grid(train, [0.003, 0.01, 0.03, 0.1], batches=200)
    lr = activations.best_learning_rates(grid)                  # {"relu": ..., "tanh": ...}
    result = activations.relu_vs_tanh(train, epochs=15, lr=lr, stop_at_target=True)
    print(result.summary())          # epochs to 25% training error, and their ratio
    activations.plot_training_error(result)

:func:`describe_figure1_net` is the network, :func:`train_figure1_net` its training loop,
:func:`epochs_to_error` and :func:`speedup` the arithmetic of the comparison. Importing this module
imports no framework: the training functions import PyTorch when they run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alexnet_lab.core import architecture as arch
from alexnet_lab.core.history import History
from alexnet_lab.data import ImageSet
from alexnet_lab.teaching.plots import new_figure

__all__ = [
    "plot_activation_functions", "describe_figure1_net", "epochs_to_error", "speedup", "SpeedupResult",
    "normalization", "train_figure1_net", "learning_rate_grid", "best_learning_rates", "relu_vs_tanh",
    "plot_training_error",
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
        epochs: the most epochs each network could train (with ``stop_at_target``, each stops at the target).
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


def _build(train: ImageSet, activation: str, *, seed: int, init_std: float | None, filters):
    """The Figure 1 network for ``train``'s images, seeded: He-uniform (the course's default) or, with
    ``init_std``, AlexNet's initialization: every weight from a Gaussian with mean 0 and standard
    deviation ``init_std``, every bias 0 (AlexNet set the biases of conv2, conv4, conv5 and the hidden fully
    connected layers to 1, to give its ReLUs positive inputs early on; the Figure 1 comparison needs the same
    start for both networks, so all biases are 0 here)."""
    import torch
    from torch import nn

    from alexnet_lab.frameworks import seed_everything
    from alexnet_lab.torch import models as torch_models

    h, w, c = train.shape
    seed_everything(seed, frameworks=("torch",))
    model = torch_models.build(*describe_figure1_net(activation, filters=filters, image_size=h, in_channels=c,
                                                     num_classes=train.num_classes), name=f"figure1_{activation}")
    if init_std is not None:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    module.weight.normal_(0.0, init_std)
                    module.bias.zero_()
    return model


def normalization(train: ImageSet):
    """The Figure 1 runs' only preprocessing: each channel standardized with ``train``'s mean and standard deviation."""
    from alexnet_lab.data import preprocessing

    mean, std = preprocessing.channel_stats(train)
    return preprocessing.Preprocess(mean=mean, std=std)


def train_figure1_net(train: ImageSet, activation: str, *, lr: float, epochs: int, batch_size: int = 64,
                      momentum: float = 0.9, target_error: float = 0.25, stop_at_target: bool = False,
                      seed: int = 0, init_std: float | None = None, filters: tuple[int, int, int] = (32, 32, 64),
                      max_batches: int | None = None, initial_weights: dict | None = None,
                      preprocess=None, device=None) -> History:
    """Train the Figure 1 network with ``activation`` on ``train``; returns its History (``error`` per epoch).

    The training loop, written out: SGD with momentum, no weight decay, no dropout, no augmentation
    (the images are only normalized with the training set's per-channel mean and standard deviation),
    float32, channels-last memory order on a CPU (measured 1.2-1.3× faster there). The training error
    of an epoch is the error on that epoch's batches while training, as cuda-convnet reported it for
    the paper. ``stop_at_target``: stop after the first epoch at or below ``target_error``.
    ``initial_weights``: a ``state_dict`` to start from (else: seeded He-uniform, or AlexNet's Gaussian
    with ``init_std``). ``max_batches``: at most this many batches per epoch (short runs). ``preprocess``:
    the normalization (:func:`normalization`), computed once by callers that train many runs on ``train``.
    """
    import time

    import torch

    from alexnet_lab.torch import pipeline as torch_pipeline
    from alexnet_lab.torch import precision as torch_precision
    from alexnet_lab.torch import training as torch_training

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if train.num_classes < 2 or len(train) == 0:
        raise ValueError(f"the Figure 1 network needs a training set with images of at least 2 classes, got {train!r}.")
    h, w, c = train.shape
    if h != w:
        raise ValueError(f"the Figure 1 network needs square images, got {h}×{w}.")
    model = _build(train, activation, seed=seed, init_std=init_std, filters=filters)
    if initial_weights is not None:
        model.load_state_dict(initial_weights)
    dev = torch_precision.torch_device(device, announce=False)
    channels_last = dev.type == "cpu"
    model.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    preprocess = preprocess if preprocess is not None else normalization(train)
    loader = torch_pipeline.make_batches(train, preprocess, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    history = History("torch", activation, info={"lr": lr, "momentum": momentum, "batch_size": batch_size,
                                                 "init_std": init_std, "seed": seed, "precision": "float32"})
    for _ in range(epochs):
        model.train()
        start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(dev), y.to(dev)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = torch_training.train_step(model, x, y, optimizer)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        seconds = time.perf_counter() - start
        loss = loss_sum / seen if np.isfinite(loss_sum) else float("nan")
        history.append(loss=loss, accuracy=correct / seen, error=1.0 - correct / seen,
                       images_per_s=seen / seconds, epoch_time_s=seconds)
        if stop_at_target and 1.0 - correct / seen <= target_error:
            break
    return history


def learning_rate_grid(train: ImageSet, lrs: Sequence[float], *, batches: int,
                       activations: Sequence[str] = ("relu", "tanh"), batch_size: int = 64, seed: int = 0,
                       **kwargs) -> dict[str, dict[float, float]]:
    """Short runs, one per activation and learning rate: ``{activation: {lr: training error}}``.

    Each run trains the network from the same start for ``batches`` batches of ``train`` (one short
    epoch) and reports its training error over them; a run that diverges counts as 90 % (chance).
    The learning rate with the lowest error made training fastest at the start: :func:`best_learning_rates`.
    ``kwargs`` go to :func:`train_figure1_net` (``init_std``, ``filters``, ...).
    """
    grid: dict[str, dict[float, float]] = {}
    kwargs.setdefault("preprocess", normalization(train))
    for activation in activations:
        grid[activation] = {}
        for lr in lrs:
            h = train_figure1_net(train, activation, lr=lr, epochs=1, batch_size=batch_size, seed=seed,
                                  max_batches=batches, **kwargs)
            error, loss = h["error"][-1], h["loss"][-1]
            grid[activation][lr] = error if np.isfinite(loss) else 1.0 - 1.0 / train.num_classes
    return grid


def best_learning_rates(grid: dict[str, dict[float, float]]) -> dict[str, float]:
    """Each activation's learning rate with the lowest training error in :func:`learning_rate_grid`'s result."""
    return {activation: min(errors, key=errors.get) for activation, errors in grid.items()}


def relu_vs_tanh(train: ImageSet, *, epochs: int, lr: float | Mapping[str, float] = 0.01, batch_size: int = 64,
                 momentum: float = 0.9, target_error: float = 0.25, stop_at_target: bool = False, seed: int = 0,
                 init_std: float | None = None, filters: tuple[int, int, int] = (32, 32, 64),
                 max_batches: int | None = None, device=None) -> SpeedupResult:
    """Train the same small network twice on ``train``, with ReLU and with tanh, and compare their training error.

    Everything but the activation function (and, if ``lr`` is a dict, the learning rate) is the same:
    the initial weights (copied from the ReLU network into the tanh network), the order of the
    batches (``seed``), no regularization, as in the paper's Figure 1. Each network is trained by
    :func:`train_figure1_net`.

    Args:
        lr: one learning rate for both, or ``{"relu": ..., "tanh": ...}``, each network's own (the
            paper's choice: "chosen to make training as fast as possible", see :func:`learning_rate_grid`).
        epochs: the most epochs each network trains.
        stop_at_target: stop each network after its first epoch at or below ``target_error`` (saves
            the time of the epochs after it; the ratio is the same).
        init_std: None: He-uniform (the course's default); a number: AlexNet's initialization, every
            weight from a Gaussian with this standard deviation (the paper: 0.01), biases 0.

    Returns:
        A :class:`SpeedupResult` with both histories, the epochs each needed to reach
        ``target_error`` and the ratio tanh/ReLU (or its lower bound).
    """
    rates = dict(lr) if isinstance(lr, Mapping) else {"relu": lr, "tanh": lr}
    if set(rates) != {"relu", "tanh"}:
        raise ValueError(f"lr is one number or a dict with the keys 'relu' and 'tanh', got {lr!r}.")
    # The very same starting point: the ReLU network's initial weights, copied into the tanh network.
    initial_weights = copy.deepcopy(_build(train, "relu", seed=seed, init_std=init_std, filters=filters).state_dict())
    preprocess = normalization(train)
    histories: dict[str, History] = {}
    for activation in ("relu", "tanh"):
        history = train_figure1_net(train, activation, lr=rates[activation], epochs=epochs, batch_size=batch_size,
                                    momentum=momentum, target_error=target_error, stop_at_target=stop_at_target,
                                    seed=seed, init_std=init_std, filters=filters, max_batches=max_batches,
                                    initial_weights=initial_weights, preprocess=preprocess, device=device)
        histories[activation] = history
    reached = {name: epochs_to_error(h, target_error) for name, h in histories.items()}
    ratio, lower_bound = speedup(reached["relu"], reached["tanh"], epochs)
    images = len(train) if max_batches is None else min(len(train), max_batches * batch_size)
    settings = {"batch_size": batch_size, "lr": rates, "momentum": momentum, "seed": seed, "filters": tuple(filters),
                "max_batches": max_batches, "init_std": init_std, "stop_at_target": stop_at_target}
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
