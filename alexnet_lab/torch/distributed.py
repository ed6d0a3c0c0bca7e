"""Training on several GPUs or machines with PyTorch: torchrun, process groups, DistributedDataParallel.

Data parallelism (see ``docs/distributed.md``): ``torchrun`` starts one process per GPU (or
several on a CPU); every process holds a full copy of the model, takes its own part of each global
batch, and ``DistributedDataParallel`` averages the gradients over all processes during every
``backward()``, so all copies keep identical weights::

    from alexnet_lab.torch import distributed, models as torch_models, pipeline as torch_pipeline

    ctx = distributed.init()                               # reads RANK, WORLD_SIZE... set by torchrun
    model = distributed.wrap_model(torch_models.alexnet("cifar10"), ctx)    # DistributedDataParallel
    train = torch_pipeline.make_batches(train_set, preprocess, batch_size=256, rank=ctx.rank,
                                        world_size=ctx.world_size, seed=0, drop_last=True)
    torch_training.fit(model, train, ...)                  # process 0 alone logs and writes the checkpoint
    distributed.shutdown()

:mod:`alexnet_lab.keras.distributed` is the Keras side (``tf.distribute`` strategies), with the same
:func:`is_chief` and :func:`describe_strategy`; the framework-free parts (reading torchrun's variables,
splitting a batch, scaling the learning rate) are in :mod:`alexnet_lab.core.cluster`.
``alexnet-lab train`` does all of this.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from alexnet_lab.core.cluster import torchrun_env
from alexnet_lab.torch import precision as torch_precision

__all__ = ["TorchContext", "init", "shutdown", "process_group", "is_chief", "describe_strategy", "wrap_model",
           "broadcast_object", "gather_objects", "barrier", "main_process_first"]


@dataclass(frozen=True)
class TorchContext:
    """This process's place in a PyTorch run: its rank, the number of processes, its device and backend."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: Any = None      # a torch.device
    backend: str | None = None  # "nccl", "gloo", or None for a single process

    @property
    def is_chief(self) -> bool:
        """Process 0: the one that prints, logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str | None = None, *, environ: Mapping[str, str] | None = None) -> TorchContext:
    """Join the process group that torchrun set up; in a plain ``python`` process, just pick the device.

    The backend follows the device: NCCL between CUDA GPUs (each process takes GPU ``LOCAL_RANK``),
    Gloo between CPU processes. ``device``: None picks CUDA when there is a GPU, else the CPU;
    ``"cpu"`` forces CPU processes (Gloo) on a GPU machine.
    """
    env = torchrun_env(environ)
    if env is None or env.world_size == 1:
        return TorchContext(device=torch_precision.torch_device(device, announce=False))
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
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` when this process has joined a ``torch.distributed`` group (:func:`init`), else None."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def is_chief(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process may log and write files: True unless it is a torchrun process other than process 0.

    The rank is the process group's once :func:`init` has joined it, else torchrun's ``RANK``
    variable. :func:`alexnet_lab.keras.distributed.is_chief` answers the same question for Keras.
    """
    group = process_group()
    if group is not None:
        return group[0] == 0
    env = torchrun_env(environ)
    return env is None or env.rank == 0


def describe_strategy(ctx: TorchContext) -> str:
    """E.g. ``"2 processes (gloo backend); this is process 0 (local 0) on cpu"``, or ``"1 process on cpu"``."""
    if not ctx.distributed:
        return f"1 process on {ctx.device}"
    return (f"{ctx.world_size} processes ({ctx.backend} backend); this is process {ctx.rank} "
            f"(local {ctx.local_rank}) on {ctx.device}")


def wrap_model(model, ctx: TorchContext, *, sync_batchnorm: bool = True):
    """Move ``model`` to the process's device and, with several processes, wrap it in ``DistributedDataParallel``.

    DDP copies process 0's weights to every process when it wraps the model, then averages the
    gradients over all processes during every ``backward()``. BatchNorm would normalize with
    each process's own part of the batch; on GPUs ``sync_batchnorm`` replaces it with
    ``SyncBatchNorm``, which uses the whole global batch (PyTorch has no SyncBatchNorm on CPUs).
    """
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


def broadcast_object(ctx: TorchContext, value):
    """Process 0's ``value``, in every process (e.g. a decision only process 0 may take)."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(ctx: TorchContext, value) -> list:
    """Every process's ``value``, as a list indexed by rank, in every process."""
    if not ctx.distributed:
        return [value]
    values = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def barrier(ctx: TorchContext) -> None:
    """Wait until every process gets here."""
    if ctx.distributed:
        dist.barrier()


@contextlib.contextmanager
def main_process_first(ctx: TorchContext):
    """Run the block in process 0 first, then in the others: e.g. to download or unpack a data set once."""
    if not ctx.is_chief:
        barrier(ctx)
    try:
        yield
    finally:
        if ctx.is_chief:
            barrier(ctx)
