"""What a network costs to train: its size, its speed and its memory, measured and worked out.

Notebook 01 compares LeNet-5 with AlexNet (:func:`plot_size_comparison`); notebook 04 measures,
before a long training run, what a training step costs at each batch size:

* :func:`training_throughput` (images/s of training steps, Keras or PyTorch),
* :func:`training_memory_estimate` (bytes, from the framework-free layer table) and
  :func:`saved_for_backward_bytes` (bytes PyTorch actually keeps for the backward pass),
* :func:`batch_size_costs` (all of them per batch size) and :func:`plot_batch_size_costs`.

Importing this module imports neither TensorFlow nor PyTorch: each function imports the framework
of the model it is given, when it runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from alexnet_lab import frameworks
from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching.plots import new_figure, si_format

__all__ = [
    "plot_size_comparison", "training_throughput", "training_memory_estimate", "saved_for_backward_bytes",
    "batch_size_costs", "plot_batch_size_costs",
]

MiB = 2**20


# ---------------------------------------------------------------------------
# LeNet-5 against AlexNet: the whole network
# ---------------------------------------------------------------------------
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
    fig, grid = new_figure(1, 3, figsize=(11.0, 3.6))
    x = np.arange(len(names))
    for ax, (key, label, factor, color) in zip(grid[0], panels):
        values = np.array([totals[n][key] * factor for n in names], dtype=float)
        ax.bar(x, values, color=color, edgecolor="#444", linewidth=0.6, width=0.6)
        ax.set_yscale("log")
        ax.set_ylim(values.min() / 3, values.max() * 40)
        for xi, v in zip(x, values):
            ratio = f"\n{v / values[0]:,.0f}×" if xi > 0 else ""
            unit = "B" if factor != 1 else ""
            ax.text(xi, v * 1.3, si_format(v) + unit + ratio, ha="center", va="bottom", fontsize=8.5)
        ax.set_xticks(x, names)
        ax.set_title(label, fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title or " vs ".join(names) + ": the whole network, one image", fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Before a long run: throughput and memory
# ---------------------------------------------------------------------------
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
    framework = frameworks.framework_of(model)
    image_shape = image_shape or frameworks.input_shape(model)
    if framework == "torch":
        return _torch_throughput(model, batch_size, steps, warmup, lr, image_shape, seed)
    return _keras_throughput(model, batch_size, steps, warmup, lr, image_shape, seed)


def _torch_throughput(model, batch_size, steps, warmup, lr, image_shape, seed) -> float:
    import torch

    from alexnet_lab.torch.training import train_step

    device = next(model.parameters()).device
    x, y = _random_batch(batch_size, image_shape, _torch_classes(model), seed)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(y).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with frameworks.training_mode(model):  # the course's one training step, as fit takes it
        for _ in range(warmup):
            train_step(model, x, y, optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, x, y, optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return steps * batch_size / seconds


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
      of :func:`alexnet_lab.core.architecture.layer_table`, plus the input images when ``input_shape``
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
    if frameworks.framework_of(model) != "torch":
        raise TypeError("saved_for_backward_bytes measures a PyTorch model; for Keras use training_memory_estimate.")
    import torch

    image_shape = image_shape or frameworks.input_shape(model)
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

    with frameworks.training_mode(model), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model(x)  # the loss would keep a few more bytes: its (batch, classes) softmax
    del logits
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
    fig, grid = new_figure(1, 2, figsize=(10.5, 3.8))
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
