"""alexnet-lab: AlexNet built twice, in Keras and in PyTorch.

``import alexnet_lab`` is light: it imports neither TensorFlow nor PyTorch. Import the
framework modules you need explicitly::

    from alexnet_lab import architecture          # framework-free arithmetic
    from alexnet_lab import keras_models, torch_models
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
