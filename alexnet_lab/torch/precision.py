"""Where to train, and whether mixed precision, channels-last memory and compiling pay off there.

Read this file beside :mod:`alexnet_lab.keras.precision`, which answers the same questions for
Keras with the same function names (:func:`describe_device`, :func:`cuda_capability`,
:func:`choose_precision`, :func:`choose_compile`). Four questions, each answered by one function:

* :func:`torch_device` -- which device: a CUDA GPU, Apple's MPS, or the CPU. It says which, once.
* :func:`choose_precision` -- train in float32, or with bfloat16/float16 *autocast*
  (matrix products and convolutions in 16 bits, weights and the loss in float32)?
* :func:`choose_channels_last` -- store images and convolution weights as NHWC in memory?
* :func:`choose_compile` -- run the model through ``torch.compile``?

Each takes the device first; None means the device :func:`torch_device` picks.

With ``"auto"`` (the default everywhere) a speed-up is switched on only where it is known
to be faster on that hardware, and the choice comes with its reason:

================================  ==============  ==================  ====================
hardware                          mixed precision  channels-last       why
================================  ==============  ==================  ====================
NVIDIA GPU, compute capability    bfloat16         on                  tensor cores run
>= 8.0 (A100, RTX 30xx, H100...)                                       16-bit convs in NHWC
NVIDIA GPU, capability 7.x        float16 + loss   on                  tensor cores, but no
(V100, T4, RTX 20xx)              scaling                              bfloat16
older NVIDIA GPU                  off              off                 no tensor cores
CPU with AMX or AVX512-BF16       bfloat16         off                 bf16 dot products in
                                                                       hardware
other CPUs (e.g. AVX2 only)       off              off                 bf16 is emulated:
                                                                       ~10x slower here
Apple MPS                         off              off                 not measured
================================  ==============  ==================  ====================

The CPU rows are measured (see docs/performance.md); the GPU rows follow NVIDIA's and
PyTorch's guidance for tensor cores. Run the benchmark on your machine (``alexnet-lab bench``),
and pass ``mixed_precision=False`` or ``channels_last=False`` to ``fit`` to switch either off.

The CPU's facts (its flags, name and vector units) live in :mod:`alexnet_lab.core.hardware`, shared
with the Keras side.
"""

from __future__ import annotations

from dataclasses import dataclass

from alexnet_lab.core import hardware

__all__ = [
    "torch_device", "describe_device", "cuda_capability",
    "Precision", "choose_precision", "choose_channels_last", "choose_compile",
]

_DEVICE_KINDS = ("cuda", "mps", "cpu")
_PRECISION_MODES = ("auto", True, False, "bf16", "fp16")  # for error messages
_announced: set[str] = set()


# ---------------------------------------------------------------------------
# PyTorch devices
# ---------------------------------------------------------------------------
def torch_device(prefer: str | None = None, *, announce: bool = True):
    """The ``torch.device`` to train on: CUDA if there is a GPU, else Apple's MPS, else the CPU.

    Args:
        prefer: ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"`` to choose yourself; a
            device that is not available raises ``ValueError``.
        announce: print which device was chosen (once per device and process).
    """
    import torch

    if prefer is None:
        if torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        elif _mps_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        try:
            device = torch.device(prefer)
        except RuntimeError as e:
            raise ValueError(f"Unknown device {prefer!r}: choose one of {', '.join(_DEVICE_KINDS)} "
                             "(or None to pick).") from e
        if device.type not in _DEVICE_KINDS:
            raise ValueError(f"Unknown device {prefer!r}: choose one of {', '.join(_DEVICE_KINDS)} (or None to pick).")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"Device {prefer!r} asked for, but PyTorch sees no CUDA GPU (torch "
                                 f"{torch.__version__}). Use prefer=None or 'cpu', or install a CUDA build of PyTorch.")
            index = torch.cuda.current_device() if device.index is None else device.index
            if index >= torch.cuda.device_count():
                raise ValueError(f"Device {prefer!r} asked for, but there are only {torch.cuda.device_count()} GPU(s).")
            device = torch.device("cuda", index)
        if device.type == "mps" and not _mps_available():
            raise ValueError("Device 'mps' asked for, but Apple's Metal backend is not available here. "
                             "Use prefer=None or 'cpu'.")
    if announce and str(device) not in _announced:
        _announced.add(str(device))
        print(f"alexnet-lab: training on {describe_device(device)}")
    return device


def _mps_available() -> bool:
    import torch

    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _device(device):
    """``device`` as a ``torch.device``; None: the one :func:`torch_device` picks (silently)."""
    import torch

    return torch_device(announce=False) if device is None else torch.device(device)


def describe_device(device=None) -> str:
    """A one-line description, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3, compute capability 9.0)"``.

    ``device``: a ``torch.device`` or its name; None: the device :func:`torch_device` picks.
    """
    import torch

    device = _device(device)
    if device.type == "cuda":
        major, minor = cuda_capability(device)
        return f"{device} ({torch.cuda.get_device_name(device)}, compute capability {major}.{minor})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({hardware.cpu_name()}, {torch.get_num_threads()} threads)"


def cuda_capability(device=None) -> tuple[int, int] | None:
    """The GPU's compute capability, e.g. ``(8, 0)`` for an A100; None for a CPU or MPS device."""
    import torch

    device = _device(device)
    if device.type != "cuda":
        return None
    return tuple(torch.cuda.get_device_capability(device))


# ---------------------------------------------------------------------------
# Mixed precision and memory format
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Precision:
    """How to train: ``dtype`` is what autocast computes in; float32 means no autocast.

    ``grad_scaling`` is True for float16, whose small range needs the loss scaled up before
    the backward pass (``torch.amp.GradScaler``) so small gradients do not round to zero.
    """

    dtype: str  # "float32", "bfloat16" or "float16"
    grad_scaling: bool
    reason: str

    @property
    def autocast(self) -> bool:
        return self.dtype != "float32"

    @property
    def torch_dtype(self):
        import torch

        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]

    def __str__(self) -> str:
        name = self.dtype if not self.autocast else f"{self.dtype} autocast" + (" + loss scaling" * self.grad_scaling)
        return f"{name} ({self.reason})"


def choose_precision(device=None, mode: str | bool = "auto") -> Precision:
    """Decide between float32 and bfloat16/float16 mixed precision on ``device``.

    Args:
        device: a ``torch.device`` (or its name); None: the device :func:`torch_device` picks.
        mode: ``"auto"`` (on only where known to be faster, see the module's table),
            ``True`` (the best 16-bit type the device has), ``False`` (float32),
            ``"bf16"`` or ``"fp16"`` (that type, even where it is slow).
    """

    if not (isinstance(mode, bool) or mode in ("auto", "bf16", "fp16")):
        raise ValueError(f"mixed_precision must be one of {_PRECISION_MODES}, got {mode!r}.")
    device = _device(device)
    if mode == "auto" and hardware.mixed_precision_from_env() != "auto":
        chosen = choose_precision(device, hardware.mixed_precision_from_env())
        return Precision(chosen.dtype, chosen.grad_scaling, f"{chosen.reason} ({hardware.PRECISION_ENV_VAR})")
    if mode is False:
        return Precision("float32", False, "mixed precision switched off")
    if mode == "fp16":
        return Precision("float16", True, "float16 asked for")
    capability = cuda_capability(device)
    if mode == "bf16":
        if device.type == "cuda" and capability < (8, 0):
            raise ValueError(f"This GPU (compute capability {capability[0]}.{capability[1]}) has no bfloat16 "
                             "support; use mixed_precision='fp16' or True.")
        slow = device.type == "cpu" and not hardware.cpu_has_fast_bf16()
        return Precision("bfloat16", False, "bfloat16 asked for" + (
            "; this CPU has no AMX/AVX512-BF16, expect it to be slower than float32" if slow else ""))
    if device.type == "cuda":
        if capability >= (8, 0):
            return Precision("bfloat16", False, f"GPU compute capability {capability[0]}.{capability[1]} >= 8.0 "
                                                "runs bfloat16 on tensor cores")
        if capability >= (7, 0) or mode is True:
            return Precision("float16", True, f"GPU compute capability {capability[0]}.{capability[1]}: "
                                              "float16 tensor cores, no bfloat16")
        return Precision("float32", False, f"GPU compute capability {capability[0]}.{capability[1]} < 7.0 "
                                           "has no tensor cores")
    if device.type == "mps":
        if mode is True:
            return Precision("float16", True, "Apple GPU: float16 asked for with mixed_precision=True")
        return Precision("float32", False, "not measured on Apple GPUs; pass mixed_precision=True to try float16")
    # CPU
    if hardware.cpu_has_fast_bf16():
        return Precision("bfloat16", False, "this CPU has AMX/AVX512-BF16")
    if mode is True:
        return Precision("bfloat16", False, "asked for; this CPU has no AMX/AVX512-BF16, expect it to be slower")
    return Precision("float32", False, "this CPU has no AMX/AVX512-BF16: bfloat16 would be emulated and slower")


def choose_channels_last(device=None, mode: str | bool = "auto",
                         precision: Precision | None = None) -> tuple[bool, str]:
    """Decide whether to keep images and weights channels-last (NHWC) in memory; returns ``(on, reason)``.

    ``"auto"`` turns it on for NVIDIA GPUs with tensor cores (compute capability >= 7.0)
    when training in 16 bits: cuDNN's tensor-core convolutions work in NHWC, so NCHW
    tensors would be transposed at every layer. On CPUs it is off: not measured faster
    there (see docs/performance.md). Keras has no such choice: its models are channels-last.
    """

    if isinstance(mode, bool):
        return mode, "asked for" if mode else "switched off"
    if mode != "auto":
        raise ValueError(f"channels_last must be 'auto', True or False, got {mode!r}.")
    device = _device(device)
    capability = cuda_capability(device)
    if device.type == "cuda" and capability >= (7, 0) and precision is not None and precision.autocast:
        return True, "16-bit tensor-core convolutions run in NHWC"
    if device.type == "cuda":
        return False, "float32 on this GPU: not measured faster"
    return False, f"not measured faster on {device.type.upper()}"


def choose_compile(device=None, mode: str | bool = "auto") -> tuple[bool, str]:
    """Decide whether to run the model through ``torch.compile``; returns ``(on, reason)``.

    ``"auto"`` leaves it off: on a CPU it sped up only the small-image model, after minutes of
    compiling (again for each new batch shape; it needs a C++ compiler), and on GPUs it has not been
    measured yet (see docs/performance.md). ``True`` compiles: worth it for long runs of small-image
    models. Keras' counterpart is XLA (:func:`alexnet_lab.keras.precision.choose_compile`).
    """

    if isinstance(mode, bool):
        return mode, "asked for" if mode else "switched off"
    if mode != "auto":
        raise ValueError(f"compile must be 'auto', True or False, got {mode!r}.")
    device = _device(device)
    if device.type == "cpu":
        return False, ("on an AVX2 CPU it sped up only the small cifar10 model, after minutes of compiling; "
                       "pass compile=True for long runs")
    return False, f"not measured on {device.type.upper()} yet: try compile=True and alexnet-lab bench --candidates"
