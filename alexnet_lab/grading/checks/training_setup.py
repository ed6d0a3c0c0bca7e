"""Is training set up right? The mistakes that let a model train badly without any error message.

* :func:`check_loss_setup`: what the model returns is what the loss expects (a softmax before
  a loss that applies softmax itself is the "double softmax"; logits into a loss that expects
  probabilities the opposite mistake);
* :func:`check_eval_mode`: evaluation with BatchNorm or dropout still in training mode;
* :func:`check_inputs`: images in 0-255, blank, scaled twice, or not standardized;
* :func:`check_initialization`: weights that start at zero, or far from He initialization's spread.

Each has an ``assert_*`` twin for graded cells (except :func:`check_initialization`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from alexnet_lab import frameworks
from alexnet_lab.grading.checks.results import Finding, Findings, as_findings, fail_with, to_numpy
from alexnet_lab.grading.checks.tracing import keras_layers

__all__ = [
    "check_loss_setup", "assert_loss_setup", "check_eval_mode", "assert_eval_mode", "check_inputs", "assert_inputs",
    "check_initialization", "double_softmax_loss_floor", "looks_like_probabilities", "model_outputs",
]


def double_softmax_loss_floor(num_classes: int) -> float:
    """The smallest cross-entropy a model can reach when its outputs are already softmax probabilities.

    Cross-entropy applies softmax to the probabilities again; even a perfect prediction (1 for
    the right class, 0 elsewhere) then gives ``-log(e / (e + C - 1)) = log(1 + (C - 1) / e)``.
    """
    return math.log(1 + (num_classes - 1) / math.e)


def looks_like_probabilities(outputs: np.ndarray) -> bool:
    """Whether ``outputs`` (a batch of rows) are probabilities: each between 0 and 1, each row summing to 1."""
    return (outputs.ndim == 2 and outputs.min() >= -1e-6 and outputs.max() <= 1 + 1e-6
            and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))


def _looks_like_log_probabilities(outputs: np.ndarray) -> bool:
    return outputs.ndim == 2 and outputs.max() <= 1e-6 and np.allclose(np.exp(outputs).sum(axis=1), 1.0, atol=1e-3)


def model_outputs(model, *, batch: int = 4, input_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """The model's outputs for a small random batch, in evaluation mode (each submodule's own mode restored).

    ``input_shape`` is (H, W, C); by default the model's own (:func:`alexnet_lab.frameworks.input_shape`).
    """
    h, w, c = input_shape or frameworks.input_shape(model)
    if frameworks.framework_of(model) == "keras":
        x = np.random.default_rng(1).standard_normal((batch, h, w, c)).astype("float32")
        return to_numpy(model(x, training=False))
    import torch

    device = next(model.parameters()).device
    x = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(1)).to(device)
    with frameworks.evaluating(model), torch.no_grad():
        return to_numpy(model(x))


def _loss_value(loss, framework: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    if framework == "keras":
        import keras

        fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        try:
            return float(to_numpy(fn(labels, outputs.astype("float32"))).mean())
        except Exception:  # noqa: BLE001 - a loss for one-hot labels
            onehot = np.eye(outputs.shape[1], dtype="float32")[labels]
            return float(to_numpy(fn(onehot, outputs.astype("float32"))).mean())
    import torch

    return float(loss(torch.tensor(outputs, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)))


def _loss_takes_logits(loss, framework: str, num_classes: int) -> bool:
    """Whether the loss applies softmax itself: cross-entropy on logits does not change when all logits shift."""
    z = np.linspace(1.0, 0.1, num_classes)[None, :].repeat(2, axis=0)
    labels = np.array([0, 1])
    return math.isclose(_loss_value(loss, framework, z, labels), _loss_value(loss, framework, z + 2.0, labels),
                        rel_tol=1e-4, abs_tol=1e-5)


# ---------------------------------------------------------------------------------------------
# Loss and outputs
# ---------------------------------------------------------------------------------------------
@as_findings
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
    framework = frameworks.framework_of(model)
    if input_shape is None:
        try:
            input_shape = frameworks.input_shape(model)
        except ValueError as e:
            raise ValueError(f"{e} Here: check_loss_setup(model, loss, input_shape=(H, W, C)).") from None
    outputs = model_outputs(model, input_shape=input_shape)
    num_classes = outputs.shape[1]
    takes_logits = _loss_takes_logits(loss, framework, num_classes)
    probs = looks_like_probabilities(outputs)
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
    fail_with(findings, "Loss set-up")
    return findings


# ---------------------------------------------------------------------------------------------
# Evaluation mode
# ---------------------------------------------------------------------------------------------
def _seed_frameworks(seed: int) -> None:
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


@as_findings
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
    x = to_numpy(images)
    if x.shape[0] < 2:
        raise ValueError(f"check_eval_mode needs a batch of at least 2 images, got {x.shape[0]}.")
    as_input = _like(images)
    # Change the second half of the batch, keep the first: in evaluation mode the first half's outputs stay.
    # PyTorch's random generator is reset before each call, so dropout (if on) draws the same masks both times.
    k = x.shape[0] // 2
    changed = x.copy()
    changed[k:] = 0.0
    _seed_frameworks(0)
    a = to_numpy(predict(as_input(x)))
    _seed_frameworks(0)
    b = to_numpy(predict(as_input(changed)))
    batch_gap = float(np.abs(a[:k] - b[:k]).max())
    again = to_numpy(predict(as_input(x)))  # no reset: dropout, if on, draws new masks
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
    if model is not None and frameworks.framework_of(model) == "torch":
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
    fail_with(findings, "Evaluation mode")
    return findings


# ---------------------------------------------------------------------------------------------
# Inputs and initialization
# ---------------------------------------------------------------------------------------------
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


@as_findings
def check_inputs(inputs, *, standardized: bool = False) -> Findings:
    """Look at a batch of model inputs: are they scaled the way a network wants them?

    Networks train best on inputs of roughly zero mean and unit spread. Raw pixels (0-255) make
    the first layer's outputs hundreds of times too large; inputs that are all nearly the same
    (blank images, or normalized twice) give the network nothing to learn from. With
    ``standardized=True`` the batch must also be standardized: mean within ±0.25 of 0 and
    standard deviation between 0.5 and 2 (pixels merely divided by 255 are not).
    """
    x = to_numpy(inputs)
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
                        f"preprocessing.channel_stats(train)), so that they have mean about 0 and std about 1.")]
    if abs(mean) > 3 * std:
        return [Finding("inputs", "scaling", "note",
                        f"the inputs are far from zero-centred ({stats}): subtracting the mean helps training.")]
    return [Finding("inputs", "scaling", "ok", f"inputs look reasonably scaled ({stats}).")]


def assert_inputs(inputs, *, standardized: bool = False) -> Findings:
    """:func:`check_inputs`, raising an ``AssertionError`` that says what is wrong with the scaling."""
    findings = check_inputs(inputs, standardized=standardized)
    fail_with(findings, "Inputs")
    return findings


@as_findings
def check_initialization(model) -> Findings:
    """Compare each convolution's and fully connected layer's weight spread with He initialization.

    He initialization (the course's models use its uniform form) gives weights a standard
    deviation of ``sqrt(2 / fan_in)``: with that, signals neither die out nor blow up through
    ReLU layers. Weights all zero, or 10× too small or too large, stall training. The output layer
    is the exception: it feeds the softmax, not a ReLU, and starting it at zero (as the course's
    models do) or small gives every class the same score, the first loss ln C; each class still
    gets its own gradient, so its units become different. Only a too large output layer is reported.
    """
    framework = frameworks.framework_of(model)
    weights = []
    if framework == "torch":
        from torch import nn

        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weights.append((name, to_numpy(m.weight)))
    else:
        for layer in keras_layers(model):
            kernel = getattr(layer, "kernel", None)
            if kernel is not None and len(kernel.shape) in (2, 4):
                w = to_numpy(kernel)
                weights.append((layer.name, w))
    findings = []
    for i, (name, w) in enumerate(weights):
        fan_in = int(np.prod(w.shape[1:])) if framework == "torch" else int(np.prod(w.shape[:-1]))
        he = math.sqrt(2.0 / fan_in)
        std = float(w.std())
        if i == len(weights) - 1 and std / he <= 10:
            continue  # the output layer may start at zero or small (see above)
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
