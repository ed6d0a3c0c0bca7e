"""alexnet-lab: AlexNet built twice, in Keras and in PyTorch.

``import alexnet_lab`` is light: it imports neither TensorFlow nor PyTorch. The package is built in
layers, each importing only those below it (an import-linter contract keeps it so)::

    alexnet_lab.cli        the ``alexnet-lab`` command: summary, train, bench, assignment
    alexnet_lab.grading    checks that explain mistakes; the assignment grader
    alexnet_lab.teaching   the notebooks' helpers: plots and figures, one module per experiment, recipe, fine-tuning
    alexnet_lab.frameworks which framework a model is; seed_everything   (the adapter)
    alexnet_lab.torch      models, pipeline, training, precision, distributed, ...   (the same module
    alexnet_lab.keras      models, pipeline, training, precision, distributed, ...    names on both sides)
    alexnet_lab.data       the ImageSet, the data sets, preprocessing plans
    alexnet_lab.core       architecture records and arithmetic, profiles, history, seeding, files, hardware

Import the framework side you need explicitly::

    from alexnet_lab.core import architecture          # framework-free arithmetic
    from alexnet_lab.torch import models as torch_models, training as torch_training
    from alexnet_lab.keras import models as keras_models, training as keras_training
"""

__version__ = "0.1.0"

__all__ = ["__version__", "seed_everything"]


def seed_everything(seed: int, *, deterministic: bool = True, frameworks: tuple[str, ...] | None = None) -> list[str]:
    """Seed Python, NumPy, PyTorch and TensorFlow/Keras in one call; see :func:`alexnet_lab.frameworks.seed_everything`."""
    from alexnet_lab.frameworks import seed_everything as _seed_everything

    return _seed_everything(seed, deterministic=deterministic, frameworks=frameworks)
