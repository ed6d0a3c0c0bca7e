"""Training on several GPUs or machines with Keras: the ``tf.distribute`` strategies.

Data parallelism (see ``docs/distributed.md``): a strategy keeps a copy of the model on every GPU
(a *replica*), splits each global batch over the replicas and averages their gradients before every
update. ``MirroredStrategy`` uses the GPUs of one machine; ``MultiWorkerMirroredStrategy`` runs one
process per machine, which finds the others through ``TF_CONFIG``::

    from alexnet_lab.keras import distributed, models as keras_models, training as keras_training

    strategy = distributed.tf_strategy("auto")    # MultiWorkerMirroredStrategy when TF_CONFIG is set
    with strategy.scope():                        # the model and optimizer are created inside the scope
        model = keras_models.alexnet("cifar10")
        keras_training.fit(model, train_dataset, ...)   # batches of the *global* batch size; the chief writes

:mod:`alexnet_lab.torch.distributed` is the PyTorch side (torchrun and DistributedDataParallel),
with the same :func:`is_chief` and :func:`describe_strategy`; reading ``TF_CONFIG`` and splitting a
batch are framework-free, in :mod:`alexnet_lab.core.cluster`. ``alexnet-lab train`` does all of this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from alexnet_lab.core.cluster import TFCluster, parse_tf_config  # noqa: E402

__all__ = ["STRATEGIES", "is_chief", "choose_strategy", "tf_strategy", "shard_by_data", "describe_strategy"]

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this Keras process may write files: True unless ``TF_CONFIG`` makes it a non-chief worker.

    :func:`alexnet_lab.torch.distributed.is_chief` answers the same question for PyTorch.
    """
    env = os.environ if environ is None else environ
    cluster = parse_tf_config(env.get("TF_CONFIG"))
    return cluster is None or cluster.is_chief


def choose_strategy(requested: str = "auto", *, num_gpus: int, tf_config: TFCluster | None) -> str:
    """Which ``tf.distribute`` strategy to use: ``"none"``, ``"mirrored"`` or ``"multiworker"``.

    ``"auto"``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` lists several machines,
    MirroredStrategy when this machine has several GPUs, else none (TensorFlow's default
    strategy: one device). Asking for a single-machine strategy while ``TF_CONFIG`` lists
    several machines is an error: each machine would train its own model.
    """
    if requested not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {requested!r}.")
    several_machines = tf_config is not None and tf_config.num_workers > 1
    if requested == "auto":
        if several_machines:
            return "multiworker"
        return "mirrored" if num_gpus > 1 else "none"
    if requested in ("none", "mirrored") and several_machines:
        raise ValueError(f"TF_CONFIG lists {tf_config.num_workers} machines, but --strategy {requested} trains on "
                         "this machine alone, so each machine would train its own model. Use --strategy multiworker "
                         "(or auto), or unset TF_CONFIG.")
    return requested


def tf_strategy(requested: str = "auto"):
    """The ``tf.distribute`` strategy for ``requested`` (see :func:`choose_strategy`).

    Create it at the start of the program, before other TensorFlow work (MultiWorkerMirroredStrategy
    must connect to the other machines before TensorFlow starts), and build the model inside
    ``strategy.scope()``.
    """
    cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
    if requested == "auto" and (cluster is None or cluster.num_workers == 1):
        num_gpus = len(tf.config.list_physical_devices("GPU"))
    else:
        num_gpus = 0  # listing GPUs starts TensorFlow: not before MultiWorkerMirroredStrategy
    name = choose_strategy(requested, num_gpus=num_gpus, tf_config=cluster)
    if name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _work_around_keras_multiworker_bugs()
        return strategy
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset``, set to be shared out between the workers of a multi-worker run batch by batch.

    Under MultiWorkerMirroredStrategy, ``tf.data`` first tries to give each worker its own input
    *files*; :func:`alexnet_lab.keras.pipeline.make_batches` reads none (its images are in memory),
    so each worker would fall back with a warning. Sharding by data says so from the start. Changes
    nothing without a strategy or on one machine.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def describe_strategy(strategy) -> str:
    """E.g. ``"MirroredStrategy: 2 replica(s) in sync"``."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is called CollectiveAllReduceStrategy
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        name = "MirroredStrategy"
    else:
        name = "no tf.distribute strategy (TensorFlow's default, one device)"
    return f"{name}: {strategy.num_replicas_in_sync} replica(s) in sync"


_keras_patched = False


def _work_around_keras_multiworker_bugs() -> bool:
    """Let Keras 3's ``model.fit`` run under MultiWorkerMirroredStrategy; returns whether it patched Keras.

    Keras 3 (3.15 with TensorFlow 2.21, and every version since TensorFlow 2.16 made Keras 3 the
    default) fails in ``model.fit`` on several machines, in two places (keras-team/keras#20585,
    tensorflow/tensorflow#72388):

    1. before training, ``_maybe_symbolic_build`` calls ``strategy.reduce`` on a whole
       ``(images, labels)`` batch, which only accepts one tensor ("Attempt to convert a value
       (PerReplica...) to a Tensor");
    2. after each step, ``reduce_per_replica`` reduces every metric with ``axis=0``, also the
       scalars, and also values that are already plain tensors ("Invalid reduction dimension 0").

    Both replacements below change nothing outside multi-worker runs: (1) builds the model from
    this worker's first replica's batch (only its shapes matter), (2) returns plain tensors as they
    are and averages per-replica scalars over the replicas, as Keras does on one machine. If a
    future Keras no longer has these functions, nothing is patched.
    """
    global _keras_patched
    if _keras_patched:
        return True
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer
        Trainer = trainer.TensorFlowTrainer
        original_build, original_reduce = Trainer._maybe_symbolic_build, trainer.reduce_per_replica
        multi_worker, per_replica = trainer._collective_all_reduce_multi_worker, trainer._is_per_replica_instance
    except (ImportError, AttributeError):
        return False

    def first_local(value, strategy):
        return strategy.experimental_local_results(value)[0] if per_replica(value) else value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not multi_worker(strategy) or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(lambda v: first_local(v, strategy), next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if not multi_worker(strategy) or reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if not per_replica(value):
                return value  # already the same on every replica
            scalar = first_local(value, strategy).shape.rank == 0
            return strategy.reduce("MEAN", value, axis=None if scalar else 0)

        return tree.map_structure(reduce, values)

    Trainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _keras_patched = True
    return True
