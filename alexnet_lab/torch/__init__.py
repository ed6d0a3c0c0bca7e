"""The PyTorch side. Its modules have the same names and public functions as :mod:`alexnet_lab.keras`:

* ``models`` -- AlexNet and LeNet-5 built from the framework-free records of :mod:`alexnet_lab.core.architecture`;
* ``pipeline`` -- ``make_batches``: the preprocessing plans of :mod:`alexnet_lab.data.preprocessing` as a DataLoader;
* ``training`` -- ``fit``, ``train_step``, ``evaluate``, ``predict``; ``optim`` (optimizers, schedules, early
  stopping), ``checkpoints`` (save, resume) and ``batches`` (what ``fit`` accepts as data) serve it;
* ``precision`` -- the device, mixed precision, channels-last and ``torch.compile``, each with its reason;
* ``distributed`` -- DistributedDataParallel under ``torchrun``; ``seeding``; ``benchmark`` (``alexnet-lab bench``).
"""
