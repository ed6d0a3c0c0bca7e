"""The experiments of notebooks 01 and 04: ReLU against tanh, and the checks to run before a long training.

Notebook 01 compares LeNet-5 with AlexNet (:func:`plot_size_comparison`), shows why saturating
activations slow learning down (:func:`plot_activation_functions`), and tests, at small scale, the
claim of the AlexNet paper's Figure 1: a small convolutional network with ReLUs reaches 25% training
error on CIFAR-10 six times faster than the same network with tanh units::

    from alexnet_lab import data, experiments
    train, _ = data.load_cifar10(per_class=300)
    result = experiments.relu_vs_tanh(train, epochs=30)
    print(result.summary())          # epochs to 25% training error, and their ratio
    experiments.plot_training_error(result)

Notebook 04 runs the checks a careful practitioner runs before starting a long training run, and
shows the classic ways AlexNet fails to learn. The helpers here measure what those checks look at:

* :func:`scale_output_layer` (start the output layer small, so that the first loss is ln C),
* :func:`training_throughput` (images/s of training steps, Keras or PyTorch),
* :func:`training_memory_estimate` (bytes, from the framework-free layer table) and
  :func:`saved_for_backward_bytes` (bytes PyTorch actually keeps for the backward pass), both
  per batch size in :func:`batch_size_costs`,
* :func:`activation_stds` (the spread of every layer's output: vanishing or exploding signals),
* :func:`reinitialize` (give a model badly scaled weights, to see what that does),
* :func:`plot_batch_size_costs`, :func:`plot_activation_stds`, :func:`plot_against_healthy`.

Importing this module imports neither TensorFlow nor PyTorch: each function imports the framework
of the model it is given, when it runs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import architecture as arch
from .checks import framework_of
from .data import ImageSet
from .history import History

__all__ = [
    "plot_size_comparison", "plot_activation_functions",
    "describe_figure1_net", "epochs_to_error", "speedup", "SpeedupResult", "relu_vs_tanh", "plot_training_error",
    "scale_output_layer", "training_throughput", "training_memory_estimate", "saved_for_backward_bytes",
    "batch_size_costs", "plot_batch_size_costs", "activation_stds", "plot_activation_stds", "reinitialize",
    "plot_against_healthy",
]

MiB = 2**20


# ---------------------------------------------------------------------------
# LeNet-5 against AlexNet, and the activation functions
# ---------------------------------------------------------------------------
def _new_figure(rows: int = 1, cols: int = 1, **kwargs):
    from .plots import _new_figure as new_figure

    return new_figure(rows, cols, **kwargs)


def _short(value: float) -> str:
    """A count in short form: 950, 4.1k, 37.7M, 1.1G (as the figures of :mod:`alexnet_lab.plots` write them)."""
    from .plots import _si

    return _si(value)


def plot_size_comparison(tables: Mapping[str, Sequence[arch.LayerRow]], bytes_per_value: int = 4,
                         title: str | None = None):
    """Whole networks side by side: parameters, MACs per image and activation memory per image, on log scales.

    ``tables``: ``{"LeNet-5": layer_table("lenet5"), "AlexNet": layer_table("classic")}`` (any number
    of networks, the first is the reference the others are compared with). Activation memory is every
    layer's output for one image, ``activations × bytes_per_value`` (float32: 4 bytes).
    """
    if len(tables) < 1:
        raise ValueError("plot_size_comparison needs at least one {name: layer_table(...)}.")
    names = list(tables)
    totals = {n: arch.totals(list(rows)) for n, rows in tables.items()}
    panels = (("params", "parameters", 1, "#8cb4e0"), ("macs", "multiply-accumulates per image", 1, "#f2b880"),
              ("activations", "activation memory per image (bytes)", bytes_per_value, "#9fd3a5"))
    fig, grid = _new_figure(1, 3, figsize=(11.0, 3.6))
    x = np.arange(len(names))
    for ax, (key, label, factor, color) in zip(grid[0], panels):
        values = np.array([totals[n][key] * factor for n in names], dtype=float)
        ax.bar(x, values, color=color, edgecolor="#444", linewidth=0.6, width=0.6)
        ax.set_yscale("log")
        ax.set_ylim(values.min() / 3, values.max() * 40)
        for xi, v in zip(x, values):
            ratio = f"\n{v / values[0]:,.0f}×" if xi > 0 else ""
            unit = "B" if factor != 1 else ""
            ax.text(xi, v * 1.3, _short(v) + unit + ratio, ha="center", va="bottom", fontsize=8.5)
        ax.set_xticks(x, names)
        ax.set_title(label, fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or " vs ".join(names) + ": the whole network, one image", fontsize=11)
    fig.tight_layout()
    return fig


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
    fig, grid = _new_figure(1, 2, figsize=(10.0, 3.4))
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
    of the time. Returns ``(input_shape, layers)`` for :func:`alexnet_lab.torch_models.build` or
    :func:`alexnet_lab.keras_models.build`.
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
            verdict = f"ReLU did not reach {target} within {self.epochs} epochs: no ratio can be measured; train longer."
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
    :func:`alexnet_lab.torch_training.fit` (SGD with momentum).

    The training error of an epoch is the error on the batches of that epoch while training
    (``1 - accuracy`` of the History), as cuda-convnet reported it for the paper.

    Returns:
        A :class:`SpeedupResult` with both histories, the epochs each needed to reach
        ``target_error`` and the ratio tanh/ReLU (or its lower bound).
    """
    from . import pipelines, seeding, torch_models, torch_training

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if train.num_classes < 2 or len(train) == 0:
        raise ValueError(f"relu_vs_tanh needs a training set with images of at least 2 classes, got {train!r}.")
    mean, std = pipelines.channel_stats(train)
    preprocess = pipelines.Preprocess(mean=mean, std=std)  # normalize only: no augmentation
    h, w, c = train.shape
    if h != w:
        raise ValueError(f"relu_vs_tanh needs square images, got {h}×{w}.")
    histories: dict[str, History] = {}
    initial_weights = None
    for activation in ("relu", "tanh"):
        seeding.seed_everything(seed, frameworks=("torch",))
        input_shape, layers = describe_figure1_net(activation, filters=filters, image_size=h, in_channels=c,
                                                   num_classes=train.num_classes)
        model = torch_models.build(input_shape, layers, name=f"figure1_{activation}")
        if initial_weights is None:
            initial_weights = copy.deepcopy(model.state_dict())
        else:
            model.load_state_dict(initial_weights)  # the very same starting point
        loader = pipelines.torch_loader(train, preprocess, batch_size=batch_size, shuffle=True, seed=seed)
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
        fig, grid = _new_figure(figsize=(6.4, 4.0))
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


# ---------------------------------------------------------------------------
# Before a long run: throughput and memory
# ---------------------------------------------------------------------------
def _input_shape(model, framework: str) -> tuple[int, int, int]:
    """The model's image shape as (H, W, C), from the course's models (or a Keras model's Input)."""
    if framework == "keras":
        return tuple(int(d) for d in model.inputs[0].shape[1:])
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("This PyTorch module does not say its input shape: pass image_shape=(H, W, C).")
    c, h, w = shape
    return h, w, c


def _random_batch(batch_size: int, image_shape: tuple[int, int, int], num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *image_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size).astype(np.int64)
    return x, y


def training_throughput(model, batch_size: int, *, steps: int = 5, warmup: int = 1, lr: float = 0.01,
                        image_shape: tuple[int, int, int] | None = None, seed: int = 0) -> float:
    """Training speed in images per second: full SGD steps (forward, backward, update) on random images.

    ``warmup`` steps come first and are not timed (the first step allocates memory, and Keras
    compiles its training function). Keras models take NHWC images, PyTorch models NCHW; both
    are fed the same random numbers. The model's weights change: use a fresh model, or one you
    do not need any more.
    """
    if batch_size < 1 or steps < 1 or warmup < 0:
        raise ValueError(f"batch_size and steps must be at least 1 and warmup at least 0, got {batch_size}, "
                         f"{steps}, {warmup}.")
    framework = framework_of(model)
    image_shape = image_shape or _input_shape(model, framework)
    if framework == "torch":
        return _torch_throughput(model, batch_size, steps, warmup, lr, image_shape, seed)
    return _keras_throughput(model, batch_size, steps, warmup, lr, image_shape, seed)


def _torch_throughput(model, batch_size, steps, warmup, lr, image_shape, seed) -> float:
    import torch
    import torch.nn.functional as F

    parameter = next(model.parameters())
    device = parameter.device
    x, y = _random_batch(batch_size, image_shape, _torch_classes(model), seed)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(y).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def _keras_throughput(model, batch_size, steps, warmup, lr, image_shape, seed) -> float:
    import keras

    num_classes = int(model.outputs[0].shape[-1])
    x, y = _random_batch(batch_size, image_shape, num_classes, seed)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(max(warmup, 1)):  # the first call compiles the training step: never time it
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss).ravel()[0])  # wait for the last step's result
    return steps * batch_size / (time.perf_counter() - start)


def _torch_classes(model) -> int:
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("The model has no nn.Linear layer, so its number of classes is unknown.")
    return linears[-1].out_features


def training_memory_estimate(rows: Sequence[arch.LayerRow], batch_size: int, *,
                             input_shape: tuple[int, ...] | None = None, bytes_per_value: int = 4,
                             optimizer_copies: int = 3) -> dict[str, int]:
    """The memory one training step needs, in bytes, worked out from a layer table (no framework needed).

    * ``weights``: every parameter once (float32: 4 bytes each);
    * ``optimizer``: ``optimizer_copies`` copies of the parameters: the weights, their gradients and
      SGD's momentum (3; Adam keeps two moments, so 4);
    * ``activations``: every layer's output for every image of the batch (``activations`` column
      of :func:`alexnet_lab.architecture.layer_table`, plus the input images when ``input_shape``
      is given): what backpropagation needs to keep, before any framework's savings;
    * ``total``: ``optimizer + activations``.

    A rough estimate: frameworks keep less (a ReLU's output can be shared with the next layer, a
    flatten is a view) and need some working memory on top.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    t = arch.totals(list(rows))
    per_image = t["activations"] + (math.prod(input_shape) if input_shape else 0)
    weights = t["params"] * bytes_per_value
    activations = batch_size * per_image * bytes_per_value
    optimizer = optimizer_copies * weights
    return {"weights": weights, "optimizer": optimizer, "activations": activations, "total": optimizer + activations}


def saved_for_backward_bytes(model, batch_size: int, *, image_shape: tuple[int, int, int] | None = None,
                             seed: int = 0) -> int:
    """Bytes of activations PyTorch keeps for the backward pass of one training batch (measured, any device).

    Runs one forward pass in training mode under ``torch.autograd.graph.saved_tensors_hooks``,
    which sees every tensor autograd stores for the backward pass, and adds up their sizes:
    the random images included (conv1 needs them for its weight gradient), the loss left out;
    each storage once (a flatten shares its input's memory), the model's own weights left out
    (they are counted with the parameters). Layers keep what their gradient formula needs: a
    convolution its input, a ReLU its output, a max-pool its input and the int64 position of
    each maximum, dropout its mask. Nothing is updated.
    """
    import torch

    framework = framework_of(model)
    if framework != "torch":
        raise TypeError("saved_for_backward_bytes measures a PyTorch model; for Keras use training_memory_estimate.")
    image_shape = image_shape or _input_shape(model, framework)
    device = next(model.parameters()).device
    x, _ = _random_batch(batch_size, image_shape, 1, seed)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            logits = model(x)  # the loss would keep a few more bytes: its (batch, classes) softmax
        del logits
    finally:
        model.train(was_training)
    return sum(storages.values())


def batch_size_costs(torch_model=None, keras_model=None, batch_sizes: Sequence[int] = (8, 16, 32, 64), *,
                     steps: int = 3, rows: Sequence[arch.LayerRow] | None = None,
                     input_shape: tuple[int, int, int] | None = None) -> list[dict]:
    """Throughput and memory for each batch size: one dict per batch size, ready to print or plot.

    Keys: ``batch_size``; ``torch_images_per_s`` / ``keras_images_per_s`` (when that model is
    given, from :func:`training_throughput`); ``estimate_bytes`` and ``estimate_activation_bytes``
    (from :func:`training_memory_estimate`, when ``rows`` is given); ``saved_activation_bytes``
    (measured by :func:`saved_for_backward_bytes`, PyTorch); ``cuda_peak_bytes`` (the peak GPU
    memory of a training step, measured when the PyTorch model is on a CUDA GPU).
    """
    if torch_model is None and keras_model is None:
        raise ValueError("batch_size_costs needs a PyTorch model, a Keras model, or both.")
    table = []
    for b in batch_sizes:
        entry: dict = {"batch_size": int(b)}
        if rows is not None:
            estimate = training_memory_estimate(rows, b, input_shape=input_shape)
            entry["estimate_bytes"] = estimate["total"]
            entry["estimate_activation_bytes"] = estimate["activations"]
        if torch_model is not None:
            entry["saved_activation_bytes"] = saved_for_backward_bytes(torch_model, b)
            entry.update(_torch_step_costs(torch_model, b, steps))
        if keras_model is not None:
            entry["keras_images_per_s"] = training_throughput(keras_model, b, steps=steps)
        table.append(entry)
    return table


def _torch_step_costs(model, batch_size: int, steps: int) -> dict:
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    costs = {"torch_images_per_s": training_throughput(model, batch_size, steps=steps)}
    if device.type == "cuda":
        costs["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
    return costs


def plot_batch_size_costs(table: Sequence[Mapping], title: str | None = None):
    """Two panels against the batch size: training images/s (left) and memory in MiB (right)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    if not table:
        raise ValueError("plot_batch_size_costs needs the list that batch_size_costs returns, got an empty one.")
    sizes = [e["batch_size"] for e in table]
    fig, grid = _new_figure(1, 2, figsize=(10.5, 3.8))
    speed, memory = grid[0]
    for key, label, color in (("torch_images_per_s", "PyTorch", "#ee4c2c"), ("keras_images_per_s", "Keras", "#1f77b4")):
        if all(key in e for e in table):
            speed.plot(sizes, [e[key] for e in table], "o-", color=color, label=label)
    speed.set_ylabel("training images / s")
    speed.set_title("throughput (higher is better)", fontsize=10)
    lines = (("estimate_bytes", "estimate: weights, gradients, momentum + all activations", "#555", "--"),
             ("estimate_activation_bytes", "estimate: activations only", "#999", ":"),
             ("saved_activation_bytes", "measured: activations PyTorch saves for backward", "#ee4c2c", "-"),
             ("cuda_peak_bytes", "measured: peak GPU memory of a step", "#2ca02c", "-"))
    for key, label, color, style in lines:
        if all(key in e for e in table):
            memory.plot(sizes, [e[key] / MiB for e in table], style, marker="o", color=color, label=label)
    memory.set_ylabel("MiB")
    memory.set_title("memory per training step", fontsize=10)
    for ax in (speed, memory):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(s) for s in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7.5)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Failure modes: badly scaled weights and vanishing signals
# ---------------------------------------------------------------------------
def reinitialize(model, std: float, *, seed: int = 0) -> None:
    """Replace every convolution and fully connected weight by draws from Normal(0, ``std``), biases by 0.

    For the failure demonstrations: ``std=1e-4`` everywhere makes every layer's output about
    ``1e-4 × sqrt(fan_in)`` times its input, so the signal fades away layer after layer. (The
    course's models start from He-uniform weights, scaled for each layer's ``fan_in``.)
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}.")
    rng = np.random.default_rng(seed)
    framework = framework_of(model)
    if framework == "torch":
        import torch
        from torch import nn

        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    values = rng.normal(0.0, std, tuple(module.weight.shape)).astype(np.float32)
                    module.weight.copy_(torch.from_numpy(values))
                    if module.bias is not None:
                        module.bias.zero_()
        return
    for layer in _keras_weighted_layers(model):
        layer.kernel.assign(rng.normal(0.0, std, tuple(layer.kernel.shape)).astype(np.float32))
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.zeros(tuple(layer.bias.shape), dtype=np.float32))


def scale_output_layer(model, factor: float) -> None:
    """Multiply the weights and bias of the model's last fully connected (or convolution) layer by ``factor``.

    The fix for a first loss far above ``ln(num_classes)``: He initialization, which the
    course's models use everywhere, is made for layers followed by a ReLU; on the output layer it
    gives logits with a spread of a few units, so the network starts out confidently wrong.
    ``factor=0.01`` makes the first logits nearly equal, the softmax nearly uniform and the first
    loss ``ln(num_classes)``, while every later layer still learns from the first step.
    """
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}.")
    framework = framework_of(model)
    if framework == "torch":
        import torch
        from torch import nn

        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        if not layers:
            raise ValueError("The model has no nn.Linear or nn.Conv2d layer to scale.")
        with torch.no_grad():
            layers[-1].weight.mul_(factor)
            if layers[-1].bias is not None:
                layers[-1].bias.mul_(factor)
        return
    layers = _keras_weighted_layers(model)
    if not layers:
        raise ValueError("The model has no Dense or Conv2D layer to scale.")
    for variable in layers[-1].weights:
        variable.assign(np.asarray(variable) * factor)


def _keras_weighted_layers(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


def activation_stds(model, images) -> list[tuple[str, float]]:
    """The standard deviation of every convolution's and fully connected layer's output, in order.

    ``images``: a batch as the model takes it (NHWC for Keras, NCHW for PyTorch; a NumPy array or a
    tensor). The course's models are sequential, so the layers are run one after the other
    (PyTorch in evaluation mode, Keras with ``training=False``). Healthy networks keep these
    within a factor of a few of 1; a chain of shrinking values means vanishing signals (and
    vanishing gradients), a growing chain exploding ones.
    """
    framework = framework_of(model)
    stats = []
    if framework == "torch":
        import torch
        from torch import nn

        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        x = x.to(next(model.parameters()).device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for name, module in model.named_children():
                    x = module(x)
                    if isinstance(module, (nn.Conv2d, nn.Linear)):
                        stats.append((name, float(x.float().std(correction=0))))
        finally:
            model.train(was_training)
        return stats
    import keras

    x = keras.ops.convert_to_tensor(np.asarray(images, dtype=np.float32))
    weighted = set(id(layer) for layer in _keras_weighted_layers(model))
    for layer in model.layers:
        x = layer(x, training=False) if _takes_training(layer) else layer(x)
        if id(layer) in weighted:
            stats.append((layer.name, float(np.std(keras.ops.convert_to_numpy(x)))))
    return stats


def _takes_training(layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters


def plot_activation_stds(stats: Mapping[str, Sequence[tuple[str, float]]], title: str | None = None):
    """Per-layer output spread of one or more models on a log scale: ``{label: activation_stds(...)}``."""
    if not stats:
        raise ValueError("plot_activation_stds needs {label: activation_stds(model, images)}, got nothing.")
    fig, grid = _new_figure(figsize=(7.5, 3.8))
    ax = grid[0, 0]
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")
    names: list[str] = []
    for i, (label, values) in enumerate(stats.items()):
        layer_names = [n for n, _ in values]
        names = names if len(names) >= len(layer_names) else layer_names
        stds = np.array([max(s, 1e-45) for _, s in values])
        ax.plot(np.arange(len(values)), stds, "o-", color=colors[i % len(colors)], label=label)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), names, rotation=0, fontsize=8)
    ax.set_xlabel("layer (output of the convolution or fully connected layer)")
    ax.set_ylabel("standard deviation of the output")
    ax.grid(alpha=0.3, which="both", axis="y")
    ax.legend(fontsize=8)
    ax.set_title(title or "How the signal's spread changes through the network", fontsize=10)
    fig.tight_layout()
    return fig


def plot_against_healthy(healthy: History, broken: History, num_classes: int = 10, title: str | None = None):
    """Training curves of a broken run next to a healthy one, with the loss of a uniform guess and chance accuracy.

    Loss panel: ``ln(num_classes)``, the loss of predicting every class with the same probability,
    as a dotted line; where the broken run's loss became NaN or infinite, a note says in which epoch.
    Accuracy panel: chance, ``1 / num_classes``.
    """
    from .plots import plot_history

    fig = plot_history(healthy, broken, metrics=("loss", "accuracy"), title=title)
    loss_ax, accuracy_ax = fig.axes[:2]
    loss_ax.axhline(math.log(num_classes), color="#444", linestyle=":", linewidth=1,
                    label=f"ln {num_classes} = {math.log(num_classes):.2f}")
    accuracy_ax.axhline(1 / num_classes, color="#444", linestyle=":", linewidth=1, label="chance")
    finite = [v for h in (healthy, broken) for key in ("loss", "val_loss") for v in h.metrics.get(key, [])
              if math.isfinite(v)]
    if finite:
        loss_ax.set_ylim(0, max(max(finite), math.log(num_classes)) * 1.15)
    bad = [i for i, v in enumerate(broken.metrics.get("loss", []), start=1) if not math.isfinite(v)]
    if bad:
        loss_ax.text(0.5, 0.5, f"{broken.label or broken.framework}: loss NaN/inf\nfrom epoch {bad[0]}",
                     transform=loss_ax.transAxes, ha="center", va="center", color="#d62728", fontsize=10)
    loss_ax.legend(fontsize=7.5, loc="best")
    accuracy_ax.legend(fontsize=7.5, loc="best")
    return fig
