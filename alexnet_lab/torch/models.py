"""AlexNet and LeNet-5 in PyTorch, built from the framework-free descriptions.

Read this file beside :mod:`alexnet_lab.keras.models`: the public functions, their
arguments, the layer names and their order are the same. What differs is what the
frameworks differ in:

* PyTorch works channels-first: images are ``(batch, channels, height, width)``.
* ``nn.Conv2d`` and ``nn.Linear`` need their input size, which the framework-free
  arithmetic provides (Keras infers it when the model is built).
* ``nn.LocalResponseNorm`` divides ``alpha`` by ``size``; the paper does not, so the
  paper's ``alpha=1e-4`` becomes ``alpha=5e-4`` here.

Example::

    from alexnet_lab.torch import models as torch_models
    model = torch_models.alexnet("classic", num_classes=10)
    print(model)
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from alexnet_lab.core import architecture as arch

__all__ = ["alexnet", "lenet5", "build", "CheckedSequential"]


class CheckedSequential(nn.Sequential):
    """An ``nn.Sequential`` of named layers that says clearly when it is fed images of the wrong shape."""

    def __init__(self, layers: OrderedDict, input_shape: tuple[int, int, int], name: str):
        super().__init__(layers)
        self.input_shape = input_shape  # (channels, height, width)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.input_shape
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
            hint = ""
            if x.dim() == 4 and x.shape[-1] == c and x.shape[1] != c:
                hint = "Your images look channels-last: use x.permute(0, 3, 1, 2). "
            elif x.dim() == 3:
                hint = "Add a batch dimension with x.unsqueeze(0). "
            if not hint:
                hint = (f"Resize them to {h}×{w} with {c} channel(s), or build the model with "
                        f"image_size={x.shape[-1]} and in_channels={x.shape[1] if x.dim() == 4 else '?'}.")
            raise ValueError(
                f"Model {self.name!r} expects images of shape (batch, {c}, {h}, {w}) (channels-first), "
                f"got {tuple(x.shape)}. {hint}"
            )
        return super().forward(x)

    def __getitem__(self, idx):
        """``model[k]`` is a layer; ``model[:k]`` the first k layers, still checking the input (for feature maps)."""
        if isinstance(idx, slice):
            layers = OrderedDict(list(self._modules.items())[idx])
            if idx.start in (None, 0) and idx.step in (None, 1):
                return CheckedSequential(layers, self.input_shape, f"{self.name}[:{idx.stop}]")
            return nn.Sequential(layers)  # starts inside the network: its input is a feature map, not an image
        return super().__getitem__(idx)


def _layer(spec: arch.Layer, in_shape: tuple[int, ...]) -> nn.Module:
    """The PyTorch module for one framework-free layer record; ``in_shape`` is its input (H, W, C) or (features,)."""
    if isinstance(spec, arch.Resize):
        return nn.Upsample(size=(spec.size, spec.size), mode="bilinear", align_corners=False)
    if isinstance(spec, arch.Conv):
        conv = nn.Conv2d(in_shape[-1], spec.filters, spec.kernel, stride=spec.stride, padding=spec.padding,
                         groups=spec.groups, bias=spec.bias)
        _he_uniform(conv)
        return conv
    if isinstance(spec, arch.BatchNorm):
        return nn.BatchNorm2d(in_shape[-1], eps=spec.epsilon, momentum=spec.momentum)
    if isinstance(spec, arch.Activation):
        return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[spec.function]()
    if isinstance(spec, arch.LRN):
        return nn.LocalResponseNorm(spec.size, alpha=spec.alpha * spec.size, beta=spec.beta, k=spec.k)
    if isinstance(spec, arch.MaxPool):
        return nn.MaxPool2d(spec.size, stride=spec.stride)
    if isinstance(spec, arch.AvgPool):
        return nn.AvgPool2d(spec.size, stride=spec.stride)
    if isinstance(spec, arch.AdaptiveAvgPool):
        return nn.AdaptiveAvgPool2d((spec.output, spec.output))
    if isinstance(spec, arch.Flatten):
        return nn.Flatten()
    if isinstance(spec, arch.Dropout):
        return nn.Dropout(spec.rate)
    if isinstance(spec, arch.Dense):
        linear = nn.Linear(in_shape[0], spec.units)
        if spec.init == "zeros":
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        else:
            _he_uniform(linear)
        return linear
    raise TypeError(f"No PyTorch module for {spec!r}")


def _he_uniform(module: nn.Conv2d | nn.Linear) -> None:
    """He-uniform weights and zero biases: the same initialization as the Keras models use."""
    nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def build(input_shape: tuple[int, int, int], specs: list[arch.Layer], name: str) -> CheckedSequential:
    """Build a PyTorch model from a framework-free description (see :mod:`alexnet_lab.core.architecture`)."""
    rows = arch.compute_rows(input_shape, specs)
    in_shapes = [input_shape] + [r.output_shape for r in rows[:-1]]
    modules = OrderedDict((spec.name, _layer(spec, shape)) for spec, shape in zip(specs, in_shapes))
    h, w, c = input_shape
    return CheckedSequential(modules, (c, h, w), name)


def alexnet(
    preset: str = "classic",
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | None = None,
    norm: str | None = None,
    dropout: float | None = None,
    resize_to: int | None = None,
    width: float = 1.0,
) -> CheckedSequential:
    """AlexNet as a PyTorch module: ``(batch, in_channels, image_size, image_size)`` images in, logits out.

    Args:
        preset: one of :func:`alexnet_lab.core.architecture.preset_names` (``"classic"``,
            ``"paper"``, ``"torchvision"``, ``"cifar10"``, ``"fashion_mnist"``, ``"compact"``).
        num_classes: size of the last layer; default: the preset's (1000 or 10).
        in_channels: 3 for RGB, 1 for grayscale; default: the preset's.
        image_size: height and width of the input images; default: the preset's.
        norm: ``"none"``, ``"lrn"`` (the paper's) or ``"batch"`` (BatchNorm before each
            conv block's ReLU); default: the preset's.
        dropout: dropout probability in the two hidden fully connected layers (0 removes
            them); default: the preset's (0.5; none in ``"compact"``).
        resize_to: resize images inside the model to this size before conv1.
        width: scales every layer's channels and the hidden units (0.5: half width, about
            3 times cheaper per image); default 1, the preset's sizes.

    The model returns logits (no softmax): pair it with ``nn.CrossEntropyLoss``, which
    applies log-softmax itself.
    """
    p = arch.get_preset(preset)
    input_shape, specs = arch.describe_alexnet(p, num_classes=num_classes, in_channels=in_channels,
                                               image_size=image_size, norm=norm, dropout=dropout,
                                               resize_to=resize_to, width=width)
    return build(input_shape, specs, name=f"alexnet_{p.name}")


def lenet5(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
           activation: str = "tanh") -> CheckedSequential:
    """LeNet-5 as a PyTorch module for ``(batch, 1, 28, 28)`` images.

    See :func:`alexnet_lab.core.architecture.describe_lenet5`.
    """
    input_shape, specs = arch.describe_lenet5(num_classes=num_classes, in_channels=in_channels,
                                              image_size=image_size, activation=activation)
    return build(input_shape, specs, name="lenet5")
