"""Seeding PyTorch: its generators and, when asked, its deterministic algorithms.

Called by :func:`alexnet_lab.seed_everything`, which seeds Python and NumPy first.
"""

from __future__ import annotations

import os

__all__ = ["seed"]


def seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed PyTorch (CPU and every CUDA device); with ``deterministic``, ask for deterministic kernels."""
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
