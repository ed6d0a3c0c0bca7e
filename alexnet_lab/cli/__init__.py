"""The ``alexnet-lab`` command: ``summary``, ``train``, ``bench`` and ``assignment``."""
