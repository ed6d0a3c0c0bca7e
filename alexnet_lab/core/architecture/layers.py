"""The layer records: one small immutable record per layer, named as both frameworks name the layer.

Shapes are channels-last, ``(height, width, channels)``, as in the paper ("55×55×96").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "LRN", "BatchNorm", "Activation", "Dropout", "Flatten",
    "Dense", "Resize", "Layer", "ACTIVATIONS", "NORMS", "ImageSizeWarning", "with_overrides", "positive_int",
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
    """A fully connected layer. ``init``: ``"he_uniform"`` (weights; biases zero) or ``"zeros"`` (weights and biases).

    AlexNet's last layer (fc8) starts at zero: every class then gets the same score, so a fresh network
    predicts 1/C for each of the C classes and its first loss is exactly ln C (2.30 for 10 classes).
    With He-initialized class scores the first loss on standardized images is 3 to 15, and the first
    steps are spent undoing that (notebook 04 measures it). The gradients still reach every layer from
    the second step on: fc8's own gradient (features × errors) is not zero, only what it passes back is.
    """

    name: str
    units: int
    init: str = "he_uniform"


Layer = Resize | Conv | MaxPool | AvgPool | AdaptiveAvgPool | LRN | BatchNorm | Activation | Dropout | Flatten | Dense

ACTIVATIONS = ("relu", "tanh", "sigmoid")
NORMS = ("none", "lrn", "batch")


def with_overrides(layer: Layer, **changes) -> Layer:
    """A copy of a layer record with some fields changed (records are immutable)."""
    return replace(layer, **changes)


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value
