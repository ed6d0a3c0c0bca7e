"""Framework-free descriptions of AlexNet and LeNet-5, and the arithmetic behind them.

One description serves three readers:

* :mod:`alexnet_lab.keras.models` builds a Keras model from it,
* :mod:`alexnet_lab.torch.models` builds a PyTorch model from it,
* :func:`layer_table` computes, without any framework, every layer's output shape,
  parameter count, multiply-accumulates (MACs) and activation count.

A description is a list of small layer records (:class:`Conv`, :class:`MaxPool`, ...),
each with the name that both frameworks give to that layer. Shapes are written
channels-last, ``(height, width, channels)``, as in the paper ("55×55×96").

The canonical AlexNet reads layer by layer in :func:`describe_alexnet`; presets only
change numbers (channels, kernel sizes, groups, input size), never the structure.

The package has three modules, re-exported here (``from alexnet_lab.core import architecture as arch;
arch.layer_table("classic")``): :mod:`~alexnet_lab.core.architecture.layers` (the records),
:mod:`~alexnet_lab.core.architecture.presets` (the presets and the networks, layer by layer) and
:mod:`~alexnet_lab.core.architecture.arithmetic`.

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

from alexnet_lab.core.architecture.arithmetic import (
    LayerRow,
    check_fits,
    compare_tables,
    compute_rows,
    conv_output_size,
    format_table,
    min_image_size,
    totals,
)
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
    ImageSizeWarning,
    Layer,
    MaxPool,
    Resize,
    with_overrides,
)
from alexnet_lab.core.architecture.presets import (
    PRESETS,
    Preset,
    describe_alexnet,
    describe_lenet5,
    get_preset,
    layer_table,
    preset_names,
)

__all__ = [
    "Conv", "MaxPool", "AvgPool", "AdaptiveAvgPool", "LRN", "BatchNorm", "Activation",
    "Dropout", "Flatten", "Dense", "Resize", "Layer", "ACTIVATIONS", "NORMS", "with_overrides",
    "Preset", "PRESETS", "preset_names", "get_preset", "describe_alexnet", "describe_lenet5",
    "LayerRow", "compute_rows", "check_fits", "layer_table", "totals", "conv_output_size", "min_image_size",
    "format_table", "compare_tables", "ImageSizeWarning",
]
