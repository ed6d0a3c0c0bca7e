"""The processes of a distributed run, without a framework: who they are, and how they share the work.

Both frameworks train in parallel the same way (*data parallelism*, see ``docs/distributed.md``):
every process holds a full copy of the model and takes its share of every global batch. What that
needs before any framework is involved is here:

* which process this is: :func:`torchrun_env` reads the variables ``torchrun`` sets for PyTorch
  (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``...), :func:`parse_tf_config` the ``TF_CONFIG`` that
  lists the machines of a multi-worker Keras run;
* how the work splits: :func:`per_process_batch_size` (the global batch over the processes),
  :func:`shard` (``n`` items over the processes), :func:`scaled_lr` (the learning rate for a larger batch).

The framework code is in :mod:`alexnet_lab.torch.distributed` (torchrun, DistributedDataParallel)
and :mod:`alexnet_lab.keras.distributed` (the ``tf.distribute`` strategies). Imports no framework.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["per_process_batch_size", "scaled_lr", "shard", "TorchrunEnv", "torchrun_env", "TFCluster",
           "parse_tf_config"]


# ---------------------------------------------------------------------------
# Sharing the work: batches, items, learning rates
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
    if world_size < 1:
        raise ValueError(f"The number of processes must be at least 1, got {world_size}.")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in 0..{world_size - 1}, got {rank}.")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


# ---------------------------------------------------------------------------
# PyTorch: what torchrun tells each process
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


# ---------------------------------------------------------------------------
# Keras: the machines TF_CONFIG lists
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
