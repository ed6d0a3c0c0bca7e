"""Training on several GPUs or machines with the frameworks' own engines: PyTorch DDP and ``tf.distribute``.

Both frameworks use *data parallelism*: every process (or GPU) holds a full copy of the model,
takes its own share of each batch, computes gradients on it, and the gradients are averaged
over all copies before every update, so all copies keep identical weights. One training step
on ``N`` devices with ``B / N`` images each is the step one device would take with ``B`` images.

PyTorch (``torchrun`` starts one process per GPU, or several on a CPU)::

    ctx = distributed.init_torch()                        # reads RANK, WORLD_SIZE... set by torchrun
    model = distributed.wrap_model(torch_models.alexnet("cifar10"), ctx)    # DistributedDataParallel
    train = distributed.torch_loader(train_set, preprocess, batch_size=256, rank=ctx.rank,
                                     world_size=ctx.world_size, seed=0, drop_last=True)
    torch_training.fit(model, train, ...)                 # process 0 alone logs and writes the checkpoint
    distributed.shutdown()

Keras (one process per machine; ``MirroredStrategy`` uses the machine's GPUs)::

    strategy = distributed.tf_strategy("auto")    # MultiWorkerMirroredStrategy when TF_CONFIG is set
    with strategy.scope():                        # the model and optimizer are created inside the scope
        model = keras_models.alexnet("cifar10")
        keras_training.fit(model, train_dataset, ...)   # batches of the *global* batch size

``alexnet-lab train`` does all of this; ``docs/distributed.md`` says how to launch it. This module
imports neither framework until a function needs it: the framework-free parts (reading torchrun's
and TensorFlow's environment variables, splitting batches, scaling the learning rate) work without.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .pipelines import BatchPlan, Geometry, Preprocess, batch_plans

__all__ = [
    "TorchrunEnv", "torchrun_env", "TorchContext", "init_torch", "shutdown", "wrap_model", "torch_loader",
    "ShardedEpochSampler", "shard", "shard_plan", "per_process_batch_size", "scaled_lr",
    "broadcast_object", "gather_objects", "barrier", "main_process_first",
    "TFCluster", "parse_tf_config", "is_chief", "STRATEGIES", "choose_strategy", "tf_strategy",
    "describe_strategy",
]

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


# ---------------------------------------------------------------------------
# Batches and learning rates (framework-free)
# ---------------------------------------------------------------------------
def per_process_batch_size(global_batch_size: int, world_size: int) -> int:
    """The images each process (or GPU) takes from every batch: ``global_batch_size / world_size``.

    The global batch must split evenly, so that every process takes the same share and the
    averaged gradient is the mean over the global batch.
    """
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(f"The batch size must be a positive integer, got {global_batch_size!r}.")
    if world_size < 1:
        raise ValueError(f"The number of processes must be at least 1, got {world_size}.")
    if global_batch_size % world_size:
        lower = global_batch_size - global_batch_size % world_size
        raise ValueError(f"The global batch size {global_batch_size} does not split evenly over {world_size} "
                         f"processes/GPUs. Use a multiple of {world_size}, e.g. --batch-size {lower or world_size} "
                         f"or {lower + world_size}.")
    return global_batch_size // world_size


def scaled_lr(base_lr: float, base_batch_size: int, batch_size: int, rule: str = "linear") -> float:
    """The learning rate for ``batch_size`` when ``base_lr`` works for ``base_batch_size``.

    ``"linear"`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``base_lr * batch_size /
    base_batch_size``, for SGD with momentum; above a batch of about 1,000 they also warm up
    (raise the rate gradually over the first epochs). ``"sqrt"``: ``base_lr * sqrt(batch_size /
    base_batch_size)``, the usual rule for Adam. Both are starting points to tune from, not guarantees.
    """
    if base_lr <= 0 or base_batch_size < 1 or batch_size < 1:
        raise ValueError(f"scaled_lr needs a positive learning rate and batch sizes; got base_lr={base_lr}, "
                         f"base_batch_size={base_batch_size}, batch_size={batch_size}.")
    ratio = batch_size / base_batch_size
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    raise ValueError(f"rule must be 'linear' or 'sqrt', got {rule!r}.")


def shard(n: int, rank: int, world_size: int) -> slice:
    """Process ``rank``'s share of ``n`` items: contiguous parts whose sizes differ by at most one."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in 0..{world_size - 1}, got {rank}.")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard_plan(plan: BatchPlan, rank: int, world_size: int) -> BatchPlan:
    """Process ``rank``'s part of one global batch plan: its images with their crops, flips and colour shifts."""
    part = shard(len(plan), rank, world_size)
    return BatchPlan(indices=plan.indices[part], rows=plan.rows[part], cols=plan.cols[part],
                     color_shift=plan.color_shift[part])


class ShardedEpochSampler:
    """The distributed sampler: every process draws the same global batches and keeps its own part of each.

    ``torch.utils.data.DistributedSampler`` gives each process every ``world_size``-th *image*
    of a shuffled order. Our pipelines plan whole batches (order, crops, flips, colour noise,
    see :mod:`alexnet_lab.pipelines`), so this sampler draws the plans of the *global* batches
    from ``(seed, epoch)``, as a single process would, and gives process ``rank`` its slice
    of each. The global batches, augmentation included, are then the same for any number of
    processes: only dropout masks depend on how the batch is split.

    Each pass is the next epoch; ``set_epoch(k)`` chooses it (DDP's usual ``sampler.set_epoch``).
    Use ``drop_last=True`` for training: every step then has exactly the global batch, split
    evenly (a smaller last batch would be averaged with unequal weights, and a process left
    without images would stop the others).
    """

    def __init__(self, num_images: int, geometry: Geometry, preprocess: Preprocess, channels: int, *,
                 global_batch_size: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        if drop_last:
            per_process_batch_size(global_batch_size, world_size)  # raises if the batch does not split evenly
        shard(0, rank, world_size)  # checks the rank
        self.num_images, self.geometry, self.preprocess, self.channels = num_images, geometry, preprocess, channels
        self.global_batch_size, self.rank, self.world_size = global_batch_size, rank, world_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[BatchPlan]:
        # A generator, like EpochSampler: the epoch counts up when the first batch is asked for.
        epoch = self.epoch
        self.epoch += 1
        for plan in batch_plans(self.num_images, self.geometry, self.preprocess, self.channels,
                                batch_size=self.global_batch_size, shuffle=self.shuffle, seed=self.seed,
                                epoch=epoch, drop_last=self.drop_last):
            part = shard_plan(plan, self.rank, self.world_size)
            if len(part):  # a last batch smaller than the number of processes leaves some without images
                yield part

    def __len__(self) -> int:
        full, rest = divmod(self.num_images, self.global_batch_size)
        if rest and not self.drop_last:
            part = shard(rest, self.rank, self.world_size)
            full += part.stop > part.start
        return full


# ---------------------------------------------------------------------------
# PyTorch: torchrun, process groups, DistributedDataParallel
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TorchrunEnv:
    """What ``torchrun`` tells each process it starts, through environment variables.

    ``rank``: this process's number among all (0 .. world_size - 1); ``local_rank``: its number
    on this machine (which GPU it takes); ``world_size``: all processes on all machines.
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master: str


def torchrun_env(environ: Mapping[str, str] | None = None) -> TorchrunEnv | None:
    """The torchrun variables of this process, or None when it was not started by torchrun."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return None
    values = {}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        text = env.get(name)
        if text is None:
            raise ValueError(f"The environment sets {'RANK' if 'RANK' in env else 'WORLD_SIZE'} but not {name}: "
                             "start distributed runs with torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE.")
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"The environment variable {name}={text!r} is not a whole number.") from None
    rank, local_rank, world_size = values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"Inconsistent torchrun variables: RANK={rank}, LOCAL_RANK={local_rank}, "
                         f"WORLD_SIZE={world_size} (RANK must lie in 0..WORLD_SIZE-1).")
    local_world = int(env.get("LOCAL_WORLD_SIZE", world_size))
    master = f"{env.get('MASTER_ADDR', '?')}:{env.get('MASTER_PORT', '?')}"
    return TorchrunEnv(rank, local_rank, world_size, local_world, master)


@dataclass(frozen=True)
class TorchContext:
    """This process's place in a PyTorch run: its rank, the number of processes, its device and backend."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: Any = None      # a torch.device
    backend: str | None = None  # "nccl", "gloo", or None for a single process

    @property
    def is_main(self) -> bool:
        """Process 0: the one that prints, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        if not self.distributed:
            return f"1 process on {self.device}"
        return (f"{self.world_size} processes ({self.backend} backend); this is process {self.rank} "
                f"(local {self.local_rank}) on {self.device}")


def init_torch(device: str | None = None, *, environ: Mapping[str, str] | None = None) -> TorchContext:
    """Join the process group that torchrun set up; in a plain ``python`` process, just pick the device.

    The backend follows the device: NCCL between CUDA GPUs (each process takes GPU ``LOCAL_RANK``),
    Gloo between CPU processes. ``device``: None picks CUDA when there is a GPU, else the CPU;
    ``"cpu"`` forces CPU processes (Gloo) on a GPU machine.
    """
    import torch
    import torch.distributed as dist

    from . import devices

    env = torchrun_env(environ)
    if env is None or env.world_size == 1:
        return TorchContext(device=devices.torch_device(device, announce=False))
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("Device 'cuda' asked for, but PyTorch sees no CUDA GPU. Use --device cpu for CPU "
                             "processes (Gloo backend).")
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise ValueError(f"torchrun started {env.local_world_size} processes on this machine but it has {count} "
                             f"GPU(s): use --nproc_per_node={count} (one process per GPU).")
        dev, backend = torch.device("cuda", env.local_rank), "nccl"
        torch.cuda.set_device(dev)
    elif kind == "cpu":
        dev, backend = torch.device("cpu"), "gloo"
    else:
        raise ValueError(f"DistributedDataParallel runs on CUDA GPUs (NCCL) or CPUs (Gloo), not on {kind!r}.")
    if not dist.is_initialized():
        # init_method "env://": MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE come from torchrun.
        dist.init_process_group(backend=backend, device_id=dev if backend == "nccl" else None)
    return TorchContext(env.rank, env.local_rank, env.world_size, dev, backend)


def shutdown() -> None:
    """Leave the process group (call once at the end of a distributed run; harmless otherwise)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model, ctx: TorchContext, *, sync_batchnorm: bool = True):
    """Move ``model`` to the process's device and, with several processes, wrap it in ``DistributedDataParallel``.

    DDP copies process 0's weights to every process when it wraps the model, then averages the
    gradients over all processes during every ``backward()``. BatchNorm would normalize with
    each process's own part of the batch; on GPUs ``sync_batchnorm`` replaces it with
    ``SyncBatchNorm``, which uses the whole global batch (PyTorch has no SyncBatchNorm on CPUs).
    """
    from torch import nn

    model.to(ctx.device)
    if not ctx.distributed:
        return model
    if any(isinstance(m, nn.Conv2d) and m.in_channels == 1 for m in model.modules()):
        # A 1-channel convolution's weight gradient can come with other (equally valid) strides than
        # DDP's gradient buckets; DDP then warns and copies it. Harmless: silence that one warning.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if sync_batchnorm and has_batchnorm and ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def torch_loader(data, preprocess: Preprocess, *, batch_size: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool | None = None, seed: int = 0, drop_last: bool = False, channels_last: bool = False,
                 num_workers: int = 0):
    """Like :func:`alexnet_lab.pipelines.torch_loader`, but each process gets its part of every global batch.

    ``batch_size`` is the *global* batch; process ``rank`` of ``world_size`` receives about
    ``batch_size / world_size`` images per step (see :class:`ShardedEpochSampler`). With
    ``world_size=1`` the batches are those of ``pipelines.torch_loader``.
    """
    from torch.utils.data import DataLoader

    from .torch_pipeline import PlannedBatches

    preprocess.check_fits(data)
    geometry = preprocess.geometry(data.shape[:2])
    sampler = ShardedEpochSampler(len(data), geometry, preprocess, data.shape[2], global_batch_size=batch_size,
                                  rank=rank, world_size=world_size,
                                  shuffle=preprocess.augment if shuffle is None else shuffle, seed=seed,
                                  drop_last=drop_last)
    return DataLoader(PlannedBatches(data, preprocess, geometry, channels_last), sampler=sampler, batch_size=None,
                      num_workers=num_workers)


def broadcast_object(ctx: TorchContext, value):
    """Process 0's ``value``, in every process (e.g. a decision only process 0 may take)."""
    if not ctx.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(ctx: TorchContext, value) -> list:
    """Every process's ``value``, as a list indexed by rank, in every process."""
    if not ctx.distributed:
        return [value]
    import torch.distributed as dist

    values = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def barrier(ctx: TorchContext) -> None:
    """Wait until every process gets here."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_process_first(ctx: TorchContext):
    """Run the block in process 0 first, then in the others: e.g. to download or unpack a data set once."""
    if not ctx.is_main:
        barrier(ctx)
    try:
        yield
    finally:
        if ctx.is_main:
            barrier(ctx)


# ---------------------------------------------------------------------------
# TensorFlow: TF_CONFIG and the strategies
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TFCluster:
    """The machines of a multi-worker Keras run, from ``TF_CONFIG``, and which one this is.

    ``TF_CONFIG`` is a JSON string, the same on every machine except for ``task.index``::

        {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

    The *chief* (the ``"chief"`` task if the cluster has one, else worker 0) saves the checkpoints
    and logs; the other workers train alongside it and write nothing.
    """

    cluster: dict[str, tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        """The machines that train: the chief (if listed separately) and the workers."""
        return len(self.cluster.get("chief", ())) + len(self.cluster.get("worker", ()))

    @property
    def is_chief(self) -> bool:
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0


def parse_tf_config(text: str | None) -> TFCluster | None:
    """Read a ``TF_CONFIG`` value; None (or empty) gives None. Errors say what is wrong with it."""
    if text is None or not text.strip():
        return None
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); it should look like {example}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise ValueError(f"TF_CONFIG needs a 'cluster' listing the machines, like {example}")
    cluster = {}
    for kind, addresses in config["cluster"].items():
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise ValueError(f"TF_CONFIG's cluster[{kind!r}] must be a non-empty list of 'host:port' strings, "
                             f"got {addresses!r}.")
        for address in addresses:
            if not isinstance(address, str) or address.rpartition(":")[2] == "" or \
                    not address.rpartition(":")[2].isdigit():
                raise ValueError(f"TF_CONFIG's cluster[{kind!r}] has {address!r}; each entry must be 'host:port'.")
        cluster[kind] = tuple(addresses)
    if "worker" not in cluster and "chief" not in cluster:
        raise ValueError(f"TF_CONFIG's cluster lists {sorted(cluster)} but no 'worker' (or 'chief'): {example}")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(f"TF_CONFIG needs a 'task' saying which machine this is, like {example}")
    task_type, task_index = task["type"], task.get("index", 0)
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG's task type {task_type!r} is not in its cluster ({sorted(cluster)}).")
    if isinstance(task_index, bool) or not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise ValueError(f"TF_CONFIG's task index {task_index!r} must lie in 0..{len(cluster[task_type]) - 1} "
                         f"for the {len(cluster[task_type])} {task_type!r} machine(s).")
    return TFCluster(cluster, task_type, task_index)


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this Keras process may write files: True unless ``TF_CONFIG`` makes it a non-chief worker."""
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
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

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
    import tensorflow as tf

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


def describe_strategy(strategy) -> str:
    """E.g. ``"MirroredStrategy: 2 replica(s) in sync"``."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is called CollectiveAllReduceStrategy
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        name = "MirroredStrategy"
    else:
        name = "no tf.distribute strategy (TensorFlow's default, one device)"
    return f"{name}: {strategy.num_replicas_in_sync} replica(s) in sync"
