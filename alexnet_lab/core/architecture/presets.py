"""The AlexNet presets (the numbers that differ between the AlexNets people mean), and the canonical
AlexNet and LeNet-5, layer by layer: :func:`describe_alexnet` is the network; presets only change numbers
(channels, kernel sizes, groups, input size), never the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

from alexnet_lab.core.architecture.arithmetic import LayerRow, check_fits, compute_rows
from alexnet_lab.core.architecture.layers import (
    ACTIVATIONS,
    LRN,
    NORMS,
    Activation,
    AdaptiveAvgPool,
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool,
    Resize,
    positive_int,
)

__all__ = ["Preset", "PRESETS", "preset_names", "get_preset", "describe_alexnet", "describe_lenet5", "layer_table"]


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
        Preset(
            name="compact",
            summary="AlexNet's shape at laptop size for 32×32 (or 28×28) images: 96-56-84-84-56, 496-unit head, "
                    "no dropout",
            image_size=32, in_channels=3, num_classes=10,
            filters=(96, 56, 84, 84, 56), kernels=(5, 5, 3, 3, 3),
            strides=(1, 1, 1, 1, 1), paddings=(0, 2, 1, 1, 1),
            hidden_units=496, dropout=0.0, reference_params=653_234,
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
    width: float = 1.0,
) -> tuple[tuple[int, int, int], list[Layer]]:
    """Return ``(input_shape, layers)`` for AlexNet with the given preset and overrides.

    Arguments left as ``None`` take the preset's value. ``norm`` is ``"none"``,
    ``"lrn"`` (the paper's Local Response Normalization after the ReLU of conv1 and
    conv2, before pooling) or ``"batch"`` (BatchNorm in every conv block, between the
    convolution and its ReLU as in Ioffe & Szegedy 2015; the convolution then has no
    bias, since BatchNorm's shift replaces it). ``resize_to`` resizes the input inside
    the model (bilinear) before conv1, so a small data set is never stored resized.
    ``width`` scales every layer's channels and the hidden units (rounded, at least 1): 0.5 is the
    "half-width" network, about 3 times cheaper per image than the preset's.
    """
    p = get_preset(preset)
    num_classes = p.num_classes if num_classes is None else positive_int("num_classes", num_classes)
    in_channels = p.in_channels if in_channels is None else positive_int("in_channels", in_channels)
    image_size = p.image_size if image_size is None else positive_int("image_size", image_size)
    resize_to = p.resize_to if resize_to is None else positive_int("resize_to", resize_to)
    norm = p.norm if norm is None else norm
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    dropout = p.dropout if dropout is None else float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a probability of dropping a unit: 0 <= dropout < 1, got {dropout}.")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0.0 < width <= 4.0:
        raise ValueError(f"width scales the channels and hidden units: a number in (0, 4], e.g. 0.5 for half "
                         f"width. Received: width={width!r}.")
    filters = [max(1, round(f * width)) for f in p.filters]
    hidden_units = max(1, round(p.hidden_units * width))
    if p.groups != (1, 1, 1, 1, 1) and any(f % 2 for f in filters):
        raise ValueError(f"The {p.name!r} preset splits conv2, conv4 and conv5 into 2 groups, so their filters "
                         f"must stay even; width={width} gives {filters}. Choose a width that keeps them even.")

    layers: list[Layer] = []
    if resize_to is not None and resize_to != image_size:
        layers.append(Resize("resize", resize_to))

    # Five convolutional blocks: conv -> [BatchNorm] -> ReLU -> [LRN] -> [max-pool]
    for i in range(5):
        block = i + 1
        layers.append(Conv(f"conv{block}", filters[i], p.kernels[i], p.strides[i],
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
        layers.append(Dense(f"fc{fc}", hidden_units))
        layers.append(Activation(f"relu{fc}"))
        if dropout and not p.dropout_before_fc:
            layers.append(Dropout(f"dropout{fc}", dropout))
    layers.append(Dense("fc8", num_classes, init="zeros"))  # first loss exactly ln(num_classes): see Dense

    input_shape = (image_size, image_size, in_channels)
    check_fits(f"AlexNet(preset={p.name!r})", input_shape, layers,
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
    input_shape = (positive_int("image_size", image_size),) * 2 + (positive_int("in_channels", in_channels),)
    check_fits("LeNet-5", input_shape, layers, canonical_size=28)
    return input_shape, layers


def layer_table(preset: str | Preset = "classic", **kwargs) -> list[LayerRow]:
    """One :class:`LayerRow` per layer of ``alexnet(preset, **kwargs)``, computed without a framework.

    Takes the same keyword arguments as ``alexnet`` (``num_classes``, ``in_channels``,
    ``image_size``, ``norm``, ``dropout``, ``resize_to``, ``width``). ``preset="lenet5"`` gives the
    table of LeNet-5 (keyword arguments of ``lenet5``).
    """
    if preset == "lenet5":
        input_shape, layers = describe_lenet5(**kwargs)
    else:
        input_shape, layers = describe_alexnet(preset, **kwargs)
    return compute_rows(input_shape, layers)
