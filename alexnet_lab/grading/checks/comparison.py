"""A student's model against the reference AlexNet: :func:`check_model` and :func:`assert_model_matches`.

The model is traced (:func:`~alexnet_lab.grading.checks.tracing.trace_model`), its layers are
aligned with the framework-free reference of :mod:`alexnet_lab.core.architecture` (fewest
insertions, deletions and substitutions), and each pair is compared: kind, output shape,
parameter count, activation function, pooling window, dropout rate. A shape or parameter
difference is reported only where the layer's input is the reference's, so that the first
mistake is named and not the differences that follow from it; every message says what to
write instead, in the student's framework (:func:`_code_hint`)::

    conv1 gives 54×54×96 where the reference gives 55×55×96: (n + 2p − k) / s + 1 =
    (224 + 2·0 − 11) / 4 + 1 = 54 (rounded down). For a 224×224 input use padding=2,
    or feed 227×227 images.
"""

from __future__ import annotations

import math

from alexnet_lab.core import architecture as arch
from alexnet_lab.frameworks import framework_of
from alexnet_lab.grading.checks.results import CheckReport, Finding, fail_with, format_shape
from alexnet_lab.grading.checks.tracing import ObservedLayer, trace_model

__all__ = ["check_model", "assert_model_matches"]


# ---------------------------------------------------------------------------------------------
# Aligning the layers, and saying what they are
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
        return ("alexnet_lab.keras.models.LocalResponseNormalization()" if keras else
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
    return f"{name} gives {format_shape(got)} where the reference gives {format_shape(want)}: {why}{fix}"


# ---------------------------------------------------------------------------------------------
# Comparing one layer, and naming a missing, extra or different one
# ---------------------------------------------------------------------------------------------
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
            error("config", f"{name} uses {format_shape(cfg['kernel'])} kernels with stride {format_shape(cfg['stride'])} where "
                            f"the reference uses {spec.kernel}×{spec.kernel} with stride {spec.stride}: "
                            f"use {_code_hint(spec, framework, ref_in)}.")
        if cfg.get("groups", 1) != spec.groups:
            error("config", f"{name} uses groups={cfg.get('groups', 1)} where the reference uses groups={spec.groups}.")
    elif isinstance(spec, (arch.MaxPool, arch.AvgPool)):
        if cfg["size"] != (spec.size, spec.size) or cfg["stride"] != (spec.stride, spec.stride):
            error("pooling", f"{name} pools {format_shape(cfg['size'])} windows with stride {format_shape(cfg['stride'])} where "
                             f"the reference pools {spec.size}×{spec.size} windows with stride {spec.stride} "
                             f"(overlapping pooling): use {_code_hint(spec, framework, ref_in)}.")
    elif isinstance(spec, arch.AdaptiveAvgPool):
        if cfg.get("output") not in (None, (spec.output, spec.output)):
            error("pooling", f"{name} pools to {format_shape(cfg['output'])} where the reference pools to "
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
            error("config", f"{name} resizes to {format_shape(cfg['size'])} where the reference resizes to "
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
                                     f"{name} gives {format_shape(obs.output_shape)} where the reference gives "
                                     f"{format_shape(row.output_shape)}."))
        elif obs.params != row.params:
            found.append(_params_finding(name, spec, row, obs, before_batchnorm))
    if not found:
        found.append(Finding(spec.name, "layer", "ok", f"{name}: {format_shape(obs.output_shape)}, {obs.params:,} parameters"))
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


# ---------------------------------------------------------------------------------------------
# The whole model
# ---------------------------------------------------------------------------------------------
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
        preset: the reference: a preset name of :mod:`alexnet_lab.core.architecture` (``"classic"``,
            ``"paper"``, ...), ``"lenet5"``, or a :class:`~alexnet_lab.core.architecture.Preset` of
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
            f"your model takes {format_shape(trace.declared_input)} images where the reference takes {format_shape(ref_input)}"
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
            table.append(("✗" if bad else "↓" if differs else "✓", spec.name, format_shape(rows[ri].output_shape),
                          format_shape(obs.output_shape) if obs else "missing", f"{rows[ri].params:,}",
                          f"{obs.params:,}" if obs else "-"))
            prev_name = spec.name
            seen_spatial = seen_spatial or isinstance(spec, (arch.Conv, arch.MaxPool, arch.AvgPool))
        elif obs is not None:
            table.append(("✗", f"(extra) {obs.name}", "-", format_shape(obs.output_shape), "-", f"{obs.params:,}"))

    reached = {ri for ri, _ in pairs if ri is not None}
    for ri, spec in enumerate(specs):
        if ri not in reached:
            table.append(("", spec.name, format_shape(rows[ri].output_shape), "not reached", f"{rows[ri].params:,}", "-"))
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
    fail_with(report, report.title)
    return report

