"""Framework-free descriptions of AlexNet and LeNet-5, and the arithmetic behind them.

One description serves three readers:

* :mod:`alexnet_lab.keras_models` builds a Keras model from it,
* :mod:`alexnet_lab.torch_models` builds a PyTorch model from it,
* :func:`layer_table` computes, without any framework, every layer's output shape,
  parameter count, multiply-accumulates (MACs) and activation count.

A description is a list of small layer records (:class:`Conv`, :class:`MaxPool`, ...),
each with the name that both frameworks give to that layer. Shapes are written
channels-last, ``(height, width, channels)``, as in the paper ("55×55×96").

The canonical AlexNet reads layer by layer in :func:`describe_alexnet`; presets only
change numbers (channels, kernel sizes, groups, input size), never the structure.

Conventions used for the arithmetic
-----------------------------------
* ``params`` counts trainable weights and biases, plus BatchNorm's moving mean and
  variance (as Keras' ``model.count_params()`` and PyTorch's ``numel`` of the state do
  not agree on this, we follow Keras and torchinfo: *all* weights of the layer).
* ``macs`` counts the multiply-accumulates of convolutions and fully connected layers.
  Pooling, activations and normalization do a few cheap operations per value and are
  counted as 0 MACs, as the usual "AlexNet needs 0.7 GMACs" figures do.
* ``activations`` is the number of values the layer outputs for one image.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = [
    "Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "LRN", "BatchNorm", "Activation",
    "Dropout", "Flatten", "Dense", "Resize",
    "Preset", "PRESETS", "preset_names", "get_preset", "describe_alexnet", "describe_lenet5",
    "LayerRow", "compute_rows", "layer_table", "totals", "conv_output_size", "min_image_size",
    "format_table", "compare_tables", "ImageSizeWarning",
]


class ImageSizeWarning(UserWarning):
    """The network still works, but the input size drops pixels the paper's sizes keep."""


# ---------------------------------------------------------------------------
# Layer records. Each has a ``name``; both frameworks use exactly that name.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Resize:
    """Bilinear up- or down-sampling of the input to ``size × size`` inside the model."""
    name: str
    size: int


@dataclass(frozen=True)
class Conv:
    """2-D convolution. ``padding`` is in pixels on each side; ``groups=2`` is the paper's two-GPU split."""
    name: str
    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = True


@dataclass(frozen=True)
class MaxPool:
    name: str
    size: int
    stride: int


@dataclass(frozen=True)
class AvgPool:
    name: str
    size: int
    stride: int


@dataclass(frozen=True)
class AdaptiveAvgPool:
    """Average-pools any feature map to ``output × output`` (torchvision's ``AdaptiveAvgPool2d``)."""
    name: str
    output: int


@dataclass(frozen=True)
class LRN:
    """Local Response Normalization in the paper's notation.

    ``b = a / (k + alpha * sum(a_j ** 2 over size neighbouring channels)) ** beta``.
    PyTorch's ``nn.LocalResponseNorm`` divides alpha by ``size``; its builder multiplies.
    """
    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0


@dataclass(frozen=True)
class BatchNorm:
    name: str
    epsilon: float = 1e-5
    momentum: float = 0.1  # PyTorch's convention: weight of the new batch statistic


@dataclass(frozen=True)
class Activation:
    name: str
    function: str = "relu"  # "relu", "tanh" or "sigmoid"


@dataclass(frozen=True)
class Dropout:
    name: str
    rate: float


@dataclass(frozen=True)
class Flatten:
    name: str = "flatten"


@dataclass(frozen=True)
class Dense:
    name: str
    units: int


Layer = Resize | Conv | MaxPool | AvgPool | AdaptiveAvgPool | LRN | BatchNorm | Activation | Dropout | Flatten | Dense

ACTIVATIONS = ("relu", "tanh", "sigmoid")
NORMS = ("none", "lrn", "batch")


# ---------------------------------------------------------------------------
# Presets: the numbers that differ between the AlexNets people mean.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """The numbers of one AlexNet variant. The structure is always that of :func:`describe_alexnet`."""
    name: str
    summary: str
    image_size: int
    in_channels: int
    num_classes: int
    filters: tuple[int, int, int, int, int]
    kernels: tuple[int, int, int, int, int]
    strides: tuple[int, int, int, int, int]
    paddings: tuple[int, int, int, int, int]
    groups: tuple[int, int, int, int, int] = (1, 1, 1, 1, 1)
    pool: tuple[int, int] = (3, 2)            # overlapping max-pooling: 3×3 windows, stride 2
    pool_after: tuple[int, ...] = (1, 2, 5)   # conv blocks followed by max-pooling
    hidden_units: int = 4096
    norm: str = "none"
    dropout: float = 0.5
    dropout_before_fc: bool = False           # torchvision: Dropout -> Linear; paper: Linear -> ReLU -> Dropout
    adaptive_pool: int | None = None          # torchvision's AdaptiveAvgPool2d((6, 6))
    resize_to: int | None = None              # upsample inside the model (Fashion-MNIST)
    reference_params: int | None = None       # documented total for the preset's defaults


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="classic",
            summary="single-tower AlexNet of most courses: 96-256-384-384-256, 227×227 input",
            image_size=227, in_channels=3, num_classes=1000,
            filters=(96, 256, 384, 384, 256), kernels=(11, 5, 3, 3, 3),
            strides=(4, 1, 1, 1, 1), paddings=(0, 2, 1, 1, 1),
            reference_params=62_378_344,
        ),
        Preset(
            name="paper",
            summary="Krizhevsky et al. 2012: LRN after conv1/conv2, two-GPU split as groups=2 on conv2, conv4, conv5",
            image_size=227, in_channels=3, num_classes=1000,
            filters=(96, 256, 384, 384, 256), kernels=(11, 5, 3, 3, 3),
            strides=(4, 1, 1, 1, 1), paddings=(0, 2, 1, 1, 1), groups=(1, 2, 1, 2, 2),
            norm="lrn", reference_params=60_965_224,
        ),
        Preset(
            name="torchvision",
            summary="torchvision's reference: 64-192-384-256-256, 224×224 input, adaptive 6×6 average pool",
            image_size=224, in_channels=3, num_classes=1000,
            filters=(64, 192, 384, 256, 256), kernels=(11, 5, 3, 3, 3),
            strides=(4, 1, 1, 1, 1), paddings=(2, 2, 1, 1, 1),
            dropout_before_fc=True, adaptive_pool=6, reference_params=61_100_840,
        ),
        Preset(
            name="cifar10",
            summary="AlexNet for 32×32 CIFAR-10: 5×5 and 3×3 kernels at stride 1, 1024-unit head",
            image_size=32, in_channels=3, num_classes=10,
            filters=(64, 192, 384, 256, 256), kernels=(5, 5, 3, 3, 3),
            strides=(1, 1, 1, 1, 1), paddings=(2, 2, 1, 1, 1),
            hidden_units=1024, reference_params=5_871_434,
        ),
        Preset(
            name="fashion_mnist",
            summary="classic AlexNet for 1-channel 28×28 images, upsampled inside the model to 227×227",
            image_size=28, in_channels=1, num_classes=10,
            filters=(96, 256, 384, 384, 256), kernels=(11, 5, 3, 3, 3),
            strides=(4, 1, 1, 1, 1), paddings=(0, 2, 1, 1, 1),
            resize_to=227, reference_params=58_299_082,
        ),
    )
}


def preset_names() -> list[str]:
    """The names of all AlexNet presets, in the order they are documented."""
    return list(PRESETS)


def get_preset(preset: str | Preset) -> Preset:
    """Look a preset up by name; an unknown name raises a ``ValueError`` listing the known ones."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown AlexNet preset {preset!r}. Known presets: {', '.join(PRESETS)}. "
            "Pick one of these, e.g. alexnet('classic')."
        ) from None


# ---------------------------------------------------------------------------
# The canonical AlexNet, layer by layer.
# ---------------------------------------------------------------------------
def describe_alexnet(
    preset: str | Preset = "classic",
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | None = None,
    norm: str | None = None,
    dropout: float | None = None,
    resize_to: int | None = None,
) -> tuple[tuple[int, int, int], list[Layer]]:
    """Return ``(input_shape, layers)`` for AlexNet with the given preset and overrides.

    Arguments left as ``None`` take the preset's value. ``norm`` is ``"none"``,
    ``"lrn"`` (the paper's Local Response Normalization after the ReLU of conv1 and
    conv2, before pooling) or ``"batch"`` (BatchNorm in every conv block, between the
    convolution and its ReLU as in Ioffe & Szegedy 2015; the convolution then has no
    bias, since BatchNorm's shift replaces it). ``resize_to`` resizes the input inside
    the model (bilinear) before conv1, so a small data set is never stored resized.
    """
    p = get_preset(preset)
    num_classes = p.num_classes if num_classes is None else _positive_int("num_classes", num_classes)
    in_channels = p.in_channels if in_channels is None else _positive_int("in_channels", in_channels)
    image_size = p.image_size if image_size is None else _positive_int("image_size", image_size)
    resize_to = p.resize_to if resize_to is None else _positive_int("resize_to", resize_to)
    norm = p.norm if norm is None else norm
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    dropout = p.dropout if dropout is None else float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a probability of dropping a unit: 0 <= dropout < 1, got {dropout}.")

    layers: list[Layer] = []
    if resize_to is not None and resize_to != image_size:
        layers.append(Resize("resize", resize_to))

    # Five convolutional blocks: conv -> [BatchNorm] -> ReLU -> [LRN] -> [max-pool]
    for i in range(5):
        block = i + 1
        layers.append(Conv(f"conv{block}", p.filters[i], p.kernels[i], p.strides[i],
                           p.paddings[i], p.groups[i], bias=(norm != "batch")))
        if norm == "batch":
            layers.append(BatchNorm(f"bn{block}"))
        layers.append(Activation(f"relu{block}"))
        if norm == "lrn" and block in (1, 2):
            layers.append(LRN(f"lrn{block}"))
        if block in p.pool_after:
            layers.append(MaxPool(f"pool{block}", *p.pool))
    if p.adaptive_pool is not None:
        layers.append(AdaptiveAvgPool("avgpool", p.adaptive_pool))
    layers.append(Flatten("flatten"))

    # Classifier: two hidden fully connected layers with dropout, then the class scores.
    for fc in (6, 7):
        if dropout and p.dropout_before_fc:
            layers.append(Dropout(f"dropout{fc}", dropout))
        layers.append(Dense(f"fc{fc}", p.hidden_units))
        layers.append(Activation(f"relu{fc}"))
        if dropout and not p.dropout_before_fc:
            layers.append(Dropout(f"dropout{fc}", dropout))
    layers.append(Dense("fc8", num_classes))

    input_shape = (image_size, image_size, in_channels)
    _check_fits(f"AlexNet(preset={p.name!r})", input_shape, layers,
                canonical_size=p.resize_to or p.image_size)
    return input_shape, layers


def describe_lenet5(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    activation: str = "tanh",
) -> tuple[tuple[int, int, int], list[Layer]]:
    """LeNet-5 (LeCun et al. 1998) for 28×28 images, as d2l builds it.

    conv1 pads by 2 so a 28×28 MNIST-style image becomes the 32×32 the 1998 paper used;
    pooling is 2×2 averaging ("subsampling"); ``activation`` is the squashing function
    (``"tanh"`` as in 1998, ``"sigmoid"`` as in d2l, or ``"relu"``).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
    layers: list[Layer] = [
        Conv("conv1", 6, 5, padding=2), Activation("act1", activation), AvgPool("pool1", 2, 2),
        Conv("conv2", 16, 5), Activation("act2", activation), AvgPool("pool2", 2, 2),
        Flatten("flatten"),
        Dense("fc1", 120), Activation("act3", activation),
        Dense("fc2", 84), Activation("act4", activation),
        Dense("fc3", num_classes),
    ]
    input_shape = (_positive_int("image_size", image_size),) * 2 + (_positive_int("in_channels", in_channels),)
    _check_fits("LeNet-5", input_shape, layers, canonical_size=28)
    return input_shape, layers


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------
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


def _check_fits(model: str, input_shape: tuple[int, int, int], layers: list[Layer], canonical_size: int) -> None:
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


def layer_table(preset: str | Preset = "classic", **kwargs) -> list[LayerRow]:
    """One :class:`LayerRow` per layer of ``alexnet(preset, **kwargs)``, computed without a framework.

    Takes the same keyword arguments as ``alexnet`` (``num_classes``, ``in_channels``,
    ``image_size``, ``norm``, ``dropout``, ``resize_to``). ``preset="lenet5"`` gives the
    table of LeNet-5 (keyword arguments of ``lenet5``).
    """
    if preset == "lenet5":
        input_shape, layers = describe_lenet5(**kwargs)
    else:
        input_shape, layers = describe_alexnet(preset, **kwargs)
    return compute_rows(input_shape, layers)


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


def with_overrides(layer: Layer, **changes) -> Layer:
    """A copy of a layer record with some fields changed (records are immutable)."""
    return replace(layer, **changes)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value
