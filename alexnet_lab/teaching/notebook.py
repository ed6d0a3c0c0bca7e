"""What every notebook of the course does first: pick the profile, say what it means, seed, show versions.

A notebook's first code cells are::

    PROFILE = None  # "smoke", "laptop" or "full"; None: $ALEXNET_LAB_PROFILE, else "laptop"   (tagged `parameters`)

    from alexnet_lab.teaching import notebook
    profile = notebook.start(PROFILE, seed=0)

``start`` imports neither TensorFlow nor PyTorch itself, but quietens TensorFlow's start-up
messages for the imports that follow.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import warnings


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up log and Python deprecation noise; call before ``import tensorflow``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    # TensorFlow's Python warnings, e.g. "triggered tf.function retracing" when a notebook builds several
    # models: true, but nothing a student should act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(tensorflow|keras|google|absl)")


def versions() -> str:
    """One line with the versions of Python and the frameworks that are installed (without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"Python {platform.python_version()}"]
    for dist in ("torch", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            parts.append(f"{dist.replace('-cpu', '')} {version(dist)}")
        except PackageNotFoundError:
            continue
    seen, unique = set(), []
    for p in parts:
        if p.split()[0] not in seen:
            seen.add(p.split()[0])
            unique.append(p)
    return ", ".join(unique)


def start(profile_name: str | None = None, *, seed: int | None = 0, topic: str | None = None):
    """Activate a run profile, print what it means, seed every library, and return the profile.

    ``topic``: a training notebook's entry in :data:`alexnet_lab.core.profiles.NOTEBOOKS` (e.g.
    ``"cifar10"``); the profile returned (and described) then has that notebook's settings,
    ``profile.for_notebook(topic)``.
    """
    quiet_tensorflow()
    from alexnet_lab.core import profiles

    profile = profiles.use(profile_name)
    if topic is not None:
        profile = profile.for_notebook(topic)
    print(profile.describe())
    print(versions(), f"| {os.cpu_count()} CPU cores | {sys.platform}")
    if seed is not None:
        from alexnet_lab.frameworks import seed_everything

        # deterministic=False: TensorFlow's deterministic ops would stop Keras from compiling with XLA,
        # which trains 1.15 to 1.75 times faster on a CPU. Seeded CPU runs still repeat exactly (with
        # XLA too: tests/test_keras_training.py); on a GPU some kernels are not bit-reproducible.
        seed_everything(seed, deterministic=False)
        print(f"Random seed: {seed} (Python, NumPy, TensorFlow and PyTorch); fastest kernels rather than "
              "deterministic ones (on a CPU, runs repeat exactly all the same)")
    return profile
