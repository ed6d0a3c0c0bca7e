"""Architecture diagrams and where the costs are: one box per stage, and per-layer bars.

* :func:`architecture_stages` lists the boxes (:class:`Stage`) of AlexNet (any preset) or LeNet-5,
  computed from the framework-free description in :mod:`alexnet_lab.core.architecture`;
* :func:`plot_architecture` draws them as a flat diagram;
* :func:`plot_layer_costs` draws each layer's parameters, multiply-accumulates and activations.

Framework-free: numpy and matplotlib only. Every plotting function returns a matplotlib
``Figure`` (see :mod:`alexnet_lab.teaching.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alexnet_lab.core import architecture as arch
from alexnet_lab.teaching.plots import new_figure, si_format

__all__ = ["Stage", "architecture_stages", "plot_architecture", "plot_layer_costs"]


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
        fig, grid = new_figure(figsize=(step * (len(stages) - 1) + 1.3, 2 * top + 2.3))
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
    default = f"{name}: {t['params']:,} parameters, {si_format(t['macs'])} multiply-accumulates (MACs) per image"
    ax.set_title(title or default, fontsize=10)
    fig.tight_layout()
    return fig


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
    fig, grid = new_figure(3, 1, figsize=(max(7.0, 0.62 * len(shown) + 1.5), 7.6), sharex=True)
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
                ax.text(xi, v * 1.25, si_format(v) + share, ha="center", va="bottom", fontsize=6.5, linespacing=1.0)
            else:
                ax.text(xi, low / 2 * 1.4, "0", ha="center", va="bottom", fontsize=6.5, color="#777")
        heading = (f"{label}: total {si_format(total)}" if key != "activations"
                   else f"{label}: {si_format(total)} in these layers")
        ax.set_title(heading, fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    grid[-1, 0].set_xticks(x, [r.name for r in shown], rotation=45, ha="right", fontsize=8)
    default = f"where the {si_format(t['params'])} parameters and {si_format(t['macs'])} MACs live"
    fig.suptitle(title or (f"{name}: {default}" if name else default[0].upper() + default[1:]), fontsize=11)
    fig.tight_layout()
    return fig
