"""Where Keras trains, and whether mixed precision and XLA compiling pay off there.

Read this file beside :mod:`alexnet_lab.torch.precision`: the same questions with the same
function names and the same rules, answered for TensorFlow:

* :func:`describe_device` -- the GPU (or CPU) Keras trains on, in one line.
* :func:`cuda_capability` -- the GPU's compute capability.
* :func:`choose_precision` -- the Keras dtype policy: float32, or bfloat16/float16 mixed precision.
* :func:`choose_compile` -- compile the training step with XLA (``jit_compile``)?

Each takes the device first: None (the default) means the one Keras trains on, the first GPU
TensorFlow sees, else the CPU; ``"CPU"``, ``"GPU"`` or ``"GPU:1"`` name one.

Two things differ from PyTorch. Mixed precision in Keras is a property of the *model*, fixed
when it is built: call :func:`use_mixed_precision` before building it (``keras_models.build``
then keeps the last layer in float32, so the loss is computed accurately), and
:func:`check_precision` says when a built model does not match what ``fit`` is asked for. And
Keras has no channels-last choice: its models are channels-last (NHWC) already.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_lab.core import hardware  # noqa: E402

__all__ = ["describe_device", "cuda_capability", "choose_precision", "choose_compile", "use_mixed_precision",
           "check_precision"]

_PRECISION_MODES = ("auto", True, False, "bf16", "fp16")  # for error messages


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------
def _gpus():
    return tf.config.list_physical_devices("GPU")


def _gpu(device):
    """The GPU ``device`` names (a TensorFlow physical device), or None for the CPU.

    None: the first GPU if TensorFlow sees one, else the CPU. Names: ``"CPU"``, ``"GPU"``, ``"GPU:1"``
    (any case, with or without a leading ``/``; ``"cuda"`` and ``"cuda:1"`` mean the same GPUs).
    """
    gpus = _gpus()
    if device is None:
        return gpus[0] if gpus else None
    name = device.lower().lstrip("/") if isinstance(device, str) else None
    if name is not None and name.startswith("device:"):
        name = name[len("device:"):]
    kind, _, index = (name or "").partition(":")
    if name is None or kind not in ("cpu", "gpu", "cuda") or (index and not index.isdigit()):
        raise ValueError(f"Unknown device {device!r}: choose 'CPU', 'GPU' or 'GPU:<index>', or None for the one "
                         "Keras trains on. (The device comes first: choose_precision(device, mode), "
                         "choose_compile(device, mode).)")
    if kind == "cpu":
        return None
    number = int(index or 0)
    if number >= len(gpus):
        raise ValueError(f"Device {device!r} asked for, but TensorFlow sees {len(gpus)} GPU(s). Use None or 'CPU'.")
    return gpus[number]


def cuda_capability(device=None) -> tuple[int, int] | None:
    """The GPU's compute capability, e.g. ``(8, 0)`` for an A100; None for the CPU (or when TensorFlow does not say)."""
    gpu = _gpu(device)
    if gpu is None:
        return None
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    return tuple(capability) if capability else None


def describe_device(device=None) -> str:
    """A one-line description, e.g. ``"GPU:0 (NVIDIA H100 80GB HBM3, compute capability 9.0)"``.

    ``device``: None (the GPU or CPU Keras trains on), ``"CPU"``, ``"GPU"`` or ``"GPU:1"``.
    """
    gpu = _gpu(device)
    if gpu is None:
        return f"CPU ({hardware.cpu_name()})"
    details = tf.config.experimental.get_device_details(gpu)
    capability = details.get("compute_capability")
    extra = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
    return f"GPU:{_gpus().index(gpu)} ({details.get('device_name', 'GPU')}{extra})"


# ---------------------------------------------------------------------------
# Mixed precision: the dtype policy
# ---------------------------------------------------------------------------
def choose_precision(device=None, mode: str | bool = "auto") -> tuple[str, str]:
    """The Keras dtype policy for ``mode`` on ``device``, and the reason: ``("mixed_bfloat16", "...")``.

    Same rules as :func:`alexnet_lab.torch.precision.choose_precision`: ``"auto"`` uses bfloat16
    on GPUs of compute capability >= 8.0 and on CPUs with AMX/AVX512-BF16, float16 on
    capability 7.x GPUs, float32 elsewhere; ``True``, ``False``, ``"bf16"`` and ``"fp16"`` force a choice.
    Pass the policy to :func:`use_mixed_precision` (which calls this) before building the model.
    """
    if not (isinstance(mode, bool) or mode in ("auto", "bf16", "fp16")):
        raise ValueError(f"mixed_precision must be one of {_PRECISION_MODES}, got {mode!r}.")
    if mode == "auto" and hardware.mixed_precision_from_env() != "auto":
        policy, reason = choose_precision(device, hardware.mixed_precision_from_env())
        return policy, f"{reason} ({hardware.PRECISION_ENV_VAR})"
    gpu = _gpu(device)
    if mode is False:
        return "float32", "mixed precision switched off"
    if mode == "bf16":
        return "mixed_bfloat16", "bfloat16 asked for"
    if mode == "fp16":
        return "mixed_float16", "float16 asked for"
    if gpu is not None:
        capability = cuda_capability(device) or (0, 0)
        if capability >= (8, 0):
            return "mixed_bfloat16", f"GPU compute capability {capability[0]}.{capability[1]} >= 8.0"
        if capability >= (7, 0) or mode is True:
            return "mixed_float16", f"GPU compute capability {capability[0]}.{capability[1]}: float16 tensor cores"
        return "float32", f"GPU compute capability {capability[0]}.{capability[1]} < 7.0 has no tensor cores"
    if hardware.cpu_has_fast_bf16():
        return "mixed_bfloat16", "this CPU has AMX/AVX512-BF16"
    if mode is True:
        return "mixed_bfloat16", "asked for; this CPU has no AMX/AVX512-BF16, expect it to be slower"
    return "float32", "this CPU has no AMX/AVX512-BF16: bfloat16 would be emulated and slower"


def use_mixed_precision(mode: str | bool = "auto", *, verbose: int = 1) -> str:
    """Set Keras' global dtype policy; call it BEFORE building the model. Returns the policy's name.

    Models built afterwards compute in 16 bits where the policy says so and keep their
    weights in float32; ``use_mixed_precision(False)`` goes back to float32. Example::

        keras_precision.use_mixed_precision("auto")   # prints which policy and why
        model = keras_models.alexnet("cifar10")        # built under that policy
    """
    policy, reason = choose_precision(None, mode)
    keras.mixed_precision.set_global_policy(policy)
    if verbose:
        print(f"alexnet-lab: Keras dtype policy {policy} ({reason}); build the model after this call.")
    return policy


def _model_policy(model: keras.Model) -> str:
    """The dtype policy the model's layers were built with (``float32``, ``mixed_bfloat16``, ...)."""
    for layer in model.layers:
        if layer.weights:
            return layer.dtype_policy.name
    return model.dtype_policy.name


def check_precision(model: keras.Model, mode: str | bool | None = "auto") -> str:
    """The dtype policy ``model`` was built with, checked against ``mode``; Keras cannot change it after building.

    ``"auto"`` and None accept whatever the model was built with; True, False, ``"bf16"`` and
    ``"fp16"`` raise a ``ValueError`` that says how to rebuild the model when it does not match.
    """
    policy = _model_policy(model)
    wanted = {False: ("float32",), True: ("mixed_bfloat16", "mixed_float16"), "bf16": ("mixed_bfloat16",),
              "fp16": ("mixed_float16",)}
    if mode is None or mode == "auto":
        return policy
    if isinstance(mode, str) and mode not in wanted or not isinstance(mode, (bool, str)):
        raise ValueError(f"mixed_precision must be one of {_PRECISION_MODES}, got {mode!r}.")
    if policy not in wanted[mode]:
        raise ValueError(f"The model was built with the dtype policy {policy!r}, but mixed_precision={mode!r} asks "
                         f"for {' or '.join(wanted[mode])}. In Keras the policy is fixed when the model is built: call "
                         f"keras_precision.use_mixed_precision({mode!r}) and build the model again.")
    return policy


# ---------------------------------------------------------------------------
# XLA
# ---------------------------------------------------------------------------
def choose_compile(device=None, mode: str | bool = "auto", *,
                   model: keras.Model | None = None) -> tuple[bool | str, str]:
    """Whether ``fit`` compiles the model's steps with XLA (``jit_compile``); returns ``(value, reason)``.

    ``"auto"`` turns XLA on for GPUs (Keras' own default) and for CPUs without AVX-512, where it
    was measured faster; on CPUs with AVX-512 it leaves it off, since TensorFlow's own oneDNN kernels
    were measured faster there (see docs/performance.md).
    It stays off where Keras would refuse it: under a ``tf.distribute`` strategy
    (Keras' ``"auto"`` decides; ``model``: one built under a strategy), and with TensorFlow's
    deterministic ops on, which ``alexnet_lab.seed_everything(seed)`` switches on
    (``deterministic=False`` keeps XLA). ``True``/``False`` force it on or off.
    PyTorch's counterpart is ``torch.compile`` (:func:`alexnet_lab.torch.precision.choose_compile`).
    """
    if isinstance(mode, bool):
        return mode, "asked for" if mode else "switched off"
    if mode != "auto":
        raise ValueError(f"compile must be 'auto', True or False, got {mode!r}.")
    gpu = _gpu(device)
    if tf.distribute.has_strategy() or getattr(model, "_distribute_strategy", None) is not None:
        return "auto", "a tf.distribute strategy: Keras decides"
    if _op_determinism_enabled():
        return False, ("deterministic ops are on (seed_everything(..., deterministic=True)) and Keras runs no XLA "
                       "then; deterministic=False gives XLA's speed")
    if gpu is not None:
        return True, "Keras' own default on GPUs"
    if "avx512f" in hardware.cpu_flags():
        return False, ("measured slower on an AVX-512 CPU, where TensorFlow's own oneDNN kernels win (0.75 to 0.86 "
                       "times their speed); compile=True forces it")
    return True, "measured faster on an AVX2 CPU"


def _op_determinism_enabled() -> bool:
    """Whether ``tf.config.experimental.enable_op_determinism()`` is in force (Keras then refuses XLA)."""
    try:
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:  # moved in a newer TensorFlow: let Keras decide and warn
        return False
    return bool(is_op_determinism_enabled())
