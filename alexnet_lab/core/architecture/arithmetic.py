"""The arithmetic behind a description, without any framework: output sizes, parameters, MACs, activations.

Conventions: ``params`` counts every weight of a layer (BatchNorm's moving statistics included, as Keras
and torchinfo do); ``macs`` counts the multiply-accumulates of convolutions and fully connected layers
(pooling, activations and normalization count 0, as the usual "AlexNet needs 0.7 GMACs" figures do);
``activations`` is the number of values a layer outputs for one image.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from alexnet_lab.core.architecture.layers import (
    LRN,
    Activation,
    AdaptiveAvgPool,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    ImageSizeWarning,
    Layer,
    MaxPool,
    Resize,
)

__all__ = ["conv_output_size", "LayerRow", "compute_rows", "check_fits", "min_image_size", "totals", "format_table",
           "compare_tables"]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The output-size formula of convolution and pooling: ``floor((n + 2p - k) / s) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class LayerRow:
    """One row of :func:`layer_table`."""
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activations: int
    detail: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "output_shape": self.output_shape,
                "params": self.params, "macs": self.macs, "activations": self.activations,
                "detail": self.detail}


def compute_rows(input_shape: tuple[int, int, int], layers: Iterable[Layer]) -> list[LayerRow]:
    h, w, c = input_shape
    shape: tuple[int, ...] = (h, w, c)
    rows = []
    for layer in layers:
        params = macs = 0
        detail = ""
        if isinstance(layer, Resize):
            shape = (layer.size, layer.size, shape[2])
            detail = "bilinear"
        elif isinstance(layer, Conv):
            h, w, c = shape
            if c % layer.groups or layer.filters % layer.groups:
                raise ValueError(f"{layer.name}: channels {c}->{layer.filters} not divisible by groups={layer.groups}.")
            oh = conv_output_size(h, layer.kernel, layer.stride, layer.padding)
            ow = conv_output_size(w, layer.kernel, layer.stride, layer.padding)
            per_output = layer.kernel * layer.kernel * (c // layer.groups)
            params = per_output * layer.filters + (layer.filters if layer.bias else 0)
            shape = (oh, ow, layer.filters)
            macs = oh * ow * layer.filters * per_output
            detail = f"{layer.kernel}×{layer.kernel}/{layer.stride}, pad {layer.padding}"
            if layer.groups > 1:
                detail += f", groups {layer.groups}"
        elif isinstance(layer, (MaxPool, AvgPool)):
            h, w, c = shape
            shape = (conv_output_size(h, layer.size, layer.stride), conv_output_size(w, layer.size, layer.stride), c)
            detail = f"{layer.size}×{layer.size}/{layer.stride}"
        elif isinstance(layer, AdaptiveAvgPool):
            shape = (layer.output, layer.output, shape[2])
            detail = f"to {layer.output}×{layer.output}"
        elif isinstance(layer, BatchNorm):
            params = 4 * shape[-1]  # gamma, beta, moving mean, moving variance
        elif isinstance(layer, LRN):
            detail = f"n={layer.size}, α={layer.alpha:g}, β={layer.beta:g}, k={layer.k:g}"
        elif isinstance(layer, Activation):
            detail = layer.function
        elif isinstance(layer, Dropout):
            detail = f"p={layer.rate:g}"
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            (n_in,) = shape
            params = n_in * layer.units + layer.units
            macs = n_in * layer.units
            shape = (layer.units,)
        else:  # pragma: no cover - a new record type without arithmetic
            raise TypeError(f"No arithmetic for layer {layer!r}")
        rows.append(LayerRow(layer.name, type(layer).__name__, shape, params, macs, math.prod(shape), detail))
    return rows


def check_fits(model: str, input_shape: tuple[int, int, int], layers: list[Layer], canonical_size: int) -> None:
    """Raise if the input is too small for the network; warn where conv arithmetic drops pixels."""
    size = input_shape[0]
    notes = []
    for layer in layers:
        if isinstance(layer, Resize):
            size = layer.size
        elif isinstance(layer, (Conv, MaxPool, AvgPool)):
            k = layer.kernel if isinstance(layer, Conv) else layer.size
            pad = layer.padding if isinstance(layer, Conv) else 0
            out = conv_output_size(size, k, layer.stride, pad)
            if out < 1:
                minimum = min_image_size(input_shape[2], layers)
                raise ValueError(
                    f"{model}: a {input_shape[0]}×{input_shape[1]} image is too small: at {layer.name} the feature "
                    f"map would be {out}×{out}. The smallest image this network accepts is {minimum}×{minimum}; "
                    f"resize your images (or pass resize_to=...) to at least that."
                )
            dropped = (size + 2 * pad - k) % layer.stride
            if isinstance(layer, Conv) and dropped and size != canonical_size:
                right = conv_output_size(canonical_size, k, layer.stride, pad)
                notes.append(
                    f"{model}: with {size}×{size} inputs, {layer.name} ({k}×{k}, stride {layer.stride}, "
                    f"padding {pad}) gives {out}×{out} and ignores the last {dropped} row(s) and column(s), "
                    f"because n + 2p - k = {size + 2 * pad - k} is not a multiple of {layer.stride}. The network "
                    f"still works, but its sizes differ from the paper's. For the paper's {right}×{right} after "
                    f"{layer.name}, feed {canonical_size}×{canonical_size} images"
                    + (" (or use padding=2 with 224×224, as torchvision does)." if canonical_size == 227 else ".")
                )
            size = out
        elif isinstance(layer, AdaptiveAvgPool):
            size = layer.output
    for note in notes:
        warnings.warn(note, ImageSizeWarning, stacklevel=4)


def min_image_size(in_channels: int, layers: list[Layer]) -> int:
    """The smallest square input for which every layer still has an output of at least 1×1."""
    for size in range(1, 4096):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = compute_rows((size, size, in_channels), layers)
        except ValueError:
            continue
        if all(r.activations > 0 and all(d > 0 for d in r.output_shape) for r in rows):
            return size
    raise ValueError("No input size up to 4096 fits this network.")


def totals(rows: list[LayerRow]) -> dict[str, int]:
    """Sums of a layer table: parameters, MACs, all activations, and 'neurons' (conv and FC outputs, as the paper counts)."""
    return {
        "params": sum(r.params for r in rows),
        "macs": sum(r.macs for r in rows),
        "activations": sum(r.activations for r in rows),
        "neurons": sum(r.activations for r in rows if r.kind in ("Conv", "Dense")),
    }


def format_table(rows: list[LayerRow]) -> str:
    """The table as aligned text, with totals, as ``alexnet-lab summary`` prints it."""
    def shape(s):
        return "×".join(str(d) for d in s)
    header = f"{'layer':<10} {'kind':<16} {'output (H×W×C)':<16} {'params':>12} {'MACs':>15} {'activations':>12}  detail"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<10} {r.kind:<16} {shape(r.output_shape):<16} {r.params:>12,} {r.macs:>15,} "
                     f"{r.activations:>12,}  {r.detail}")
    t = totals(rows)
    lines.append("-" * len(header))
    lines.append(f"{'total':<10} {'':<16} {'':<16} {t['params']:>12,} {t['macs']:>15,} {t['activations']:>12,}")
    lines.append(f"neurons (conv + fully connected outputs per image): {t['neurons']:,}")
    return "\n".join(lines)


_COMPARED_KINDS = ("Resize", "Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "Flatten", "Dense")


def compare_tables(rows_a: list[LayerRow], rows_b: list[LayerRow], labels: tuple[str, str] = ("a", "b")) -> str:
    """Two layer tables side by side, as aligned text: each layer's operation, output shape and parameters.

    Layers are matched by name (``conv1`` with ``conv1``); a layer only one network has shows ``-``
    on the other side. Activations, dropout and normalization are left out (they change no shape).
    The last lines compare the totals, with the ratio ``b / a``. Example::

        print(compare_tables(layer_table("classic", num_classes=10), layer_table("cifar10"),
                             labels=("classic", "cifar10")))
    """
    if len(labels) != 2:
        raise ValueError(f"labels must name the two tables, e.g. ('classic', 'cifar10'); got {labels!r}.")
    by_name = [{r.name: r for r in rows if r.kind in _COMPARED_KINDS} for rows in (rows_a, rows_b)]
    names = list(by_name[0]) + [n for n in by_name[1] if n not in by_name[0]]

    def cells(row: LayerRow | None) -> str:
        if row is None:
            return f"{'-':<16} {'-':<12} {'-':>11}"
        operation = row.detail or row.kind.lower()
        return f"{operation:<16} {'×'.join(map(str, row.output_shape)):<12} {row.params:>11,}"

    width = 41
    lines = [f"{'':<8} | {labels[0]:<{width}} | {labels[1]}",
             f"{'layer':<8} | {'operation':<16} {'output':<12} {'params':>11} | {'operation':<16} {'output':<12} "
             f"{'params':>11}"]
    lines.append("-" * len(lines[1]))
    for name in names:
        lines.append(f"{name:<8} | {cells(by_name[0].get(name))} | {cells(by_name[1].get(name))}")
    lines.append("-" * len(lines[1]))
    ta, tb = totals(rows_a), totals(rows_b)
    w = max(15, *(len(label) for label in labels))
    lines.append(f"{'totals':<22} {labels[0]:>{w}} | {labels[1]:>{w}} | ratio")
    for key, text in (("params", "parameters"), ("macs", "MACs per image"), ("activations", "activations per image")):
        ratio = f"{tb[key] / ta[key]:.3g}" if ta[key] else "-"
        lines.append(f"{text:<22} {ta[key]:>{w},} | {tb[key]:>{w},} | {ratio}")
    lines.append(f"(ratio: {labels[1]} / {labels[0]})")
    return "\n".join(lines)
