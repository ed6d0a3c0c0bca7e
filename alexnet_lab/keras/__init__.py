"""The Keras (TensorFlow) side. Its modules have the same names and public functions as :mod:`alexnet_lab.torch`:

* ``models`` -- AlexNet and LeNet-5 built from the framework-free records of :mod:`alexnet_lab.core.architecture`;
* ``pipeline`` -- ``make_batches``: the preprocessing plans of :mod:`alexnet_lab.data.preprocessing` as a tf.data.Dataset;
* ``training`` -- ``fit``, ``evaluate``, ``predict``; ``optim`` (optimizers, schedules, early stopping),
  ``checkpoints`` (save, resume) and ``batches`` (what ``fit`` accepts as data) serve it;
* ``precision`` -- the device, the mixed-precision policy and XLA, each with its reason;
* ``distributed`` -- ``tf.distribute`` strategies; ``seeding``; ``benchmark`` (``alexnet-lab bench``).
"""
