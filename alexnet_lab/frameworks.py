"""The framework adapter: which framework a model belongs to, the few things every layer above asks
of any model, and one call that seeds both frameworks.

It sits above the two framework sides and below the teaching helpers, the checks and the command
line, which use it instead of writing "if PyTorch ... else Keras" for these questions again:

* :func:`framework_of` -- ``"torch"`` or ``"keras"``, read from the model's classes;
* :func:`evaluating` -- a context manager: the model in evaluation mode inside, *every* submodule's
  own mode restored afterwards (PyTorch; Keras passes ``training=False`` per call instead);
* :func:`input_shape` -- the ``(H, W, C)`` images the model takes;
* :func:`seed_everything` -- Python, NumPy, PyTorch and TensorFlow/Keras seeded in one call.

Importing this module imports no framework: a model passed in has already imported its own, and
:func:`seed_everything` imports only the frameworks it seeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from alexnet_lab.core import seeding

__all__ = ["FRAMEWORKS", "framework_of", "evaluating", "training_mode", "input_shape", "seed_everything"]

FRAMEWORKS = ("torch", "keras")


def framework_of(model) -> str:
    """``"keras"`` or ``"torch"``, read from the model's classes (nothing is imported)."""
    for cls in type(model).__mro__:
        package = (cls.__module__ or "").split(".")[0]
        if package == "torch":
            return "torch"
        if package in ("keras", "tf_keras", "tensorflow"):
            return "keras"
    raise TypeError(f"Expected a Keras model or a PyTorch nn.Module, got {type(model).__name__}. "
                    "Pass the model object itself (not its class, its summary or its outputs).")


@contextlib.contextmanager
def _modes(model, training: bool) -> Iterator:
    if framework_of(model) != "torch":  # Keras has no mode: each call says training=True/False
        yield model
        return
    modes = {m: m.training for m in model.modules()}  # every submodule: a student may have set some apart
    try:
        model.train(training)
        yield model
    finally:
        for m, mode in modes.items():
            m.train(mode)


def evaluating(model):
    """Context manager: ``model`` in evaluation mode (dropout off, BatchNorm's running statistics)
    inside the ``with`` block, each submodule's own mode restored afterwards, even after an error::

        with evaluating(model), torch.no_grad():
            logits = model(x)

    A Keras model is yielded unchanged: call it with ``training=False``.
    """
    return _modes(model, False)


def training_mode(model):
    """Context manager: like :func:`evaluating`, with the model in training mode inside."""
    return _modes(model, True)


def input_shape(model) -> tuple[int, int, int]:
    """The ``(H, W, C)`` images the model takes.

    Keras models know it from their ``Input``; the course's PyTorch models record ``input_shape``
    as ``(C, H, W)``. A PyTorch module that does not raises a ``ValueError`` saying what to pass instead.
    """
    if framework_of(model) == "keras":
        h, w, c = model.inputs[0].shape[1:]
        return int(h), int(w), int(c)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(f"This PyTorch module ({type(model).__name__}) does not say which images it takes: "
                         "pass the image size explicitly (e.g. image_size=... or image_shape=(H, W, C)), "
                         "or build it with alexnet_lab.torch.models, whose models record input_shape.")
    c, h, w = shape
    return int(h), int(w), int(c)


def seed_everything(seed: int, *, deterministic: bool = True, frameworks: tuple[str, ...] | None = None) -> list[str]:
    """Seed Python, NumPy, PyTorch and TensorFlow/Keras with ``seed``.

    On a CPU, two seeded runs of the same PyTorch training give identical histories and
    identical weights (``tests/test_torch_training.py`` checks it). On a GPU, some kernels
    (atomic adds in convolution backward passes, for instance) are not bit-reproducible; with
    ``deterministic=True`` PyTorch and TensorFlow pick deterministic kernels where they have
    them, which can be slower. Only frameworks that are installed are seeded.

    Args:
        seed: a non-negative integer below 2**32.
        deterministic: also ask the frameworks for deterministic algorithms
            (``torch.use_deterministic_algorithms`` with ``warn_only=True``, cuDNN's
            deterministic mode, and TensorFlow's ``enable_op_determinism``). Slower on GPUs, and
            Keras then trains without XLA. ``False`` switches an earlier call's deterministic
            mode off again; seeded CPU runs still repeat exactly.
        frameworks: seed only these of ``("torch", "tensorflow")``. Default: every one that
            is installed. Pass ``("torch",)`` in a PyTorch-only notebook to avoid importing
            TensorFlow (which takes a few seconds).

    Returns:
        The names of what was seeded, e.g. ``["python", "numpy", "torch", "tensorflow"]``.
    """
    seed = seeding.check_seed(seed)
    wanted = seeding.check_frameworks(frameworks)
    seeded = seeding.seed_python(seed)
    if "torch" in wanted and seeding.installed("torch"):
        from alexnet_lab.torch import seeding as torch_seeding

        torch_seeding.seed(seed, deterministic=deterministic)
        seeded.append("torch")
    if "tensorflow" in wanted and seeding.installed("tensorflow"):
        from alexnet_lab.keras import seeding as keras_seeding

        keras_seeding.seed(seed, deterministic=deterministic)
        seeded.append("tensorflow")
    return seeded
