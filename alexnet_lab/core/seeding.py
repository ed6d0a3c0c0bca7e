"""Seeds: Python's and NumPy's generators, and the seed of the last call (framework-free).

:func:`alexnet_lab.seed_everything` (in :mod:`alexnet_lab.frameworks`) seeds these, then each
installed framework through its side's ``seeding.seed`` (:mod:`alexnet_lab.torch.seeding`,
:mod:`alexnet_lab.keras.seeding`), so that dropout masks, weight initialization and data shuffling
repeat from run to run::

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

__all__ = ["FRAMEWORKS", "check_seed", "check_frameworks", "seed_python", "current_seed", "installed"]

#: The frameworks that :func:`alexnet_lab.seed_everything` can seed.
FRAMEWORKS = ("torch", "tensorflow")

_current_seed: int | None = None


def current_seed() -> int | None:
    """The seed given to the last ``seed_everything`` call in this process (None if never called)."""
    return _current_seed


def check_seed(seed) -> int:
    """``seed`` as an ``int``; a ``ValueError`` unless it is an integer in 0..2**32-1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}.")
    return int(seed)


def check_frameworks(frameworks: tuple[str, ...] | None) -> tuple[str, ...]:
    """The frameworks to seed: ``frameworks``, or every known one for ``None``; unknown names are refused."""
    wanted = FRAMEWORKS if frameworks is None else tuple(frameworks)
    unknown = [f for f in wanted if f not in FRAMEWORKS]
    if unknown:
        raise ValueError(f"Unknown framework(s) {unknown}; choose from {FRAMEWORKS}.")
    return wanted


def seed_python(seed: int) -> list[str]:
    """Seed Python's ``random`` and NumPy's global generator, and remember ``seed`` (:func:`current_seed`)."""
    global _current_seed
    seed = check_seed(seed)
    # Only affects Python processes started from here on (e.g. DataLoader workers that are spawned).
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    _current_seed = seed
    return ["python", "numpy"]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    return importlib.util.find_spec(module) is not None
