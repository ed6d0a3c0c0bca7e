"""What a convolutional network learned and sees: its first layer's filters and its feature maps.

* :func:`conv1_weights` returns a model's first-layer filters as numpy ``(kh, kw, in, out)``;
  :func:`filter_mosaic` lays them out as one image and :func:`plot_filters` draws it, like
  Figure 3 of Krizhevsky et al. (2012);
* :func:`feature_maps` returns a layer's output for one image as numpy ``(H, W, C)``;
  :func:`plot_feature_maps` draws its channels.

:func:`conv1_weights` and :func:`feature_maps` take a Keras model or a PyTorch module and import
its framework only when they run; the rest works on numpy arrays. Every plotting function returns
a matplotlib ``Figure`` (see :mod:`alexnet_lab.teaching.plots`).
"""

from __future__ import annotations

import math

import numpy as np

from alexnet_lab.frameworks import evaluating, framework_of
from alexnet_lab.teaching.plots import image_grid, new_figure

__all__ = ["filter_mosaic", "plot_filters", "conv1_weights", "feature_maps", "plot_feature_maps"]


def filter_mosaic(weights, cols: int = 16, pad: int = 1) -> np.ndarray:
    """First-layer filters ``(kh, kw, in, out)`` laid out as one image, each filter scaled to 0-1 on its own.

    Returns ``(rows * (kh + pad) + pad, cols * (kw + pad) + pad, in)`` with white ``pad``-pixel
    lines between filters. ``in`` must be 1 (grayscale) or 3 (colour).
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"Expected filters of shape (kh, kw, in, out) (Keras' layout), got shape {w.shape}. "
                         "For a model, use conv1_weights(model).")
    kh, kw, cin, cout = w.shape
    if cin not in (1, 3):
        raise ValueError(f"Filters with {cin} input channels cannot be shown as images: plot_filters draws the "
                         "first layer (1 or 3 input channels). Is this a deeper layer, or a PyTorch "
                         "(out, in, kh, kw) tensor? conv1_weights(model) gives the right layout.")
    cols = max(1, min(cols, cout))
    rows = math.ceil(cout / cols)
    mosaic = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, cin), dtype=np.float32)
    for f in range(cout):
        kernel = w[..., f]
        low, high = kernel.min(), kernel.max()
        kernel = (kernel - low) / (high - low) if high > low else np.full_like(kernel, 0.5)
        r, c = divmod(f, cols)
        top, left = pad + r * (kh + pad), pad + c * (kw + pad)
        mosaic[top:top + kh, left:left + kw] = kernel
    return mosaic


def plot_filters(weights, cols: int = 16, title: str | None = None):
    """The first layer's filters as a colour mosaic, like Figure 3 of Krizhevsky et al. (2012).

    ``weights``: numpy ``(kh, kw, in, out)``, e.g. ``conv1_weights(model)``. Each filter is
    scaled to 0-1 on its own, so the picture shows patterns, not sizes; 1-channel filters are grey.
    """
    mosaic = filter_mosaic(weights, cols)
    kh, kw, cin, cout = np.shape(weights)
    height, width = mosaic.shape[:2]
    scale = min(0.06, 9.0 / width)  # inches per mosaic pixel: at most 9 inches wide
    fig, grid = new_figure(figsize=(max(3.0, width * scale), max(1.5, height * scale + 0.5)))
    ax = grid[0, 0]
    if cin == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"{cout} filters of {kh}×{kw}×{cin}", fontsize=10)
    fig.tight_layout()
    return fig


def _torch_conv_layers(model):
    from torch import nn
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _keras_conv_layers(model):
    import keras
    return [(layer.name, layer) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def conv1_weights(model, layer_name: str | None = None) -> np.ndarray:
    """The filters of a model's first convolution (or of ``layer_name``) as numpy ``(kh, kw, in, out)``.

    Works for Keras models (whose kernels already have this layout) and PyTorch models (whose
    ``(out, in, kh, kw)`` weights are transposed). With groups, ``in`` is the channels each
    filter sees (``in_channels / groups``).
    """
    framework = framework_of(model)
    convs = _torch_conv_layers(model) if framework == "torch" else _keras_conv_layers(model)
    if not convs:
        raise ValueError(f"The {framework} model has no 2-D convolution layer.")
    if layer_name is None:
        _, layer = convs[0]
    else:
        found = dict(convs)
        if layer_name not in found:
            raise ValueError(f"No convolution named {layer_name!r}; the model's convolutions are: "
                             f"{', '.join(found)}.")
        layer = found[layer_name]
    if framework == "torch":
        return layer.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)
    import keras
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel))


def feature_maps(model, image, layer_name: str) -> np.ndarray:
    """The output of layer ``layer_name`` for one image, as numpy ``(H, W, C)`` (``(units,)`` for dense layers).

    ``image``: one channels-last float image ``(H, W, C)`` exactly as the model receives it
    (after your preprocessing), or a batch of one. For a PyTorch model it is transposed to
    ``(1, C, H, W)`` here. The model runs in inference mode (no dropout, BatchNorm's running
    statistics) and is left as it was.
    """
    x = np.asarray(image)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"feature_maps takes one image (H, W, C) or a batch of one, got shape {np.shape(image)}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"feature_maps needs the image as the model sees it: floats after your preprocessing "
                         f"(e.g. image / 255.0), got {x.dtype}.")
    x = x.astype(np.float32)[None]
    if framework_of(model) == "torch":
        return _torch_feature_maps(model, x, layer_name)
    return _keras_feature_maps(model, x, layer_name)


def _torch_feature_maps(model, x: np.ndarray, layer_name: str) -> np.ndarray:
    import torch

    modules = dict(model.named_modules())
    if layer_name not in modules or layer_name == "":
        raise ValueError(f"The model has no layer {layer_name!r}; its layers are: "
                         f"{', '.join(n for n in modules if n)}.")
    captured = {}

    def hook(module, inputs, output):
        captured["out"] = output.detach()

    handle = modules[layer_name].register_forward_hook(hook)
    device = next(model.parameters()).device
    try:
        with evaluating(model), torch.no_grad():
            model(torch.from_numpy(x).permute(0, 3, 1, 2).to(device))
    finally:
        handle.remove()
    out = captured["out"][0].cpu().numpy()
    return out.transpose(1, 2, 0) if out.ndim == 3 else out


def _keras_feature_maps(model, x: np.ndarray, layer_name: str) -> np.ndarray:
    import keras

    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"The model has no layer {layer_name!r}; its layers are: {', '.join(names)}.")
    sub_model = keras.Model(model.inputs[0], model.get_layer(layer_name).output)
    out = sub_model(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(out))[0]


def plot_feature_maps(activations, n: int = 32, cols: int = 8, title: str | None = None):
    """The first ``n`` channels of one image's feature maps ``(H, W, C)``, one small picture per channel.

    Each channel is scaled on its own (bright: strong activation); a channel that is zero
    everywhere (a 'dead' ReLU for this image) is marked.
    """
    a = np.asarray(activations, dtype=np.float32)
    if a.ndim != 3:
        raise ValueError(f"plot_feature_maps takes one image's activations (H, W, C), got shape {a.shape}"
                         + (": a fully connected layer has no maps to show." if a.ndim == 1 else "."))
    n = min(n, a.shape[-1])
    fig, axes = image_grid(n, cols, cell=1.3)
    for c, ax in enumerate(axes):
        channel = a[..., c]
        ax.imshow(channel, cmap="viridis", interpolation="nearest")
        dead = not np.any(channel)
        ax.set_title(f"{c}" + (" (all 0)" if dead else ""), fontsize=7)
    h, w, total = a.shape
    fig.suptitle(title or f"{n} of {total} feature maps, {h}×{w} each", fontsize=10)
    fig.tight_layout()
    return fig
