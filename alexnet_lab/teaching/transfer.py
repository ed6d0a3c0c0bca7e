"""Copy weights between the Keras and the PyTorch model of the same configuration.

After ``torch_to_keras(torch_model, keras_model)`` (or the reverse), both models compute the
same function: the same logits, to float32 rounding, on the same images (fed NHWC to Keras
and NCHW to PyTorch). Three layouts differ between the frameworks:

==================  ==================================  =================================
weights             PyTorch                             Keras
==================  ==================================  =================================
convolution kernel  ``(out, in / groups, kh, kw)``      ``(kh, kw, in / groups, out)``
dense kernel        ``(out, in)``                       ``(in, out)``
flattened features  channels first: ``c, h, w``         channels last: ``h, w, c``
==================  ==================================  =================================

The last row matters for the first fully connected layer after ``Flatten``: its input
features come in a different order, so its columns are permuted, not just transposed.
BatchNorm's ``weight, bias, running_mean, running_var`` are Keras' ``gamma, beta,
moving_mean, moving_variance``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["torch_to_keras", "keras_to_torch"]


def _pairs(torch_model, keras_model):
    """Yield ``(name, torch_module, keras_layer, spatial)`` for every layer that holds weights.

    ``spatial`` is the ``(h, w, c)`` feature-map shape flattened just before a dense layer, or None.
    """
    from torch import nn

    keras_layers = {layer.name: layer for layer in keras_model.layers}
    spatial = None
    for name, module in torch_model.named_children():
        if isinstance(module, nn.Flatten):
            shape = tuple(keras_layers[name].input.shape[1:]) if name in keras_layers else ()
            spatial = shape if len(shape) == 3 else None
            continue
        if not isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            continue
        if name not in keras_layers:
            raise ValueError(
                f"The Keras model {keras_model.name!r} has no layer named {name!r}, which the PyTorch model has. "
                "Build both models with the same function and arguments, e.g. keras_models.alexnet('paper') "
                "and torch_models.alexnet('paper')."
            )
        yield name, module, keras_layers[name], (spatial if isinstance(module, nn.Linear) else None)
        if isinstance(module, nn.Linear):
            spatial = None


def _dense_to_keras(weight: np.ndarray, spatial) -> np.ndarray:
    """PyTorch ``(out, in)`` -> Keras ``(in, out)``, reordering flattened features from (c, h, w) to (h, w, c)."""
    if spatial is not None:
        h, w, c = spatial
        weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return weight.T


def _dense_to_torch(kernel: np.ndarray, spatial) -> np.ndarray:
    """Keras ``(in, out)`` -> PyTorch ``(out, in)``, reordering flattened features from (h, w, c) to (c, h, w)."""
    weight = kernel.T
    if spatial is not None:
        h, w, c = spatial
        weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
    return weight


def _check_shapes(name, target_shapes, new_shapes):
    if len(target_shapes) != len(new_shapes) or any(tuple(a) != tuple(b) for a, b in zip(target_shapes, new_shapes)):
        raise ValueError(
            f"Layer {name!r}: the source has weights of shapes {[tuple(s) for s in new_shapes]} (after conversion) "
            f"but the target expects {[tuple(s) for s in target_shapes]}. The two models differ (channels, groups, "
            "bias, image size or number of classes); build both with the same preset and arguments."
        )


def _check_same_layers(torch_model, keras_model) -> None:
    """Both models must have the same layers with weights; checked before anything is copied."""
    from torch import nn

    torch_names = {n for n, m in torch_model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))}
    keras_names = {layer.name for layer in keras_model.layers if layer.weights}
    if torch_names != keras_names:
        raise ValueError(
            f"The models have different layers with weights: only in PyTorch: {sorted(torch_names - keras_names)}, "
            f"only in Keras: {sorted(keras_names - torch_names)}. Build both with the same function and arguments, "
            "e.g. keras_models.alexnet('paper') and torch_models.alexnet('paper')."
        )


def torch_to_keras(torch_model, keras_model) -> None:
    """Copy every weight of ``torch_model`` into ``keras_model`` (built with the same preset and arguments).

    All shapes are checked before the first weight is copied, so a mismatch leaves ``keras_model`` unchanged.
    """
    import torch
    from torch import nn

    _check_same_layers(torch_model, keras_model)
    plan = []
    with torch.no_grad():
        for name, module, layer, spatial in _pairs(torch_model, keras_model):
            if isinstance(module, nn.Conv2d):
                weights = [module.weight.numpy().transpose(2, 3, 1, 0)]
                if module.bias is not None:
                    weights.append(module.bias.numpy())
            elif isinstance(module, nn.Linear):
                weights = [_dense_to_keras(module.weight.numpy(), spatial), module.bias.numpy()]
            else:  # BatchNorm2d
                weights = [t.numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)]
            _check_shapes(name, [w.shape for w in layer.get_weights()], [w.shape for w in weights])
            plan.append((layer, weights))
    for layer, weights in plan:
        layer.set_weights(weights)


def keras_to_torch(keras_model, torch_model) -> None:
    """Copy every weight of ``keras_model`` into ``torch_model`` (built with the same preset and arguments).

    All shapes are checked before the first weight is copied, so a mismatch leaves ``torch_model`` unchanged.
    """
    import torch
    from torch import nn

    _check_same_layers(torch_model, keras_model)
    plan = []
    for name, module, layer, spatial in _pairs(torch_model, keras_model):
        weights = layer.get_weights()
        if isinstance(module, nn.Conv2d):
            tensors = [module.weight] + ([module.bias] if module.bias is not None else [])
            values = [weights[0].transpose(3, 2, 0, 1)] + weights[1:]
        elif isinstance(module, nn.Linear):
            tensors = [module.weight, module.bias]
            values = [_dense_to_torch(weights[0], spatial)] + weights[1:]
        else:  # BatchNorm2d
            tensors = [module.weight, module.bias, module.running_mean, module.running_var]
            values = weights
        _check_shapes(name, [t.shape for t in tensors], [v.shape for v in values])
        plan.extend(zip(tensors, values))
    with torch.no_grad():
        for tensor, value in plan:
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
