"""What layers a Keras model or a PyTorch module really has: :func:`trace_model`.

One random image goes through the model and every layer it passes is recorded as an
:class:`ObservedLayer`: its kind (in the names of :mod:`alexnet_lab.core.architecture`), input
and output shape, parameter count and settings. Keras models are run layer by layer; PyTorch
modules are run whole with hooks, and what ``forward`` does between two modules (``F.relu``,
``F.max_pool2d``, ``x.view``) is recognised from the tensors. A forward pass that fails is
recorded, not raised, so that :mod:`~alexnet_lab.grading.checks.comparison` can say where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alexnet_lab.core import architecture as arch
from alexnet_lab.frameworks import evaluating, framework_of
from alexnet_lab.grading.checks.results import format_shape, to_numpy

__all__ = ["ObservedLayer", "Trace", "trace_model", "keras_layers"]


@dataclass
class ObservedLayer:
    """One layer of a student's model as the tracer saw it.

    ``kind`` uses the names of :mod:`alexnet_lab.core.architecture`'s records ("Conv", "MaxPool",
    "Activation", "Dropout", "Dense", ...), plus "Padding" and "Unknown". Shapes are per image,
    channels-last like the reference: ``(H, W, C)`` or ``(features,)``.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int = 0
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trace:
    """The layers seen in one forward pass, the input shape used, and what went wrong, if anything."""

    framework: str
    input_shape: tuple[int, int, int]
    declared_input: tuple[int, ...] | None
    layers: list[ObservedLayer]
    crash: str | None = None          # the error of a forward pass that failed
    notes: list[str] = field(default_factory=list)


_ACTIVATION_NAMES = {
    "relu": "relu", "re_lu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softmax": "softmax",
    "log_softmax": "log_softmax", "logsoftmax": "log_softmax", "leaky_relu": "leaky_relu",
    "leakyrelu": "leaky_relu", "elu": "elu", "gelu": "gelu", "selu": "selu", "silu": "silu",
    "swish": "silu", "relu6": "relu6", "softplus": "softplus", "hardtanh": "hardtanh",
    "linear": "linear", "identity": "linear",
}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (0, 0)
    return (int(value), int(value))


def trace_model(model, input_shape: tuple[int, int, int]) -> Trace:
    """Run one random image of ``input_shape`` (H, W, C) through ``model`` and record every layer.

    Keras models are run layer by layer (``model.layers`` in order; nested models are opened);
    PyTorch modules are run whole, with hooks on every leaf module, so that layers written as
    functions in ``forward`` (``F.relu``, ``torch.flatten``, ``x.view``) are recognised from what
    they do to the tensor. PyTorch modules run in evaluation mode and are put back as they were.
    """
    framework = framework_of(model)
    if framework == "keras":
        return _trace_keras(model, input_shape)
    return _trace_torch(model, input_shape)


def _merge_padding(layers: list[ObservedLayer]) -> list[ObservedLayer]:
    """Fold explicit zero-padding layers into the convolution or pooling that follows them."""
    merged: list[ObservedLayer] = []
    pending: ObservedLayer | None = None
    for layer in layers:
        if layer.kind == "Padding":
            if pending is not None:
                merged.append(pending)
            pending = layer
            continue
        if pending is not None:
            if layer.kind in ("Conv", "MaxPool", "AvgPool"):
                own = layer.config.get("padding", (0, 0))
                if own == "same":
                    layer.config["padding"] = "same"
                else:
                    extra = pending.config["padding"]
                    layer.config["padding"] = (own[0] + extra[0], own[1] + extra[1])
                layer.config["explicit_padding"] = pending.name
                layer.input_shape = pending.input_shape
            else:
                merged.append(pending)
            pending = None
        merged.append(layer)
    if pending is not None:
        merged.append(pending)
    return merged


# ---------------------------------------------------------------------------------------------
# Keras: layer by layer
# ---------------------------------------------------------------------------------------------
def keras_layers(model) -> list:
    """The layers of a Keras model in order, with nested models (blocks) opened up (no ``InputLayer``)."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(keras_layers(layer))
        else:
            out.append(layer)
    return out


def _keras_activation_name(fn) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return _ACTIVATION_NAMES.get(name.lower(), name.lower())


def _keras_observed(layer, in_shape, out_shape) -> list[ObservedLayer]:
    """The observed layer(s) for one Keras layer; a layer with ``activation=`` gives two."""
    from keras import layers as L

    name, cls = layer.name, type(layer).__name__
    params = int(layer.count_params()) if layer.built else 0
    kind, config = "Unknown", {"class": cls}
    if isinstance(layer, L.Conv2D):
        kind = "Conv"
        padding = "same" if layer.padding == "same" else (0, 0)
        config = {"filters": layer.filters, "kernel": _pair(layer.kernel_size), "stride": _pair(layer.strides),
                  "padding": padding, "groups": getattr(layer, "groups", 1), "bias": layer.use_bias}
    elif isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        kind, config = "Padding", {"padding": (top, left), "asymmetric": (top != bottom or left != right)}
    elif isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        kind = "MaxPool" if isinstance(layer, L.MaxPooling2D) else "AvgPool"
        config = {"size": _pair(layer.pool_size), "stride": _pair(layer.strides),
                  "padding": "same" if layer.padding == "same" else (0, 0)}
    elif cls in ("AdaptiveAveragePooling2D", "AdaptiveAvgPool2D"):
        kind, config = "AdaptiveAvgPool", {"output": _pair(getattr(layer, "output_size", out_shape[:2]))}
    elif isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        kind = "Unknown"
    elif isinstance(layer, L.BatchNormalization):
        kind, config = "BatchNorm", {}
    elif "localresponse" in cls.lower() or cls.lower() in ("lrn",):
        kind = "LRN"
        config = {k: getattr(layer, k) for k in ("size", "alpha", "beta", "k") if hasattr(layer, k)}
    elif isinstance(layer, L.ReLU):
        kind, config = "Activation", {"function": "relu"}
    elif isinstance(layer, L.Softmax):
        kind, config = "Activation", {"function": "softmax"}
    elif isinstance(layer, L.LeakyReLU):
        kind, config = "Activation", {"function": "leaky_relu"}
    elif isinstance(layer, L.Activation):
        kind, config = "Activation", {"function": _keras_activation_name(layer.activation)}
    elif isinstance(layer, L.Dropout):
        kind, config = "Dropout", {"rate": float(layer.rate)}
    elif isinstance(layer, L.Flatten):
        kind, config = "Flatten", {}
    elif isinstance(layer, L.Dense):
        kind, config = "Dense", {"units": layer.units, "bias": layer.use_bias}
    elif isinstance(layer, L.Resizing):
        kind, config = "Resize", {"size": (layer.height, layer.width)}
    elif isinstance(layer, (L.Rescaling, L.Normalization)):
        kind = "Preprocess"
    observed = [ObservedLayer(name, kind, in_shape, out_shape, params, config)]
    fn = getattr(layer, "activation", None)
    if kind in ("Conv", "Dense") and fn is not None and _keras_activation_name(fn) != "linear":
        observed.append(ObservedLayer(f"{name} (activation={_keras_activation_name(fn)!r})", "Activation",
                                      out_shape, out_shape, 0, {"function": _keras_activation_name(fn)}))
    return observed


def _trace_keras(model, input_shape) -> Trace:
    declared = None
    try:
        if model.inputs:
            declared = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError):  # a Sequential without an Input has no inputs yet
        declared = None
    use = tuple(d for d in declared) if declared and all(d is not None for d in declared) else tuple(input_shape)
    x = np.random.default_rng(0).standard_normal((1, *use)).astype("float32")
    trace = Trace("keras", use, declared, [])
    y = x
    for layer in keras_layers(model):
        in_shape = tuple(y.shape[1:])
        try:
            y = layer(y, training=False)
        except Exception as e:  # noqa: BLE001 - any error of the student's model is reported, not raised
            trace.crash = (f"the forward pass failed in layer {layer.name!r} ({type(layer).__name__}), which "
                           f"received a {format_shape(in_shape)} input: {type(e).__name__}: {_first_line(e)}")
            break
        trace.layers.extend(_keras_observed(layer, in_shape, tuple(y.shape[1:])))
    if trace.crash is None:
        try:
            whole = to_numpy(model(x, training=False))
            if whole.shape != tuple(y.shape) or not np.allclose(whole, to_numpy(y), rtol=1e-4, atol=1e-5):
                trace.notes.append("Calling the layers one after the other does not give the model's output: "
                                   "the model is not a simple chain of layers, so this layer-by-layer check may "
                                   "not describe it. Build it with keras.Sequential or the functional API.")
        except Exception as e:  # noqa: BLE001
            trace.crash = f"calling the whole model failed: {type(e).__name__}: {_first_line(e)}"
    trace.layers = _merge_padding(trace.layers)
    return trace


# ---------------------------------------------------------------------------------------------
# PyTorch: the whole module, with hooks
# ---------------------------------------------------------------------------------------------
def _torch_channels_last(shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape[1:])
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def _torch_observed(name: str, module, in_shape, out_shape) -> ObservedLayer:
    from torch import nn

    params = sum(p.numel() for p in module.parameters(recurse=False))
    params += sum(b.numel() for b in module.buffers(recurse=False) if b.is_floating_point())
    cls = type(module).__name__
    kind, config = "Unknown", {"class": cls}
    if isinstance(module, nn.Conv2d):
        padding = module.padding if isinstance(module.padding, str) else _pair(module.padding)
        if padding == "valid":
            padding = (0, 0)
        kind = "Conv"
        config = {"filters": module.out_channels, "kernel": _pair(module.kernel_size), "stride": _pair(module.stride),
                  "padding": padding, "groups": module.groups, "bias": module.bias is not None,
                  "in_channels": module.in_channels}
    elif isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d)):
        left, right, top, bottom = module.padding
        kind, config = "Padding", {"padding": (top, left), "asymmetric": (top != bottom or left != right)}
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "MaxPool" if isinstance(module, nn.MaxPool2d) else "AvgPool"
        stride = module.stride if module.stride is not None else module.kernel_size
        config = {"size": _pair(module.kernel_size), "stride": _pair(stride), "padding": _pair(module.padding)}
    elif isinstance(module, nn.AdaptiveAvgPool2d):
        kind, config = "AdaptiveAvgPool", {"output": _pair(module.output_size)}
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        kind, config = "BatchNorm", {}
    elif isinstance(module, nn.LocalResponseNorm):
        # PyTorch divides alpha by size; the paper and the reference do not.
        kind = "LRN"
        config = {"size": module.size, "alpha": module.alpha / module.size, "beta": module.beta, "k": module.k}
    elif isinstance(module, nn.Dropout):
        kind, config = "Dropout", {"rate": float(module.p)}
    elif isinstance(module, nn.Flatten):
        kind, config = "Flatten", {}
    elif isinstance(module, nn.Linear):
        kind, config = "Dense", {"units": module.out_features, "bias": module.bias is not None,
                                 "in_features": module.in_features}
    elif isinstance(module, nn.Upsample):
        kind, config = "Resize", {"size": _pair(module.size) if module.size is not None else None}
    elif isinstance(module, nn.Identity):
        kind = "Identity"
    elif cls.lower() in _ACTIVATION_NAMES:
        kind, config = "Activation", {"function": _ACTIVATION_NAMES[cls.lower()]}
    return ObservedLayer(name, kind, in_shape, out_shape, params, config)


def _torch_between(before, after, where: str) -> list[ObservedLayer]:
    """What code in ``forward`` did between two modules, recognised from the tensors.

    Recognises, in this order and each optional: an activation function (``F.relu``,
    ``torch.tanh``, ``torch.sigmoid``, softmax), a pooling (``F.max_pool2d`` / ``F.avg_pool2d``
    with 2×2 or 3×3 windows) and a flatten (``torch.flatten(x, 1)``, ``x.view(len(x), -1)``).
    Anything else is reported as an unknown computation.
    """
    import itertools

    import torch
    import torch.nn.functional as F

    if before is None or after is None:
        return []
    before, after = before.float(), after.float()
    if before.shape == after.shape and torch.allclose(before, after, rtol=1e-5, atol=1e-6):
        return []
    activations = [(None, None), ("relu", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
                   ("softmax", lambda t: torch.softmax(t, dim=1)), ("log_softmax", lambda t: torch.log_softmax(t, dim=1))]
    pools = [(None, None, None)]
    if before.dim() == 4:
        pools += [(kind, k, s) for kind in ("MaxPool", "AvgPool") for k in (3, 2) for s in (2, 1, 3) if s <= k]
    for (act, fn), (pool, k, s), flatten in itertools.product(activations, pools, (False, True)):
        if act is None and pool is None and not flatten:
            continue
        shape = tuple(before.shape)
        if pool is not None:
            shape = shape[:2] + tuple(arch.conv_output_size(d, k, s) for d in shape[2:])
            if min(shape[2:]) < 1:
                continue
        if flatten:
            shape = (shape[0], math.prod(shape[1:]))
        if shape != tuple(after.shape):
            continue
        x = before if fn is None else fn(before)
        if pool is not None:
            x = (F.max_pool2d if pool == "MaxPool" else F.avg_pool2d)(x, k, s)
        if flatten:
            x = x.reshape(after.shape)
        if not torch.allclose(x, after, rtol=1e-5, atol=1e-6):
            continue
        found, shape = [], _torch_channels_last(before.shape)
        if act is not None:
            found.append(ObservedLayer(f"{act} in forward {where}", "Activation", shape, shape, 0,
                                       {"function": act, "functional": True}))
        if pool is not None:
            pooled = (arch.conv_output_size(shape[0], k, s), arch.conv_output_size(shape[1], k, s), shape[2])
            found.append(ObservedLayer(f"{pool.lower()} in forward {where}", pool, shape, pooled, 0,
                                       {"size": (k, k), "stride": (s, s), "padding": (0, 0), "functional": True}))
            shape = pooled
        if flatten:
            found.append(ObservedLayer(f"flatten in forward {where}", "Flatten", shape,
                                       _torch_channels_last(after.shape), 0, {"functional": True}))
        return found
    return [ObservedLayer(f"computation in forward {where}", "Unknown", _torch_channels_last(before.shape),
                          _torch_channels_last(after.shape), 0, {"class": "forward code"})]


def _trace_torch(model, input_shape) -> Trace:
    import torch

    declared = getattr(model, "input_shape", None)  # the course's models record (C, H, W)
    use = tuple(input_shape)
    if isinstance(declared, tuple) and len(declared) == 3 and all(isinstance(d, int) for d in declared):
        declared = (declared[1], declared[2], declared[0])
        use = declared
    else:
        declared = None
    h, w, c = use
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    trace = Trace("torch", use, declared, [])
    state = {"previous": x, "previous_name": "the input", "running": None}

    def pre_hook(name):
        def hook(module, args):
            tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
            where = f"between {state['previous_name']} and {name!r}"
            trace.layers.extend(_torch_between(state["previous"], tensor, where))
            state["running"] = (name, module, None if tensor is None else tuple(tensor.shape))
        return hook

    def post_hook(name):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                return
            in_shape = state["running"][2] if state["running"] else None
            trace.layers.append(_torch_observed(name, module, None if in_shape is None else
                                                _torch_channels_last(in_shape), _torch_channels_last(output.shape)))
            state.update(previous=output.detach().clone(), previous_name=repr(name), running=None)
        return hook

    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    handles = []
    try:
        for n, m in leaves:
            handles.append(m.register_forward_pre_hook(pre_hook(n)))
            handles.append(m.register_forward_hook(post_hook(n)))
        with evaluating(model), torch.no_grad():  # every submodule's own mode comes back afterwards
            out = model(x)
        if isinstance(out, torch.Tensor):
            trace.layers.extend(_torch_between(state["previous"], out, f"after {state['previous_name']}"))
    except Exception as e:  # noqa: BLE001 - any error of the student's model is reported, not raised
        running = state["running"]
        if running is not None:
            name, module, shape = running
            trace.crash = (f"the forward pass failed in {name!r} ({type(module).__name__}), which received "
                           f"{format_shape(_torch_channels_last(shape)) if shape else 'its input'}: "
                           f"{type(e).__name__}: {_first_line(e)}{_linear_hint(module, shape)}")
        else:
            trace.crash = f"the forward pass failed: {type(e).__name__}: {_first_line(e)}"
    finally:
        for handle in handles:
            handle.remove()
    trace.layers = _merge_padding(trace.layers)
    return trace


def _linear_hint(module, shape) -> str:
    from torch import nn

    if isinstance(module, nn.Linear) and shape is not None and math.prod(shape[1:]) != module.in_features:
        return (f". It was built for {module.in_features:,} input features but receives "
                f"{math.prod(shape[1:]):,}: an earlier layer's output size differs from what you planned")
    return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


