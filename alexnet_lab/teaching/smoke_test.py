"""Notebook 04's smoke test: the classic ways AlexNet fails to learn, and the checks that catch them.

Before a long training run, a careful practitioner checks that the first loss is ``ln C`` (C
classes), that the signal keeps its spread through the layers, and what a broken run looks like
next to a healthy one. The helpers here measure and show what those checks look at:

* :func:`scale_output_layer` (start the output layer small, so that the first loss is ln C),
* :func:`reinitialize` (give a model badly scaled weights, to see what that does),
* :func:`activation_stds` (the spread of every layer's output: vanishing or exploding signals)
  and :func:`plot_activation_stds`,
* :func:`dead_relus` (the share of each ReLU's units that output 0 for every image: units that no
  longer learn),
* :func:`plot_against_healthy` (a broken run's curves next to a healthy one's).

The costs of a training step (throughput, memory) are in :mod:`alexnet_lab.teaching.costs`.
Importing this module imports neither TensorFlow nor PyTorch: each function imports the framework
of the model it is given, when it runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from alexnet_lab.core.history import History
from alexnet_lab.frameworks import evaluating, framework_of
from alexnet_lab.teaching.plots import new_figure, plot_history

__all__ = ["reinitialize", "scale_output_layer", "activation_stds", "dead_relus", "plot_activation_stds",
           "plot_against_healthy"]


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


def _layer_outputs(model, images, pick):
    """Run a sequential model's layers one after the other in inference mode (PyTorch's evaluation mode, Keras'
    ``training=False``) and yield ``(name, output as a NumPy array, channel axis)`` for every layer ``pick`` takes."""
    if framework_of(model) == "torch":
        import torch

        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        x = x.to(next(model.parameters()).device)
        with evaluating(model), torch.no_grad():
            for name, module in model.named_children():
                x = module(x)
                if pick(module):
                    yield name, x.float().cpu().numpy(), 1
        return
    import keras

    x = keras.ops.convert_to_tensor(np.asarray(images, dtype=np.float32))
    for layer in model.layers:
        x = layer(x, training=False) if _takes_training(layer) else layer(x)
        if pick(layer):
            yield layer.name, keras.ops.convert_to_numpy(x), -1


def activation_stds(model, images) -> list[tuple[str, float]]:
    """The standard deviation of every convolution's and fully connected layer's output, in order.

    ``images``: a batch as the model takes it (NHWC for Keras, NCHW for PyTorch; a NumPy array or a
    tensor). The course's models are sequential, so the layers are run one after the other
    (PyTorch in evaluation mode, Keras with ``training=False``). Healthy networks keep these
    within a factor of a few of 1; a chain of shrinking values means vanishing signals (and
    vanishing gradients), a growing chain exploding ones.
    """
    if framework_of(model) == "torch":
        from torch import nn

        def pick(module):
            return isinstance(module, (nn.Conv2d, nn.Linear))
    else:
        weighted = {id(layer) for layer in _keras_weighted_layers(model)}

        def pick(layer):
            return id(layer) in weighted
    return [(name, float(np.std(out, dtype=np.float64))) for name, out, _ in _layer_outputs(model, images, pick)]


def dead_relus(model, images) -> list[tuple[str, float]]:
    """The share of each ReLU's units (channels of a convolution, units of a dense layer) that are dead.

    A unit is dead on ``images`` when its ReLU outputs 0 for every image and every position: its
    gradient is 0 too, so it stops learning, and so does everything that feeds only it. A network
    with a whole layer dead passes no gradient below it and stays at the loss ln C. ``images``: a
    batch as the model takes it (NHWC for Keras, NCHW for PyTorch). Counts ``nn.ReLU`` modules in
    PyTorch; in Keras ``ReLU`` layers and ``Conv2D`` / ``Dense`` layers with ``activation="relu"``,
    each under its own name. Layers run as in :func:`activation_stds` (inference mode).
    """
    if framework_of(model) == "torch":
        from torch import nn

        def pick(module):
            return isinstance(module, nn.ReLU)
    else:
        import keras

        def pick(layer):
            activation = getattr(layer, "activation", None)
            return isinstance(layer, keras.layers.ReLU) or getattr(activation, "__name__", "") == "relu"
    found = []
    for name, out, channel_axis in _layer_outputs(model, images, pick):
        active = out > 0
        if active.ndim == 4:  # a unit is a channel: active anywhere in any image
            active = np.moveaxis(active, channel_axis, -1).reshape(-1, active.shape[channel_axis])
        found.append((name, 1.0 - float(active.any(axis=0).mean())))
    return found


def _takes_training(layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters


def plot_activation_stds(stats: Mapping[str, Sequence[tuple[str, float]]], title: str | None = None):
    """Per-layer output spread of one or more models on a log scale: ``{label: activation_stds(...)}``."""
    if not stats:
        raise ValueError("plot_activation_stds needs {label: activation_stds(model, images)}, got nothing.")
    fig, grid = new_figure(figsize=(7.5, 3.8))
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
