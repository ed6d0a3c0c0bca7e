"""AlexNet and LeNet-5 in Keras 3, built from the framework-free descriptions.

Read this file beside :mod:`alexnet_lab.torch.models`: the public functions, their
arguments, the layer names and their order are the same. What differs is what the
frameworks differ in:

* Keras works channels-last: images are ``(batch, height, width, channels)``.
* ``Conv2D`` only knows ``padding="valid"`` or ``"same"``. Where the description asks
  for a padding that ``"same"`` does not give (torchvision's conv1: 11×11, stride 4,
  padding 2), a ``ZeroPadding2D`` layer named ``<conv>_pad`` comes first.
* Keras has no Local Response Normalization layer; :class:`LocalResponseNormalization`
  below implements the paper's formula.
* BatchNorm's momentum is the weight of the *old* statistic (0.9) where PyTorch's is the
  weight of the *new* one (0.1); epsilon is set to PyTorch's 1e-5 so both compute the same.

Example::

    from alexnet_lab.keras import models as keras_models
    model = keras_models.alexnet("classic", num_classes=10)
    model.summary()
"""

from __future__ import annotations

import keras
from keras import layers as L
from keras import ops

from alexnet_lab.core import architecture as arch

__all__ = ["alexnet", "lenet5", "build", "LocalResponseNormalization", "CheckedSequential"]


@keras.saving.register_keras_serializable(package="alexnet_lab")
class LocalResponseNormalization(L.Layer):
    """Local Response Normalization across channels, as in Krizhevsky et al. (2012), section 3.3.

    ``b[c] = a[c] / (k + alpha * sum(a[j] ** 2 for j in the size channels around c)) ** beta``

    with the paper's constants ``size=5, alpha=1e-4, beta=0.75, k=2`` as defaults. The
    window is clipped at the first and last channel. Same result as
    ``tf.nn.local_response_normalization(x, depth_radius=size // 2, bias=k, alpha=alpha, beta=beta)``
    and as PyTorch's ``nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)``:
    PyTorch divides its ``alpha`` by ``size``, TensorFlow and the paper do not.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number of channels, got {size}.")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, inputs):
        squared = ops.square(inputs)
        half = self.size // 2
        # Zero channels on both sides, then add up the `size` shifted copies: a sliding sum over channels.
        padded = ops.pad(squared, [[0, 0], [0, 0], [0, 0], [half, half]])
        channels = ops.shape(inputs)[-1]
        window_sum = sum(padded[..., i:i + channels] for i in range(self.size))
        return inputs / ops.power(self.k + self.alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


@keras.saving.register_keras_serializable(package="alexnet_lab")
class CheckedSequential(keras.Sequential):
    """A ``keras.Sequential`` that says clearly when it is fed images of the wrong shape."""

    def call(self, inputs, training=None, mask=None):
        expected = tuple(self.inputs[0].shape[1:])
        got = tuple(inputs.shape[1:])
        if len(got) != len(expected) or any(e is not None and g is not None and e != g for e, g in zip(expected, got)):
            h, w, c = expected
            raise ValueError(
                f"Model {self.name!r} expects images of shape (batch, {h}, {w}, {c}) (channels-last), "
                f"got {(None, *got)}. "
                + ("Your images look channels-first: transpose them with np.transpose(x, (0, 2, 3, 1))."
                   if len(got) == 3 and got[0] == c and got[-1] != c else
                   f"Resize them to {h}×{w} with {c} channel(s), or build the model with "
                   f"image_size={got[0] if got else '?'} and in_channels={got[-1] if got else '?'}.")
            )
        return super().call(inputs, training=training, mask=mask)


def _conv(spec: arch.Conv) -> list[L.Layer]:
    """A convolution, with explicit zero-padding where ``"same"`` would not give the described padding."""
    same = spec.stride == 1 and spec.kernel % 2 == 1 and spec.padding == spec.kernel // 2
    out = []
    if spec.padding and not same:
        out.append(L.ZeroPadding2D(spec.padding, name=f"{spec.name}_pad"))
    out.append(L.Conv2D(spec.filters, spec.kernel, strides=spec.stride, padding="same" if same else "valid",
                        groups=spec.groups, use_bias=spec.bias, kernel_initializer="he_uniform",
                        name=spec.name))
    return out


def _kernel_init(spec: arch.Dense) -> str:
    """Keras' name for the record's initialization (biases start at zero in Keras either way)."""
    return "zeros" if spec.init == "zeros" else "he_uniform"


def _layer(spec: arch.Layer) -> list[L.Layer]:
    """The Keras layer(s) for one framework-free layer record."""
    if isinstance(spec, arch.Resize):
        return [L.Resizing(spec.size, spec.size, interpolation="bilinear", name=spec.name)]
    if isinstance(spec, arch.Conv):
        return _conv(spec)
    if isinstance(spec, arch.BatchNorm):
        return [L.BatchNormalization(epsilon=spec.epsilon, momentum=1.0 - spec.momentum, name=spec.name)]
    if isinstance(spec, arch.Activation):
        return [L.Activation(spec.function, name=spec.name)]
    if isinstance(spec, arch.LRN):
        return [LocalResponseNormalization(spec.size, spec.alpha, spec.beta, spec.k, name=spec.name)]
    if isinstance(spec, arch.MaxPool):
        return [L.MaxPooling2D(spec.size, strides=spec.stride, name=spec.name)]
    if isinstance(spec, arch.AvgPool):
        return [L.AveragePooling2D(spec.size, strides=spec.stride, name=spec.name)]
    if isinstance(spec, arch.AdaptiveAvgPool):
        return [L.AdaptiveAveragePooling2D(spec.output, name=spec.name)]
    if isinstance(spec, arch.Flatten):
        return [L.Flatten(name=spec.name)]
    if isinstance(spec, arch.Dropout):
        return [L.Dropout(spec.rate, name=spec.name)]
    if isinstance(spec, arch.Dense):
        return [L.Dense(spec.units, kernel_initializer=_kernel_init(spec), name=spec.name)]
    raise TypeError(f"No Keras layer for {spec!r}")


def build(input_shape: tuple[int, int, int], specs: list[arch.Layer], name: str) -> CheckedSequential:
    """Build a Keras model from a framework-free description (see :mod:`alexnet_lab.core.architecture`)."""
    model_layers = [keras.Input(shape=input_shape, name="images")]
    for spec in specs:
        model_layers.extend(_layer(spec))
    # Under mixed precision the class scores stay float32, so the softmax and loss are computed accurately.
    if keras.mixed_precision.global_policy().compute_dtype != "float32":
        last = model_layers[-1]
        model_layers[-1] = L.Dense(last.units, kernel_initializer=last.kernel_initializer, dtype="float32",
                                   name=last.name)
    return CheckedSequential(model_layers, name=name)


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
    """AlexNet as a Keras model that takes ``(batch, image_size, image_size, in_channels)`` images and returns logits.

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

    The model returns logits (no softmax): pair it with a loss that takes logits,
    e.g. ``SparseCategoricalCrossentropy(from_logits=True)``.
    """
    p = arch.get_preset(preset)
    input_shape, specs = arch.describe_alexnet(p, num_classes=num_classes, in_channels=in_channels,
                                               image_size=image_size, norm=norm, dropout=dropout,
                                               resize_to=resize_to, width=width)
    return build(input_shape, specs, name=f"alexnet_{p.name}")


def lenet5(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
           activation: str = "tanh") -> CheckedSequential:
    """LeNet-5 as a Keras model for ``(batch, 28, 28, 1)`` images.

    See :func:`alexnet_lab.core.architecture.describe_lenet5`.
    """
    input_shape, specs = arch.describe_lenet5(num_classes=num_classes, in_channels=in_channels,
                                              image_size=image_size, activation=activation)
    return build(input_shape, specs, name="lenet5")
