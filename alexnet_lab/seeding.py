"""One call that seeds every random number generator the course uses.

``seed_everything(0)`` seeds Python's ``random``, NumPy, PyTorch and TensorFlow/Keras, so
that dropout masks, weight initialization and data shuffling repeat from run to run::

    import alexnet_lab
    alexnet_lab.seed_everything(0)

On a CPU, two seeded runs of the same PyTorch training give identical histories and
identical weights (``tests/test_torch_training.py`` checks it). On a GPU, some kernels
(atomic adds in convolution backward passes, for instance) are not bit-reproducible; with
``deterministic=True`` PyTorch and TensorFlow pick deterministic kernels where they have
them, which can be slower.

Only frameworks that are installed are seeded; the return value says which.
"""

from __future__ import annotations

import importlib.util
import os
import random

import numpy as np

__all__ = ["seed_everything", "current_seed"]

_current_seed: int | None = None


def current_seed() -> int | None:
    """The seed given to the last :func:`seed_everything` call in this process (None if never called)."""
    return _current_seed


def seed_everything(seed: int, *, deterministic: bool = True, frameworks: tuple[str, ...] | None = None) -> list[str]:
    """Seed Python, NumPy, PyTorch and TensorFlow/Keras with ``seed``.

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
    global _current_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}.")
    seed = int(seed)
    known = ("torch", "tensorflow")
    wanted = known if frameworks is None else tuple(frameworks)
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise ValueError(f"Unknown framework(s) {unknown}; choose from {known}.")

    # Only affects Python processes started from here on (e.g. DataLoader workers that are spawned).
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    seeded = ["python", "numpy"]
    if "torch" in wanted and _installed("torch"):
        _seed_torch(seed, deterministic)
        seeded.append("torch")
    if "tensorflow" in wanted and _installed("tensorflow"):
        _seed_tensorflow(seed, deterministic)
        seeded.append("tensorflow")
    _current_seed = seed
    return seeded


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _seed_torch(seed: int, deterministic: bool) -> None:
    import torch

    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device's
    if deterministic:
        # cuBLAS needs this set before its first use to be deterministic; harmless on a CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: ops that have no deterministic version (e.g. bilinear upsampling's backward
        # pass on CUDA) warn instead of stopping the training.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.are_deterministic_algorithms_enabled():  # back to PyTorch's default
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def _seed_tensorflow(seed: int, deterministic: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend (tf.random) in one call
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # back to TensorFlow's default, e.g. after an earlier seed_everything(seed)
        from tensorflow.python.framework import config as tf_config

        if getattr(tf_config, "is_op_determinism_enabled", lambda: False)():
            tf_config.disable_op_determinism()
