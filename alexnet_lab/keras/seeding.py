"""Seeding Keras and TensorFlow: their generators and, when asked, TensorFlow's deterministic ops.

Called by :func:`alexnet_lab.seed_everything`, which seeds Python and NumPy first.
"""

from __future__ import annotations

import os

__all__ = ["seed"]


def seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed Keras and TensorFlow; with ``deterministic``, ask TensorFlow for deterministic ops."""
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
