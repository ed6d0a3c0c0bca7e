"""Checks a student can run on their own AlexNet, and the autograder runs too.

Three families of checks, for a Keras model or a PyTorch module alike:

* **Architecture** (:func:`check_model`, :func:`assert_model_matches`): runs one image through
  the model, layer by layer, and compares every layer with the framework-free reference of
  :mod:`alexnet_lab.architecture`: its kind, output shape, parameter count, activation
  function, pooling window and dropout rate. The feedback names the first layer that differs
  and says what to change::

      conv1 gives 54×54×96 where the reference gives 55×55×96: (n + 2p − k) / s + 1 =
      (224 + 2·0 − 11) / 4 + 1 = 54 (rounded down). For a 224×224 input use padding=2,
      or feed 227×227 images.

* **Set-up** (:func:`check_loss_setup`, :func:`check_eval_mode`, :func:`check_inputs`,
  :func:`check_initialization`): the mistakes that let a model train badly without any error
  message: a softmax before a loss that applies softmax itself ("double softmax"), BatchNorm or
  dropout left in training mode when evaluating, images in 0-255, weights that start at zero.

* **Training** (:func:`diagnose_training`, :func:`assert_accuracy`): reads a training history
  and, when accuracy stays near chance, says which of the above is the likely cause, with the
  numbers that show it.

Every check returns findings rather than raising, so a notebook can print them; the
``assert_*`` functions raise an ``AssertionError`` carrying the same message, for graded cells.
This module imports neither TensorFlow nor PyTorch until a model of that framework is checked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import architecture as arch

__all__ = [
    "Finding", "Findings", "CheckReport", "ObservedLayer", "framework_of", "trace_model",
    "check_model", "assert_model_matches",
    "check_loss_setup", "assert_loss_setup", "check_eval_mode", "assert_eval_mode",
    "check_inputs", "assert_inputs", "check_initialization",
    "diagnose_training", "assert_accuracy", "chance_accuracy", "double_softmax_loss_floor",
]


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One result of a check.

    ``layer`` is the reference's name for the layer ("conv1", "fc8"), or "input", "model",
    "loss", "evaluation", "training". ``aspect`` says what was compared ("shape", "params",
    "activation", "structure", ...). ``severity`` is ``"ok"``, ``"note"`` (worth knowing, not
    wrong) or ``"error"``.
    """

    layer: str
    aspect: str
    severity: str
    message: str

    @property
    def ok(self) -> bool:
        return self.severity != "error"

    def __str__(self) -> str:
        mark = {"ok": "✓", "note": "·", "error": "✗"}[self.severity]
        return f"{mark} {self.message}"


def _as_findings(check):
    """Decorator: a check's list of findings becomes a :class:`Findings`, which prints readably."""
    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        return Findings(check(*args, **kwargs))
    return wrapper


class Findings(list):
    """A list of :class:`Finding` that prints one line per finding (✓ ok, · note, ✗ error)."""

    @property
    def passed(self) -> bool:
        return all(f.ok for f in self)

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


@dataclass
class CheckReport:
    """What :func:`check_model` found: one line per reference layer, and the findings.

    ``passed`` is true when no finding is an error; ``first_failure`` is the error that comes
    first in the network (later differences often follow from it).
    """

    title: str
    framework: str
    findings: list[Finding] = field(default_factory=list)
    table: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def first_failure(self) -> Finding | None:
        errors = self.errors
        return errors[0] if errors else None

    def summary(self) -> str:
        """One paragraph: all good, or the first difference and how many more there are."""
        if self.passed:
            return f"{self.title}: everything matches."
        first, more = self.errors[0], len(self.errors) - 1
        extra = f" ({more} more difference{'s' if more != 1 else ''} below.)" if more else ""
        return f"{self.title}: {first.message}{extra}"

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.table:
            widths = [max(len(row[i]) for row in self.table) for i in range(len(self.table[0]))]
            for row in self.table:
                lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if any(row[0] == "↓" for row in self.table):
                lines.append("↓: differs only because an earlier layer does (fix that one first)")
        problems = [f for f in self.findings if f.severity != "ok"]
        if problems:
            lines.append("")
            lines.extend(str(f) for f in problems)
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the full report for a bare `report`
        printer.text(str(self))


def _fail_with(report_or_findings, title: str) -> None:
    """Raise an AssertionError whose first line is the first error (what a grader shows)."""
    if isinstance(report_or_findings, CheckReport):
        if not report_or_findings.passed:
            raise AssertionError(str(report_or_findings))
        return
    errors = [f for f in report_or_findings if f.severity == "error"]
    if errors:
        raise AssertionError("\n".join([f"{title}: {errors[0].message}"] + [str(f) for f in errors[1:]]))


# ---------------------------------------------------------------------------------------------
# Which framework, and small formatting helpers
# ---------------------------------------------------------------------------------------------
def framework_of(model) -> str:
    """``"keras"`` or ``"torch"``, read from the model's classes (nothing is imported)."""
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if module.split(".")[0] == "torch":
            return "torch"
        if module.split(".")[0] in ("keras", "tf_keras", "tensorflow"):
            return "keras"
    raise TypeError(f"Expected a Keras model or a PyTorch nn.Module, got {type(model).__name__}. "
                    "Pass the model object itself (not its class, its summary or its outputs).")


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape) if shape is not None else "?"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _to_numpy(x) -> np.ndarray:
    """A NumPy copy of a NumPy array, a TensorFlow/Keras tensor or a PyTorch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Tracing a model: one image through it, layer by layer
# ---------------------------------------------------------------------------------------------
@dataclass
class ObservedLayer:
    """One layer of a student's model as the tracer saw it.

    ``kind`` uses the names of :mod:`alexnet_lab.architecture`'s records ("Conv", "MaxPool",
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


# ---- Keras ----------------------------------------------------------------------------------
def _keras_layers(model) -> list:
    """The layers of a Keras model in order, with nested models (blocks) opened up."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(_keras_layers(layer))
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
    for layer in _keras_layers(model):
        in_shape = tuple(y.shape[1:])
        try:
            y = layer(y, training=False)
        except Exception as e:  # noqa: BLE001 - any error of the student's model is reported, not raised
            trace.crash = (f"the forward pass failed in layer {layer.name!r} ({type(layer).__name__}), which "
                           f"received a {_shape(in_shape)} input: {type(e).__name__}: {_first_line(e)}")
            break
        trace.layers.extend(_keras_observed(layer, in_shape, tuple(y.shape[1:])))
    if trace.crash is None:
        try:
            whole = _to_numpy(model(x, training=False))
            if whole.shape != tuple(y.shape) or not np.allclose(whole, _to_numpy(y), rtol=1e-4, atol=1e-5):
                trace.notes.append("Calling the layers one after the other does not give the model's output: "
                                   "the model is not a simple chain of layers, so this layer-by-layer check may "
                                   "not describe it. Build it with keras.Sequential or the functional API.")
        except Exception as e:  # noqa: BLE001
            trace.crash = f"calling the whole model failed: {type(e).__name__}: {_first_line(e)}"
    trace.layers = _merge_padding(trace.layers)
    return trace


# ---- PyTorch --------------------------------------------------------------------------------
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
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for n, m in leaves:
            handles.append(m.register_forward_pre_hook(pre_hook(n)))
            handles.append(m.register_forward_hook(post_hook(n)))
        model.eval()
        with torch.no_grad():
            out = model(x)
        if isinstance(out, torch.Tensor):
            trace.layers.extend(_torch_between(state["previous"], out, f"after {state['previous_name']}"))
    except Exception as e:  # noqa: BLE001 - any error of the student's model is reported, not raised
        running = state["running"]
        if running is not None:
            name, module, shape = running
            trace.crash = (f"the forward pass failed in {name!r} ({type(module).__name__}), which received "
                           f"{_shape(_torch_channels_last(shape)) if shape else 'its input'}: "
                           f"{type(e).__name__}: {_first_line(e)}{_linear_hint(module, shape)}")
        else:
            trace.crash = f"the forward pass failed: {type(e).__name__}: {_first_line(e)}"
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes.items():
            m.train(mode)
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


# ---------------------------------------------------------------------------------------------
# Comparing a trace with the reference
# ---------------------------------------------------------------------------------------------
_IGNORED = ("Identity", "Preprocess")


def _align(ref_kinds: list[str], obs_kinds: list[str], prefix_only: bool) -> list[tuple[int | None, int | None]]:
    """Align two sequences of layer kinds with the fewest insertions, deletions and substitutions.

    Returns pairs ``(ref_index, obs_index)``; ``None`` on one side marks a missing (``obs`` None)
    or an extra (``ref`` None) layer. With ``prefix_only`` (the forward pass stopped early) the
    observed layers are aligned with the start of the reference only.
    """
    n, m = len(ref_kinds), len(obs_kinds)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            step = 0 if ref_kinds[i - 1] == obs_kinds[j - 1] else 1
            cost[i][j] = min(cost[i - 1][j - 1] + step, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    i = min(range(n + 1), key=lambda k: (cost[k][m], -k)) if prefix_only else n
    j, pairs = m, []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (0 if ref_kinds[i - 1] == obs_kinds[j - 1] else 1):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif j > 0 and cost[i][j] == cost[i][j - 1] + 1:
            pairs.append((None, j - 1))
            j -= 1
        else:
            pairs.append((i - 1, None))
            i -= 1
    return pairs[::-1]


_KIND_WORDS = {
    "Conv": "convolution", "MaxPool": "max-pooling", "AvgPool": "average pooling",
    "AdaptiveAvgPool": "adaptive average pooling", "LRN": "Local Response Normalization",
    "BatchNorm": "BatchNorm", "Activation": "activation", "Dropout": "dropout", "Flatten": "flatten",
    "Dense": "fully connected layer", "Resize": "resizing", "Padding": "zero-padding", "Unknown": "layer",
}


def _describe_ref(spec: arch.Layer) -> str:
    if isinstance(spec, arch.Activation):
        return "ReLU" if spec.function == "relu" else spec.function
    if isinstance(spec, arch.Dropout):
        return f"dropout with rate {spec.rate:g}"
    if isinstance(spec, arch.MaxPool):
        return f"{spec.size}×{spec.size} max-pooling with stride {spec.stride}"
    if isinstance(spec, arch.Conv):
        return f"{spec.kernel}×{spec.kernel} convolution with {spec.filters} filters"
    if isinstance(spec, arch.Dense):
        return f"fully connected layer with {spec.units} units"
    return _KIND_WORDS.get(type(spec).__name__, type(spec).__name__)


def _describe_obs(obs: ObservedLayer) -> str:
    if obs.kind == "Activation":
        return f"{obs.config.get('function')} activation ({obs.name!r})"
    if obs.kind == "Unknown":
        return f"{obs.config.get('class', 'unknown')} layer ({obs.name!r})"
    return f"{_KIND_WORDS.get(obs.kind, obs.kind)} ({obs.name!r})"


def _code_hint(spec: arch.Layer, framework: str, in_shape) -> str:
    """How to write the reference layer in the student's framework."""
    keras = framework == "keras"
    if isinstance(spec, arch.Conv):
        cin = in_shape[-1] if in_shape else "in_channels"
        if keras:
            pad = "" if spec.padding == 0 else (
                ", padding='same'" if spec.stride == 1 and spec.padding == spec.kernel // 2
                else f" after layers.ZeroPadding2D({spec.padding})")
            return f"layers.Conv2D({spec.filters}, {spec.kernel}, strides={spec.stride}{pad})"
        return f"nn.Conv2d({cin}, {spec.filters}, {spec.kernel}, stride={spec.stride}, padding={spec.padding})"
    if isinstance(spec, arch.Activation):
        fn = spec.function
        return (f"layers.ReLU() or activation='{fn}'" if keras and fn == "relu"
                else f"layers.Activation('{fn}')" if keras else
                {"relu": "nn.ReLU()", "tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()"}[fn])
    if isinstance(spec, arch.MaxPool):
        return f"layers.MaxPooling2D({spec.size}, strides={spec.stride})" if keras else \
            f"nn.MaxPool2d({spec.size}, stride={spec.stride})"
    if isinstance(spec, arch.Dropout):
        return f"layers.Dropout({spec.rate:g})" if keras else f"nn.Dropout({spec.rate:g})"
    if isinstance(spec, arch.Flatten):
        return "layers.Flatten()" if keras else "nn.Flatten()"
    if isinstance(spec, arch.Dense):
        n_in = math.prod(in_shape) if in_shape else "in_features"
        return f"layers.Dense({spec.units})" if keras else f"nn.Linear({n_in}, {spec.units})"
    if isinstance(spec, arch.BatchNorm):
        return "layers.BatchNormalization()" if keras else f"nn.BatchNorm2d({in_shape[-1] if in_shape else 'C'})"
    if isinstance(spec, arch.LRN):
        return ("alexnet_lab.keras_models.LocalResponseNormalization()" if keras else
                f"nn.LocalResponseNorm({spec.size}, alpha={spec.alpha * spec.size:g}, beta={spec.beta:g}, k={spec.k:g})")
    if isinstance(spec, arch.AdaptiveAvgPool):
        return f"nn.AdaptiveAvgPool2d(({spec.output}, {spec.output}))" if not keras else \
            f"layers.AdaptiveAveragePooling2D({spec.output})"
    if isinstance(spec, arch.Resize):
        return f"layers.Resizing({spec.size}, {spec.size})" if keras else f"nn.Upsample(size=({spec.size}, {spec.size}))"
    return type(spec).__name__


def _conv_size_message(name: str, spec, row, obs, first_spatial: bool, framework: str) -> str:
    """Why a convolution's output size differs, with the formula and the two ways to fix it."""
    n = obs.input_shape[0]
    k, s = spec.kernel, spec.stride
    pad = obs.config.get("padding", (0, 0))
    got, want = obs.output_shape, row.output_shape
    if pad == "same":
        why = (f"with padding='same' the output is ceil(n / s) = ceil({n} / {s}) = {got[0]}. ")
        p_txt = "same"
    else:
        p = pad[0]
        why = (f"(n + 2p − k) / s + 1 = ({n} + 2·{p} − {k}) / {s} + 1 = {got[0]}"
               f"{' (rounded down)' if (n + 2 * p - k) % s else ''}. ")
        p_txt = p
    fixes = []
    need_p = next((q for q in range(0, k + 1) if arch.conv_output_size(n, k, s, q) == want[0]), None)
    if need_p is not None and need_p != p_txt:
        how = (f"layers.ZeroPadding2D({need_p}) before a Conv2D with padding='valid'" if framework == "keras"
               and not (s == 1 and need_p == k // 2) else f"padding={need_p}")
        fixes.append(f"use padding={need_p}" + (f" ({how})" if framework == "keras" else ""))
    if first_spatial and pad != "same":
        need_n = (want[0] - 1) * s + k - 2 * pad[0]
        if need_n != n and need_n > 0:
            fixes.append(f"feed {need_n}×{need_n} images")
    fix = (f"For a {n}×{n} input " + ", or ".join(fixes) + ".") if fixes else \
        f"The reference's {spec.name} is {k}×{k} with stride {s} and padding {spec.padding}."
    return f"{name} gives {_shape(got)} where the reference gives {_shape(want)}: {why}{fix}"


def _compare_pair(spec, row, ref_in, obs: ObservedLayer, framework: str, first_spatial: bool,
                  before_batchnorm: bool) -> list[Finding]:
    """Compare one observed layer with the reference layer it was aligned with."""
    name = spec.name if obs.name == spec.name else f"{spec.name} (your layer {obs.name!r})"
    input_ok = obs.input_shape is not None and tuple(obs.input_shape) == tuple(ref_in)
    found: list[Finding] = []
    config_error = False

    def error(aspect, text):
        nonlocal config_error
        config_error = True
        found.append(Finding(spec.name, aspect, "error", text))

    cfg = obs.config
    if isinstance(spec, arch.Conv):
        if cfg["filters"] != spec.filters:
            error("channels", f"{name} has {cfg['filters']} filters (output channels) where the reference has "
                              f"{spec.filters}: use {_code_hint(spec, framework, ref_in)}.")
        if cfg["kernel"] != (spec.kernel, spec.kernel) or cfg["stride"] != (spec.stride, spec.stride):
            error("config", f"{name} uses {_shape(cfg['kernel'])} kernels with stride {_shape(cfg['stride'])} where "
                            f"the reference uses {spec.kernel}×{spec.kernel} with stride {spec.stride}: "
                            f"use {_code_hint(spec, framework, ref_in)}.")
        if cfg.get("groups", 1) != spec.groups:
            error("config", f"{name} uses groups={cfg.get('groups', 1)} where the reference uses groups={spec.groups}.")
    elif isinstance(spec, (arch.MaxPool, arch.AvgPool)):
        if cfg["size"] != (spec.size, spec.size) or cfg["stride"] != (spec.stride, spec.stride):
            error("pooling", f"{name} pools {_shape(cfg['size'])} windows with stride {_shape(cfg['stride'])} where "
                             f"the reference pools {spec.size}×{spec.size} windows with stride {spec.stride} "
                             f"(overlapping pooling): use {_code_hint(spec, framework, ref_in)}.")
    elif isinstance(spec, arch.AdaptiveAvgPool):
        if cfg.get("output") not in (None, (spec.output, spec.output)):
            error("pooling", f"{name} pools to {_shape(cfg['output'])} where the reference pools to "
                             f"{spec.output}×{spec.output}.")
    elif isinstance(spec, arch.Activation):
        if cfg["function"] != spec.function:
            error("activation", f"{name} applies {cfg['function']} where the reference applies "
                                f"{_describe_ref(spec)}: use {_code_hint(spec, framework, ref_in)}.")
    elif isinstance(spec, arch.Dropout):
        if abs(cfg["rate"] - spec.rate) > 1e-9:
            error("dropout", f"{name} drops {cfg['rate']:.0%} of the units (rate {cfg['rate']:g}) where the "
                             f"reference drops {spec.rate:.0%}: use {_code_hint(spec, framework, ref_in)}. "
                             f"(Keras' rate and PyTorch's p are both the fraction dropped.)")
    elif isinstance(spec, arch.Dense):
        if cfg["units"] != spec.units:
            error("units", f"{name} has {cfg['units']:,} units where the reference has {spec.units:,}: use "
                           f"{_code_hint(spec, framework, ref_in)}.")
    elif isinstance(spec, arch.LRN):
        for key in ("size", "alpha", "beta", "k"):
            if key in cfg and not math.isclose(cfg[key], getattr(spec, key), rel_tol=1e-6):
                error("config", f"{name} has {key}={cfg[key]:g} where the paper's LRN has {key}={getattr(spec, key):g}"
                                f" (in the paper's convention; PyTorch's alpha is the paper's alpha × size).")
                break
    elif isinstance(spec, arch.Resize):
        if cfg.get("size") not in (None, (spec.size, spec.size)):
            error("config", f"{name} resizes to {_shape(cfg['size'])} where the reference resizes to "
                            f"{spec.size}×{spec.size}.")

    # Output shape and parameters: only where this layer's input is the reference's, so that a
    # difference is this layer's own and not one that flows from an earlier layer.
    if input_ok and not config_error:
        if obs.output_shape is not None and tuple(obs.output_shape) != tuple(row.output_shape):
            if isinstance(spec, arch.Conv):
                found.append(Finding(spec.name, "shape", "error",
                                     _conv_size_message(name, spec, row, obs, first_spatial, framework)))
            else:
                found.append(Finding(spec.name, "shape", "error",
                                     f"{name} gives {_shape(obs.output_shape)} where the reference gives "
                                     f"{_shape(row.output_shape)}."))
        elif obs.params != row.params:
            found.append(_params_finding(name, spec, row, obs, before_batchnorm))
    if not found:
        found.append(Finding(spec.name, "layer", "ok", f"{name}: {_shape(obs.output_shape)}, {obs.params:,} parameters"))
    return found


def _params_finding(name: str, spec, row, obs, before_batchnorm: bool) -> Finding:
    if isinstance(spec, (arch.Conv, arch.Dense)) and obs.config.get("bias") is not None and obs.config["bias"] != spec.bias:
        if spec.bias and before_batchnorm:
            return Finding(spec.name, "params", "note", f"{name} has no bias, which is right in front of BatchNorm; "
                                                        f"but the reference has no BatchNorm after it (see below).")
        if spec.bias:
            return Finding(spec.name, "params", "error", f"{name} has no bias ({obs.params:,} parameters where the "
                                                         f"reference has {row.params:,}): keep the bias (use_bias/bias=True).")
        return Finding(spec.name, "params", "note", f"{name} has a bias ({obs.params:,} parameters, the reference "
                                                    f"{row.params:,}); BatchNorm's shift right after it makes it "
                                                    f"redundant, so the reference leaves it out (use_bias=False / bias=False).")
    return Finding(spec.name, "params", "error", f"{name} has {obs.params:,} parameters where the reference has "
                                                 f"{row.params:,}.")


def _structure_finding(spec, prev_name: str, obs: ObservedLayer | None, framework: str, ref_in,
                       reference_norm: str) -> Finding:
    """A missing, extra or different layer, said plainly."""
    if obs is None:  # missing
        text = (f"missing {_describe_ref(spec)} after {prev_name}: the reference has {spec.name} here; "
                f"add {_code_hint(spec, framework, ref_in)}.")
        if isinstance(spec, arch.Dropout) and framework == "torch":
            text += " (F.dropout calls in forward are invisible to this check: use nn.Dropout modules.)"
        return Finding(spec.name, "structure", "error", text)
    if spec is None:  # extra
        where = f"after {prev_name}"
        if obs.kind == "Activation" and obs.config.get("function") in ("softmax", "log_softmax") and prev_name == "fc8":
            loss = ("nn.CrossEntropyLoss" if framework == "torch"
                    else "SparseCategoricalCrossentropy(from_logits=True)")
            return Finding("fc8", "logits", "error",
                           f"your model applies a {obs.config['function']} after fc8, so it returns probabilities; "
                           f"the reference returns logits (the scores before softmax). Remove it ({obs.name!r}) and "
                           f"train with {loss}, which applies the softmax itself; keeping both is the "
                           f"'double softmax' mistake.")
        extra = ""
        if obs.kind == "BatchNorm" and reference_norm != "batch":
            extra = " (To check the BatchNorm variant, pass norm='batch'.)"
        if obs.kind == "LRN" and reference_norm != "lrn":
            extra = " (To check the paper's variant with LRN, pass norm='lrn' or preset='paper'.)"
        return Finding(prev_name, "structure", "error",
                       f"extra {_describe_obs(obs)} {where}: the reference has no such layer there; remove it.{extra}")
    # a different kind of layer where the reference has one
    if isinstance(spec, arch.MaxPool) and obs.kind == "AvgPool":
        text = (f"{spec.name} is average pooling where the reference uses max-pooling: use "
                f"{_code_hint(spec, framework, ref_in)}.")
    else:
        text = (f"after {prev_name} the reference has {spec.name} ({_describe_ref(spec)}) but your model has "
                f"{_describe_obs(obs)}: use {_code_hint(spec, framework, ref_in)}.")
    return Finding(spec.name, "structure", "error", text)


def _reference(preset, kwargs) -> tuple[str, tuple[int, int, int], list, list]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", arch.ImageSizeWarning)
        if preset == "lenet5":
            input_shape, specs = arch.describe_lenet5(**kwargs)
            title = "LeNet-5"
        else:
            p = arch.get_preset(preset)
            input_shape, specs = arch.describe_alexnet(p, **kwargs)
            title = f"AlexNet ({p.name!r}" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")"
    return title, input_shape, specs, arch.compute_rows(input_shape, specs)


def check_model(model, preset: str | arch.Preset = "classic", **alexnet_kwargs) -> CheckReport:
    """Compare a Keras or PyTorch model with the reference AlexNet, layer by layer.

    Args:
        model: a Keras model (``keras.Sequential``, functional) or a PyTorch ``nn.Module``.
        preset: the reference: a preset name of :mod:`alexnet_lab.architecture` (``"classic"``,
            ``"paper"``, ...), ``"lenet5"``, or a :class:`~alexnet_lab.architecture.Preset` of
            your own (e.g. ``dataclasses.replace(get_preset("classic"), image_size=224, ...)``).
        **alexnet_kwargs: the same keyword arguments as ``alexnet(...)`` (``num_classes``,
            ``in_channels``, ``image_size``, ``norm``, ``dropout``, ``resize_to``).

    The model sees one random image of the reference's input size (or of the size the model
    declares, when it declares one, as Keras models built with ``keras.Input`` do). Layers may
    have any names; they are matched with the reference in order. Returns a :class:`CheckReport`:
    ``print(report)`` shows a table and every difference, ``report.passed`` says whether all matched.
    """
    title, ref_input, specs, rows = _reference(preset, alexnet_kwargs)
    framework = framework_of(model)
    report = CheckReport(f"{'Keras' if framework == 'keras' else 'PyTorch'} model vs {title}", framework)

    trace = trace_model(model, ref_input)
    if trace.declared_input is not None and tuple(trace.declared_input) != tuple(ref_input):
        report.findings.append(Finding(
            "input", "shape", "error",
            f"your model takes {_shape(trace.declared_input)} images where the reference takes {_shape(ref_input)}"
            + (f" (build it with keras.Input(shape={tuple(ref_input)}))." if framework == "keras" else ".")))
    for note in trace.notes:
        report.findings.append(Finding("model", "trace", "note", note))

    observed = [o for o in trace.layers if o.kind not in _IGNORED]
    pairs = _align([type(s).__name__ for s in specs], [o.kind for o in observed], prefix_only=trace.crash is not None)
    ins = [ref_input] + [r.output_shape for r in rows[:-1]]
    prev_name, seen_spatial = "the input", False
    table = [("", "layer", "reference", "yours", "params (ref)", "params (yours)")]
    for ri, oi in pairs:
        spec = specs[ri] if ri is not None else None
        obs = observed[oi] if oi is not None else None
        if spec is not None and obs is not None and type(spec).__name__ == obs.kind:
            first_spatial = not seen_spatial
            before_bn = oi + 1 < len(observed) and observed[oi + 1].kind == "BatchNorm"
            found = _compare_pair(spec, rows[ri], ins[ri], obs, framework, first_spatial, before_bn)
        else:
            found = [_structure_finding(spec, prev_name, obs, framework, ins[ri] if ri is not None else None,
                                        alexnet_kwargs.get("norm") or _preset_norm(preset))]
        report.findings.extend(found)
        bad = any(f.severity == "error" for f in found)
        if spec is not None:
            differs = obs is not None and (tuple(obs.output_shape or ()) != tuple(rows[ri].output_shape)
                                           or obs.params != rows[ri].params)
            table.append(("✗" if bad else "↓" if differs else "✓", spec.name, _shape(rows[ri].output_shape),
                          _shape(obs.output_shape) if obs else "missing", f"{rows[ri].params:,}",
                          f"{obs.params:,}" if obs else "-"))
            prev_name = spec.name
            seen_spatial = seen_spatial or isinstance(spec, (arch.Conv, arch.MaxPool, arch.AvgPool))
        elif obs is not None:
            table.append(("✗", f"(extra) {obs.name}", "-", _shape(obs.output_shape), "-", f"{obs.params:,}"))

    reached = {ri for ri, _ in pairs if ri is not None}
    for ri, spec in enumerate(specs):
        if ri not in reached:
            table.append(("", spec.name, _shape(rows[ri].output_shape), "not reached", f"{rows[ri].params:,}", "-"))
    if trace.crash is not None:
        report.findings.append(Finding("model", "forward", "error", trace.crash[0].upper() + trace.crash[1:] + "."))
    ref_total = arch.totals(rows)["params"]
    got_total = sum(o.params for o in observed)
    if trace.crash is None:
        if got_total != ref_total:
            report.findings.append(Finding("model", "params", "error",
                                           f"your model has {got_total:,} parameters where the reference has "
                                           f"{ref_total:,} (difference {got_total - ref_total:+,})."))
        else:
            report.findings.append(Finding("model", "params", "ok", f"{got_total:,} parameters, as the reference."))
    table.append(("", "total", "", "", f"{ref_total:,}", f"{got_total:,}" if trace.crash is None else "?"))
    report.table = table
    return report


def _preset_norm(preset) -> str:
    if preset == "lenet5":
        return "none"
    return arch.get_preset(preset).norm


def assert_model_matches(model, preset: str | arch.Preset = "classic", **alexnet_kwargs) -> CheckReport:
    """:func:`check_model`, raising an ``AssertionError`` (first line: the first difference) if anything differs."""
    report = check_model(model, preset, **alexnet_kwargs)
    _fail_with(report, report.title)
    return report


# ---------------------------------------------------------------------------------------------
# Set-up checks: loss and outputs, evaluation mode, inputs, initialization
# ---------------------------------------------------------------------------------------------
def chance_accuracy(num_classes: int) -> float:
    """The accuracy of guessing: ``1 / num_classes``."""
    return 1.0 / num_classes


def double_softmax_loss_floor(num_classes: int) -> float:
    """The smallest cross-entropy a model can reach when its outputs are already softmax probabilities.

    Cross-entropy applies softmax to the probabilities again; even a perfect prediction (1 for
    the right class, 0 elsewhere) then gives ``-log(e / (e + C - 1)) = log(1 + (C - 1) / e)``.
    """
    return math.log(1 + (num_classes - 1) / math.e)


def _looks_like_probabilities(outputs: np.ndarray) -> bool:
    return (outputs.ndim == 2 and outputs.min() >= -1e-6 and outputs.max() <= 1 + 1e-6
            and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))


def _looks_like_log_probabilities(outputs: np.ndarray) -> bool:
    return outputs.ndim == 2 and outputs.max() <= 1e-6 and np.allclose(np.exp(outputs).sum(axis=1), 1.0, atol=1e-3)


def _model_outputs(model, framework: str, batch: int = 4, input_shape=None) -> np.ndarray:
    """The model's outputs for a small random batch, in evaluation mode."""
    if framework == "keras":
        shape = input_shape or tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(1).standard_normal((batch, *shape)).astype("float32")
        return _to_numpy(model(x, training=False))
    import torch

    if input_shape is None:
        c, h, w = model.input_shape
    else:
        h, w, c = input_shape
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        device = next(model.parameters()).device
        x = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(1)).to(device)
        with torch.no_grad():
            return _to_numpy(model(x))
    finally:
        for m, mode in modes.items():
            m.train(mode)


def _loss_value(loss, framework: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    if framework == "keras":
        import keras

        fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        try:
            return float(_to_numpy(fn(labels, outputs.astype("float32"))).mean())
        except Exception:  # noqa: BLE001 - a loss for one-hot labels
            onehot = np.eye(outputs.shape[1], dtype="float32")[labels]
            return float(_to_numpy(fn(onehot, outputs.astype("float32"))).mean())
    import torch

    return float(loss(torch.tensor(outputs, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)))


def _loss_takes_logits(loss, framework: str, num_classes: int) -> bool:
    """Whether the loss applies softmax itself: cross-entropy on logits does not change when all logits shift."""
    z = np.linspace(1.0, 0.1, num_classes)[None, :].repeat(2, axis=0)
    labels = np.array([0, 1])
    return math.isclose(_loss_value(loss, framework, z, labels), _loss_value(loss, framework, z + 2.0, labels),
                        rel_tol=1e-4, abs_tol=1e-5)


@_as_findings
def check_loss_setup(model, loss, *, input_shape: tuple[int, int, int] | None = None) -> Findings:
    """Check that what the model returns is what the loss expects.

    The course's models return logits, and ``nn.CrossEntropyLoss`` /
    ``SparseCategoricalCrossentropy(from_logits=True)`` apply the softmax themselves. The
    classic mistake is a model that ends with a softmax *and* such a loss: the "double
    softmax". Training still runs, but the loss can no longer get near zero (see
    :func:`double_softmax_loss_floor`) and the gradients are flattened. The opposite mistake,
    logits into a loss that expects probabilities (``from_logits=False``), is caught too.

    ``input_shape`` is (H, W, C); by default the model's own (Keras ``keras.Input``, the course's
    PyTorch models) is used, so pass it for a PyTorch module of your own.
    """
    framework = framework_of(model)
    outputs = _model_outputs(model, framework, input_shape=input_shape)
    num_classes = outputs.shape[1]
    takes_logits = _loss_takes_logits(loss, framework, num_classes)
    probs = _looks_like_probabilities(outputs)
    loss_name = type(loss).__name__ if not isinstance(loss, str) else loss
    stats = f"(outputs range from {outputs.min():.3g} to {outputs.max():.3g}; rows sum to {outputs.sum(axis=1).mean():.3f})"
    if probs and takes_logits:
        floor = double_softmax_loss_floor(num_classes)
        fix = ("remove the final nn.Softmax so the model returns logits" if framework == "torch"
               else "remove the final softmax (activation=None on the last Dense) so the model returns logits")
        return [Finding("loss", "double softmax", "error",
                        f"double softmax: your model's outputs are already probabilities {stats}, and {loss_name} "
                        f"applies softmax again. Even a perfect prediction then has a loss of at least {floor:.2f} "
                        f"with {num_classes} classes (instead of 0), and the gradients shrink: {fix}.")]
    if not probs and not takes_logits:
        if framework == "torch" and _looks_like_log_probabilities(outputs):
            return [Finding("loss", "loss", "ok", f"the model returns log-probabilities and {loss_name} expects them.")]
        hint = ("use from_logits=True" if framework == "keras" else
                "use nn.CrossEntropyLoss, which takes logits (NLLLoss expects log-probabilities)")
        return [Finding("loss", "logits", "error",
                        f"your model returns logits {stats}, but {loss_name} expects probabilities: {hint}.")]
    if probs:
        return [Finding("loss", "loss", "note",
                        f"the model returns probabilities and {loss_name} expects them: this trains, but the course's "
                        f"models return logits and use a loss that takes logits, which is numerically safer.")]
    return [Finding("loss", "loss", "ok", f"the model returns logits and {loss_name} applies the softmax itself.")]


def assert_loss_setup(model, loss, *, input_shape: tuple[int, int, int] | None = None) -> list[Finding]:
    """:func:`check_loss_setup`, raising an ``AssertionError`` that names the mistake."""
    findings = check_loss_setup(model, loss, input_shape=input_shape)
    _fail_with(findings, "Loss set-up")
    return findings


def _seed_frameworks(seed: int) -> None:
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


@_as_findings
def check_eval_mode(predict: Callable, images, *, model=None, tolerance: float = 1e-4) -> Findings:
    """Check that evaluation treats every image on its own and gives the same answer twice.

    ``predict`` is the function you evaluate with (e.g. ``lambda x: torch_predict(model, x)``);
    ``images`` a batch of at least 2 inputs in the layout it takes. Two things must hold:

    1. an image's output does not depend on the other images of the batch (else BatchNorm is
       normalizing with the batch's own statistics instead of its running averages);
    2. the same call twice gives the same outputs (else dropout is still switched on).

    Both mean the model is evaluated in training mode: ``model.eval()`` in PyTorch,
    ``model(x, training=False)`` or ``model.predict(x)`` in Keras. With ``model`` given (PyTorch),
    the BatchNorm and dropout modules still in training mode after ``predict`` are named.
    """
    x = _to_numpy(images)
    if x.shape[0] < 2:
        raise ValueError(f"check_eval_mode needs a batch of at least 2 images, got {x.shape[0]}.")
    as_input = _like(images)
    # Change the second half of the batch, keep the first: in evaluation mode the first half's outputs stay.
    # PyTorch's random generator is reset before each call, so dropout (if on) draws the same masks both times.
    k = x.shape[0] // 2
    changed = x.copy()
    changed[k:] = 0.0
    _seed_frameworks(0)
    a = _to_numpy(predict(as_input(x)))
    _seed_frameworks(0)
    b = _to_numpy(predict(as_input(changed)))
    batch_gap = float(np.abs(a[:k] - b[:k]).max())
    again = _to_numpy(predict(as_input(x)))  # no reset: dropout, if on, draws new masks
    random_gap = float(np.abs(a - again).max())
    fix = ("PyTorch: call model.eval() before evaluating (and model.train() before training again); "
           "Keras: use model(x, training=False) or model.predict(x).")
    findings = []
    if batch_gap > tolerance:
        findings.append(Finding("evaluation", "batchnorm", "error",
                                f"BatchNorm is in training mode at evaluation: the outputs for the same images changed "
                                f"by up to {batch_gap:.3g} when the other images of the batch changed, because "
                                f"BatchNorm normalizes with the batch's own mean and variance instead of its running "
                                f"averages. {fix}"))
    if random_gap > tolerance:
        findings.append(Finding("evaluation", "dropout", "error",
                                f"dropout is active at evaluation: two identical calls gave outputs that differ by up "
                                f"to {random_gap:.3g}. {fix}"))
    if model is not None and framework_of(model) == "torch":
        from torch import nn

        still = [n for n, m in model.named_modules() if m.training
                 and isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout))]
        if still:
            findings.append(Finding("evaluation", "mode", "note",
                                    f"after predict, these modules are in training mode: {', '.join(still)}."))
    if not any(f.severity == "error" for f in findings):
        findings.append(Finding("evaluation", "mode", "ok",
                                "evaluation is deterministic and each image's output ignores the rest of the batch."))
    return findings


def assert_eval_mode(predict: Callable, images, *, model=None) -> list[Finding]:
    """:func:`check_eval_mode`, raising an ``AssertionError`` that names the mistake."""
    findings = check_eval_mode(predict, images, model=model)
    _fail_with(findings, "Evaluation mode")
    return findings


def _like(template) -> Callable[[np.ndarray], Any]:
    """A function turning a NumPy array back into the kind of array ``template`` is (tensor or array)."""
    module = type(template).__module__.split(".")[0]
    if module == "torch":
        import torch

        return lambda a: torch.as_tensor(a, dtype=template.dtype, device=template.device)
    dtype = getattr(template, "dtype", np.float32)
    try:
        dtype = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    except TypeError:
        dtype = np.float32
    return lambda a: a.astype(dtype)


@_as_findings
def check_inputs(inputs, *, standardized: bool = False) -> Findings:
    """Look at a batch of model inputs: are they scaled the way a network wants them?

    Networks train best on inputs of roughly zero mean and unit spread. Raw pixels (0-255) make
    the first layer's outputs hundreds of times too large; inputs that are all nearly the same
    (blank images, or normalized twice) give the network nothing to learn from. With
    ``standardized=True`` the batch must also be standardized: mean within ±0.25 of 0 and
    standard deviation between 0.5 and 2 (pixels merely divided by 255 are not).
    """
    x = _to_numpy(inputs)
    lo, hi, mean, std = float(x.min()), float(x.max()), float(x.mean()), float(x.std())
    stats = f"min {lo:.3g}, max {hi:.3g}, mean {mean:.3g}, std {std:.3g}"
    fix = "subtract the training set's mean and divide by its standard deviation, per channel"
    if hi > 10:
        looks = "look like raw pixel values (0-255)" if lo >= 0 and hi <= 255 else "are very large"
        return [Finding("inputs", "scaling", "error",
                        f"the inputs {looks} ({stats}): divide by 255, then {fix}, so the values are around 0 "
                        f"with a spread of about 1.")]
    if std < 1e-2:  # CIFAR-10 images divided by 255 twice have std ≈ 0.001; anything usable has far more
        return [Finding("inputs", "scaling", "error",
                        f"the inputs are nearly constant ({stats}): the images are blank or were scaled twice "
                        f"(e.g. divided by 255 two times); the network cannot learn from them.")]
    if standardized and not (abs(mean) <= 0.25 and 0.5 <= std <= 2.0):
        return [Finding("inputs", "scaling", "error",
                        f"the inputs are not standardized ({stats}): {fix} (e.g. with "
                        f"pipelines.channel_stats(train)), so that they have mean about 0 and std about 1.")]
    if abs(mean) > 3 * std:
        return [Finding("inputs", "scaling", "note",
                        f"the inputs are far from zero-centred ({stats}): subtracting the mean helps training.")]
    return [Finding("inputs", "scaling", "ok", f"inputs look reasonably scaled ({stats}).")]


def assert_inputs(inputs, *, standardized: bool = False) -> Findings:
    """:func:`check_inputs`, raising an ``AssertionError`` that says what is wrong with the scaling."""
    findings = check_inputs(inputs, standardized=standardized)
    _fail_with(findings, "Inputs")
    return findings


@_as_findings
def check_initialization(model) -> Findings:
    """Compare each convolution's and fully connected layer's weight spread with He initialization.

    He initialization (the course's models use its uniform form) gives weights a standard
    deviation of ``sqrt(2 / fan_in)``: with that, signals neither die out nor blow up through
    ReLU layers. Weights all zero, or 10× too small or too large, stall training.
    """
    framework = framework_of(model)
    weights = []
    if framework == "torch":
        from torch import nn

        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weights.append((name, _to_numpy(m.weight)))
    else:
        for layer in _keras_layers(model):
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and len(kernel.shape) in (2, 4):
                w = _to_numpy(kernel)
                weights.append((layer.name, w))
    findings = []
    for name, w in weights:
        fan_in = int(np.prod(w.shape[1:])) if framework == "torch" else int(np.prod(w.shape[:-1]))
        he = math.sqrt(2.0 / fan_in)
        std = float(w.std())
        if std == 0.0:
            findings.append(Finding(name, "initialization", "error",
                                    f"{name}'s weights are all equal (std 0; He initialization gives {he:.3g}): "
                                    f"every unit computes the same thing and they never become different."))
        elif not 0.1 <= std / he <= 10:
            findings.append(Finding(name, "initialization", "error",
                                    f"{name}'s weights have std {std:.3g}, {std / he:.2g}× what He initialization "
                                    f"gives ({he:.3g} = sqrt(2 / {fan_in})): signals will "
                                    f"{'fade' if std < he else 'explode'} through the layers."))
    if not findings:
        findings.append(Finding("model", "initialization", "ok",
                                f"the weights of {len(weights)} layers have He-like spreads."))
    return findings


# ---------------------------------------------------------------------------------------------
# Training diagnosis
# ---------------------------------------------------------------------------------------------
def _metrics(history) -> Mapping[str, Sequence[float]]:
    """The per-epoch metrics of a History, a Keras History, or a plain dict."""
    if hasattr(history, "metrics") and isinstance(history.metrics, Mapping):
        return history.metrics
    if hasattr(history, "history") and isinstance(history.history, Mapping):  # keras.callbacks.History
        return history.history
    if isinstance(history, Mapping):
        return history
    raise TypeError("diagnose_training takes an alexnet_lab History, a Keras History or a dict of per-epoch lists, "
                    f"got {type(history).__name__}.")


def _get(metrics, *names) -> list[float]:
    for n in names:
        if n in metrics and len(metrics[n]):
            return [float(v) for v in metrics[n]]
    return []


@_as_findings
def diagnose_training(history, num_classes: int, *, inputs=None, model=None, predict: Callable | None = None,
                      margin: float = 0.05) -> Findings:
    """Say what a training run's numbers point at, most of all when accuracy stays near chance.

    Args:
        history: an :class:`alexnet_lab.history.History`, a Keras ``History`` or a dict of
            per-epoch lists (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``).
        num_classes: for the chance level (``1 / num_classes``) and the loss of a uniform guess
            (``ln num_classes``).
        inputs: optional, a batch as the model receives it: checked for scaling.
        model: optional, the trained model: its final outputs (probabilities? then double
            softmax) and its weights (all equal? then initialization) are looked at.
        predict: optional, the function you evaluate with: checked for training mode.
        margin: accuracy within this of chance counts as "near chance".

    Returns findings: errors for what is wrong, notes for what is worth a look, with numbers.
    """
    m = _metrics(history)
    loss, acc = _get(m, "loss", "train_loss"), _get(m, "accuracy", "acc", "train_accuracy")
    val_acc = _get(m, "val_accuracy", "val_acc")
    chance, uniform = chance_accuracy(num_classes), math.log(num_classes)
    findings: list[Finding] = []
    epochs = max(len(loss), len(val_acc), len(acc))
    final_acc = val_acc[-1] if val_acc else (acc[-1] if acc else None)
    which = "validation" if val_acc else "training"
    near_chance = final_acc is not None and final_acc <= chance + margin

    if loss and not all(math.isfinite(v) for v in loss):
        bad = next(i for i, v in enumerate(loss) if not math.isfinite(v))
        findings.append(Finding("training", "learning rate", "error",
                                f"the training loss became {loss[bad]} in epoch {bad + 1}: the updates blew the weights "
                                f"up. Lower the learning rate (try 10× smaller) or clip gradients."))
    elif len(loss) >= 2 and loss[-1] > 1.5 * loss[0] and loss[-1] > uniform:
        findings.append(Finding("training", "learning rate", "error",
                                f"the training loss grew from {loss[0]:.3f} to {loss[-1]:.3f} over {len(loss)} epochs: "
                                f"the learning rate is too high. Try 10× smaller."))
    if loss and math.isfinite(loss[0]) and loss[0] > 2 * uniform:
        findings.append(Finding("training", "initial loss", "note",
                                f"the first epoch's training loss {loss[0]:.3f} is far above ln {num_classes} = "
                                f"{uniform:.3f}, the loss of a uniform guess: the network starts out very confident "
                                f"and wrong (outputs far too large), so the first steps are spent undoing that. Start "
                                f"the last layer's weights at zero or small, lower the learning rate, or clip the "
                                f"gradients (clip_grad_norm=...)."))
    if near_chance:
        findings.append(Finding("training", "accuracy", "error",
                                f"{which} accuracy {_pct(final_acc)} after {epochs} epoch{'s' * (epochs != 1)} is at "
                                f"chance level ({_pct(chance)} for {num_classes} classes): the model has learned "
                                f"(almost) nothing."))
        if loss and all(math.isfinite(v) for v in loss):
            change = (loss[-1] - loss[0]) / max(abs(loss[0]), 1e-12)
            if abs(loss[-1] - uniform) < 0.02 * uniform:
                findings.append(Finding("training", "loss", "note",
                                        f"the training loss is {loss[-1]:.3f}, the loss of a uniform guess "
                                        f"(ln {num_classes} = {uniform:.3f}): the outputs barely depend on the input. "
                                        f"Usual causes: a learning rate far too small, weights initialized to zero "
                                        f"or tiny (dead ReLUs), or inputs that are nearly constant."))
            if len(loss) >= 2 and abs(change) < 0.02:
                findings.append(Finding("training", "learning rate", "note",
                                        f"the training loss barely moved ({loss[0]:.3f} → {loss[-1]:.3f}, "
                                        f"{100 * change:+.1f}%): the learning rate may be too small (try 10× larger), "
                                        f"or the gradients vanish (check initialization and input scaling)."))
    floor = double_softmax_loss_floor(num_classes)
    if len(loss) >= 2 and all(math.isfinite(v) for v in loss) and loss[-1] < 0.98 * loss[0] \
            and floor - 0.02 <= min(loss) <= floor + 0.15 and model is None:
        findings.append(Finding("training", "double softmax", "note",
                                f"the training loss levels off at {min(loss):.3f}, just above {floor:.2f}, the lowest "
                                f"loss a double softmax allows with {num_classes} classes: if your model ends with a "
                                f"softmax and the loss applies one too, remove the model's (pass model= to check)."))
    if acc and val_acc and acc[-1] - val_acc[-1] > 0.15:
        findings.append(Finding("training", "overfitting", "note",
                                f"training accuracy {_pct(acc[-1])} is far above validation accuracy "
                                f"{_pct(val_acc[-1])}: the model memorizes the training images. More data, "
                                f"augmentation, dropout or fewer epochs help."))
    if inputs is not None:
        findings.extend(f for f in check_inputs(inputs) if f.severity != "ok")
    if model is not None:
        framework = framework_of(model)
        try:
            outputs = _model_outputs(model, framework)
        except Exception:  # noqa: BLE001 - a model without a declared input shape
            outputs = None
        if outputs is not None and _looks_like_probabilities(outputs):
            findings.append(Finding("model", "double softmax", "error" if near_chance else "note",
                                    f"the model's outputs are probabilities (each row sums to "
                                    f"{outputs.sum(axis=1).mean():.3f}): it ends with a softmax. With a loss that "
                                    f"applies softmax itself that is the double softmax: the loss cannot go below "
                                    f"{double_softmax_loss_floor(num_classes):.2f}. Return logits instead."))
        findings.extend(f for f in check_initialization(model) if f.severity != "ok")
    if predict is not None and inputs is not None:
        findings.extend(f for f in check_eval_mode(predict, inputs, model=model) if f.severity != "ok")
    if not any(f.severity == "error" for f in findings):
        shown = f"{which} accuracy {_pct(final_acc)}" if final_acc is not None else "no accuracy recorded"
        findings.append(Finding("training", "summary", "ok",
                                f"nothing points at a bug: {shown} after {epochs} epochs "
                                f"(chance: {_pct(chance)})."))
    return findings


def assert_accuracy(history, threshold: float, num_classes: int, *, key: str = "val_accuracy",
                    **diagnose_kwargs) -> float:
    """Assert that the best ``key`` of a history reaches ``threshold``; if not, the message says why.

    Returns the best accuracy. The ``AssertionError`` gives the number, the threshold, and
    what :func:`diagnose_training` finds (pass ``inputs=``, ``model=``, ``predict=`` for more).
    """
    values = _get(_metrics(history), key)
    if not values:
        raise AssertionError(f"the history has no {key!r}: train with validation data so that it is recorded.")
    best = max(values)
    if best >= threshold:
        return best
    findings = diagnose_training(history, num_classes, **diagnose_kwargs)
    problems = [f.message for f in findings if f.severity == "error"] + \
        [f.message for f in findings if f.severity == "note"]
    reason = (" " + " ".join(problems[:3])) if problems else " Train longer or tune the learning rate."
    raise AssertionError(f"best {key.replace('_', ' ')} {_pct(best)} is below the required {_pct(threshold)}.{reason}")
