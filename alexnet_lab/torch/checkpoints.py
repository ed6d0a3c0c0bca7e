"""PyTorch checkpoints: what ``fit`` saves after every epoch, and resuming from it.

Read this file beside :mod:`alexnet_lab.keras.checkpoints`. A PyTorch checkpoint is one file,
``checkpoint.pt``, holding everything a run needs to continue exactly where it stopped: the
weights, the optimizer's state (momentum), the schedule, early stopping, the gradient scaler,
every random generator and the history so far.

* :func:`save_checkpoint` / :func:`load_checkpoint` -- write it atomically, read it safely
  (``torch.load(weights_only=True)``: plain data only, no code).
* :func:`checkpoint_state` -- the dictionary ``fit`` saves; :func:`resume` -- put it all back.
* :func:`set_data_epoch` -- tell a loader that counts epochs which epoch comes next, so that a
  resumed run sees the same batches as a run that never stopped.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from alexnet_lab.core.files import atomic_write
from alexnet_lab.core.history import History

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "checkpoint_state", "resume", "set_data_epoch",
           "data_generators"]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save(state, path)``, atomically: a failed write leaves the old file intact and no temporary file.

    The state is written to a temporary file in the same folder, which then replaces
    ``path`` in one step (``os.replace``).
    """
    atomic_write(path, lambda f: torch.save(state, f), fsync=True)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, safely: ``torch.load(weights_only=True)``.

    ``weights_only=True`` refuses to run code stored in the file: only tensors and plain
    containers (dicts, lists, numbers, strings) come back.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------
# Random generators and data loaders
# ---------------------------------------------------------------------------
def _rng_state(generators: list[torch.Generator]) -> dict:
    """Every random generator's state, as tensors and plain containers (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loaders": [g.get_state() for g in generators],
    }


def _set_rng_state(state: dict, generators: list[torch.Generator]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for g, s in zip(generators, state["loaders"]):
        g.set_state(s)


def set_data_epoch(data, epoch: int) -> None:
    """On resume, tell a loader that counts epochs itself (``sampler.set_epoch``) which epoch comes next.

    ``alexnet_lab.torch.pipeline.make_batches`` draws each epoch's order and augmentation from
    ``(seed, epoch)``; a loader made afresh after a restart would otherwise start again at epoch 0.
    Data that counts no epochs is left alone.
    """
    for owner in (getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)


def data_generators(data) -> list[torch.Generator]:
    """The random generators a DataLoader shuffles with, if it was given its own (``generator=``)."""
    found = []
    for owner in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not other for other in found):
            found.append(g)
    return found


# ---------------------------------------------------------------------------
# The state fit saves, and resuming from it
# ---------------------------------------------------------------------------
def checkpoint_state(epochs_done: int, model: torch.nn.Module, optimizer, scheduler, scaler, stopper, generators,
                     history: History, *, process: tuple[int, int] | None = None) -> dict:
    """Everything ``fit`` needs to continue after ``epochs_done`` epochs, as plain data for :func:`save_checkpoint`.

    ``model`` is the unwrapped model (not its ``DistributedDataParallel`` wrapper), so that any
    number of processes can load the checkpoint. ``process`` is ``(rank, world_size)`` in a
    ``torch.distributed`` group: every process must then call this (it gathers each process's
    random generators, whose dropout masks differ, for an exact resume).
    """
    state = {
        "epoch": epochs_done,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "early_stopping": stopper.state_dict() if stopper is not None else None,
        "history": history.to_dict(),
        "rng": _rng_state(generators),
    }
    if process is not None:
        state["rng_per_process"] = [None] * process[1]
        torch.distributed.all_gather_object(state["rng_per_process"], state["rng"])
    return state


def _own_rng_state(state: dict, process: tuple[int, int] | None) -> dict:
    """This process's random generators from a checkpoint (process 0's when it was written by fewer processes)."""
    per_process = state.get("rng_per_process")
    if process is not None and per_process and process[0] < len(per_process):
        return per_process[process[0]]
    return state["rng"]


def resume(checkpoint_dir: str | os.PathLike, model: torch.nn.Module, history: History, *, optimizer, scheduler,
           scaler, stopper, generators, process: tuple[int, int] | None = None,
           verbose: int = 1) -> tuple[int, History]:
    """Restore everything from the checkpoint in ``checkpoint_dir``; returns the epoch to continue from and the history.

    ``model`` is the unwrapped model; ``history`` the resumed run's fresh history, whose settings the
    stored history takes over (:meth:`~alexnet_lab.core.history.History.continued`). Without a
    checkpoint yet, nothing changes and training starts at epoch 0.
    """
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not checkpoint.exists():
        if verbose:
            print(f"alexnet-lab: no checkpoint at {checkpoint} yet; starting from epoch 1.")
        return 0, history
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"The checkpoint {checkpoint} does not fit this model or optimizer ({e}). Resume with "
                         "the same model and optimizer, or use another checkpoint_dir or resume=False.") from e
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if stopper is not None and state["early_stopping"] is not None:
        stopper.load_state_dict(state["early_stopping"])
    _set_rng_state(_own_rng_state(state, process), generators)
    if verbose:
        print(f"alexnet-lab: resuming from {checkpoint} after epoch {state['epoch']}.")
    return state["epoch"], History.from_dict(state["history"]).continued(history, state["epoch"])
