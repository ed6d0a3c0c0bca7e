"""alexnet-lab: AlexNet built twice, in Keras and in PyTorch.

``import alexnet_lab`` is light: it imports neither TensorFlow nor PyTorch. Import the
framework modules you need explicitly::

    from alexnet_lab import architecture          # framework-free arithmetic
    from alexnet_lab import keras_models, torch_models
    from alexnet_lab import keras_training, torch_training
"""

__version__ = "0.1.0"

__all__ = ["__version__", "seed_everything"]


def seed_everything(seed: int, *, deterministic: bool = True, frameworks: tuple[str, ...] | None = None) -> list[str]:
    """Seed Python, NumPy, PyTorch and TensorFlow/Keras in one call; see :func:`alexnet_lab.seeding.seed_everything`."""
    from .seeding import seed_everything as _seed_everything

    return _seed_everything(seed, deterministic=deterministic, frameworks=frameworks)
