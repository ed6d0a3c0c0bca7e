"""Training and evaluating the PyTorch models: :func:`fit`, :func:`evaluate`, :func:`predict`.

Read this file beside :mod:`alexnet_lab.keras_training`: both ``fit`` functions take the
same arguments and return the same framework-free :class:`~alexnet_lab.history.History`,
so one plotting function serves both. Keras hides the training loop inside
``model.fit``; PyTorch makes you write it. Here it is, for one batch::

    x, y = x.to(device), y.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision):
        loss = F.cross_entropy(model(x), y)        # the models return logits
    optimizer.zero_grad()
    scaler.scale(loss).backward()                  # scaler: only does something for float16
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)   # optional
    scaler.step(optimizer)
    scaler.update()

Everything else in this file is bookkeeping around those lines: progress bars, the
history, learning-rate schedules, early stopping and checkpoints.

Example::

    from alexnet_lab import torch_models, torch_training
    model = torch_models.alexnet("cifar10")
    history = torch_training.fit(model, train_loader, val_loader, epochs=10, schedule="plateau")
    print(torch_training.evaluate(model, test_loader))

Weight decay: ``weight_decay=5e-4`` adds ``5e-4 * w`` to every gradient before the
momentum step, exactly the update rule of the AlexNet paper (section 5) and of
``torch.optim.SGD(weight_decay=...)``. :mod:`alexnet_lab.keras_training` does the same.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import devices
from .files import atomic_write
from .history import History

__all__ = [
    "fit", "evaluate", "predict", "make_optimizer", "make_scheduler", "EarlyStopping",
    "save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME", "ArrayBatches",
]

CHECKPOINT_NAME = "checkpoint.pt"
SCHEDULES = (None, "plateau", "cosine", "step")
OPTIMIZERS = ("sgd", "adam")


# ---------------------------------------------------------------------------
# Data: anything that yields (images, labels) batches
# ---------------------------------------------------------------------------
class ArrayBatches:
    """Whole arrays ``(x, y)`` served as batches, reshuffled every epoch when ``shuffle`` is True.

    ``fit(model, (x, y), batch_size=64)`` wraps its arrays in this. The shuffle uses
    PyTorch's global random generator, so :func:`alexnet_lab.seed_everything` makes it repeat.
    """

    def __init__(self, x, y, batch_size: int = 64, shuffle: bool = False):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"Got {len(self.x)} images but {len(self.y)} labels.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.batch_size, self.shuffle = batch_size, shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.y)) if self.shuffle else torch.arange(len(self.y))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]


def _as_batches(data, batch_size: int, shuffle: bool, what: str):
    """``data`` as an iterable of ``(x, y)`` batches: whole ``(x, y)`` arrays are cut into batches."""
    if data is None:
        return None
    if type(data).__name__ == "ImageSet":
        raise TypeError(f"{what} is an ImageSet (uint8 images, channels-last). Turn it into batches of float "
                        f"NCHW tensors first, e.g. alexnet_lab.pipelines.torch_loader({what}, preprocess, "
                        "batch_size=64).")
    if (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(a, (np.ndarray, torch.Tensor)) for a in data) and data[0].ndim == 4):
        return ArrayBatches(data[0], data[1], batch_size, shuffle)
    if not hasattr(data, "__iter__"):
        raise TypeError(f"{what} must yield (images, labels) batches: a DataLoader, a list of (x, y) tensor "
                        f"pairs, or a tuple of whole arrays (x, y). Got {type(data).__name__}.")
    return data


def _num_batches(data, max_batches: int | None) -> int | None:
    try:
        n = len(data)
    except TypeError:
        return max_batches
    return n if max_batches is None else min(n, max_batches)


def _check_batch(batch, num_classes: int | None):
    """The batch as ``(x, y)`` tensors, with a clear error for the usual mistakes."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"Each batch must be a pair (images, labels); got {type(batch).__name__}"
                        f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}.")
    x, y = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
    if not x.is_floating_point():
        raise TypeError(f"Images must be float tensors (scaled and normalized), got {x.dtype}. Use "
                        "alexnet_lab.pipelines.torch_loader, or x.float() / 255 for a quick test.")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"Labels must be a 1-D tensor with one class index per image; got shape {tuple(y.shape)} "
                         f"for {len(x)} images. One-hot labels? Use y.argmax(1).")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"Labels must be integer class indices, got {y.dtype}.")
    if num_classes is not None and y.device.type == "cpu" and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"Labels must lie in 0..{num_classes - 1} for this {num_classes}-class model; this batch "
                         f"has {int(y.min())}..{int(y.max())}. Build the model with num_classes=... to match the data.")
    return x, y.long()


def _num_classes(model: nn.Module) -> int | None:
    """The size of the model's last ``nn.Linear`` layer (its number of classes), if it has one."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _is_channels_last(model: nn.Module) -> bool:
    """Whether the model's convolution weights are stored channels-last (one-channel layers look like both)."""
    return any(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
               for m in model.modules() if isinstance(m, nn.Conv2d))


def _to_device(x, y, device, channels_last: bool):
    non_blocking = device.type == "cuda"
    x = x.to(device, non_blocking=non_blocking)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=non_blocking)


def _sync(device) -> None:
    """Wait for the GPU to finish, so that wall-clock times are true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------
# Several processes (torchrun + DistributedDataParallel, see alexnet_lab.distributed)
# ---------------------------------------------------------------------------
def _process_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` when this process is one of a ``torch.distributed`` group (torchrun), else None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def _is_main_process() -> bool:
    """True in a single-process run, and in process 0 of a distributed one: the only process that writes files."""
    group = _process_group()
    return group is None or group[0] == 0


def _sum_over_processes(values: list, device) -> list:
    """Sums (of losses, correct answers, images) added up over all processes; unchanged in a single process.

    Each process sees its own part of every batch: only the sums over all processes give the
    epoch's loss and accuracy, and give every process the same numbers, so that the schedules
    and early stopping take the same decisions everywhere.
    """
    if _process_group() is None:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper: checkpoints store it, so any process count loads them."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ---------------------------------------------------------------------------
# Optimizers, schedules, early stopping
# ---------------------------------------------------------------------------
def make_optimizer(model: nn.Module, name: str = "sgd", *, lr: float = 0.01, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's) or Adam; ``weight_decay`` is added to the gradients (L2), as in the paper."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str | None, *, epochs: int, monitor_mode: str = "max",
                   plateau_patience: int = 2, step_every: int | None = None):
    """The learning-rate schedule, stepped once per epoch (None for a constant learning rate).

    * ``"plateau"``: the paper's rule, divide the learning rate by 10 when the monitored
      validation metric has not improved for ``plateau_patience`` epochs.
    * ``"cosine"``: from ``lr`` down to 0 along half a cosine over ``epochs`` epochs.
    * ``"step"``: divide by 10 every ``step_every`` epochs (default: a third of ``epochs``).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if schedule == "plateau":
        if plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1 epoch, got {plateau_patience}.")
        # PyTorch reduces after `patience` + 1 bad epochs, Keras after `patience`: we count like Keras.
        # threshold_mode="abs" with 1e-4 is Keras' min_delta=1e-4; eps=0: Keras never skips a reduction.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=monitor_mode, factor=0.1,
                                                          patience=plateau_patience - 1, threshold=1e-4,
                                                          threshold_mode="abs", eps=0.0)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_every or max(1, epochs // 3), gamma=0.1)
    return None


class EarlyStopping:
    """Stop when the monitored metric has not improved for ``patience`` epochs (Keras' rule, ``min_delta=0``)."""

    def __init__(self, patience: int, mode: str = "max"):
        if patience < 1:
            raise ValueError(f"early_stopping patience must be at least 1 epoch, got {patience}.")
        self.patience, self.mode = patience, mode
        self.best = -math.inf if mode == "max" else math.inf
        self.wait = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when training should stop."""
        improved = value > self.best if self.mode == "max" else value < self.best
        if improved:
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------
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


def _set_loader_epoch(data, epoch: int) -> None:
    """On resume, tell a loader that counts epochs itself (``sampler.set_epoch``) which epoch comes next.

    ``alexnet_lab.pipelines.torch_loader`` draws each epoch's order and augmentation from
    ``(seed, epoch)``; a loader made afresh after a restart would otherwise start again at epoch 0.
    """
    for owner in (getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)


def _loader_generators(data) -> list[torch.Generator]:
    """The random generators a DataLoader shuffles with, if it was given its own (``generator=``)."""
    found = []
    for owner in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not other for other in found):
            found.append(g)
    return found


# ---------------------------------------------------------------------------
# One pass over the data
# ---------------------------------------------------------------------------
def _train_epoch(model, batches, *, device, optimizer, scaler, precision, channels_last, clip_grad_norm,
                 max_batches, num_classes, bar) -> dict:
    """Train one epoch; returns the mean loss and accuracy, the number of images and the training time."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        x, y = _check_batch(batch, num_classes)
        x, y = _to_device(x, y, device, channels_last)
        with torch.autocast(device.type, dtype=precision.torch_dtype, enabled=precision.autocast):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)  # the loss in float32, whatever autocast computed in

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_grad_norm is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()

        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if bar is not None:
            bar.update(1)
            if i % 10 == 0:  # reading values from a GPU waits for it: not at every batch
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}",
                                img_s=f"{seen / (time.perf_counter() - start):.0f}")
    _sync(device)
    seconds = time.perf_counter() - start
    if seen == 0:
        raise ValueError("The training data gave no batches this epoch. A generator runs out after one pass: "
                         "pass a DataLoader or a list of batches instead.")
    loss_sum, correct, seen = _sum_over_processes([loss_sum.item(), correct.item(), seen], device)
    return {"loss": loss_sum / seen, "accuracy": correct / seen, "images": int(seen), "seconds": seconds}


def _eval_pass(model, data, *, device, precision, channels_last, max_batches, num_classes, keep_outputs=False):
    """Loss and accuracy over ``data`` in eval mode (dropout off); optionally the logits and labels too."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    outputs, labels = [], []
    start = time.perf_counter()
    with torch.inference_mode():
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            x, y = _check_batch(batch, num_classes)
            x, y = _to_device(x, y, device, channels_last)
            with torch.autocast(device.type, dtype=precision.torch_dtype, enabled=precision.autocast):
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if keep_outputs:
                outputs.append(logits.cpu())
                labels.append(y.cpu())
    _sync(device)
    seconds = time.perf_counter() - start
    if not keep_outputs:
        loss_sum, correct, seen = _sum_over_processes([loss_sum, correct, seen], device)
    if seen == 0:
        raise ValueError("The evaluation data gave no batches.")
    result = {"loss": loss_sum / seen, "accuracy": correct / seen, "images_per_s": seen / seconds}
    if keep_outputs:
        return result, torch.cat(outputs).numpy(), torch.cat(labels).numpy()
    return result


# ---------------------------------------------------------------------------
# The public functions
# ---------------------------------------------------------------------------
def fit(
    model: nn.Module,
    train,
    val=None,
    *,
    epochs: int = 10,
    lr: float = 0.01,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str | None = None,
    plateau_patience: int = 2,
    step_every: int | None = None,
    early_stopping: int | None = None,
    clip_grad_norm: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    mixed_precision: str | bool = "auto",
    channels_last: str | bool = "auto",
    compile: str | bool = "auto",
    device: str | torch.device | None = None,
    batch_size: int = 64,
    live=None,
    progress: bool = True,
    label: str = "",
    max_batches: int | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    verbose: int = 1,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs, validating on ``val`` after each; returns the History.

    Args:
        model: a PyTorch model that returns logits (e.g. from :mod:`alexnet_lab.torch_models`).
            It is moved to the training device and stays there.
        train, val: batches of ``(images, labels)``: a ``DataLoader``, a list of ``(x, y)``
            tensor pairs, or whole arrays ``(x, y)`` (cut into ``batch_size`` batches,
            ``train`` reshuffled every epoch). Images are float NCHW, labels integers.
        epochs: the total number of epochs (with ``resume``, counting the epochs already done).
        lr, optimizer, momentum, weight_decay: ``"sgd"`` with momentum (the paper's) or ``"adam"``;
            ``weight_decay`` is L2 added to the gradient, as in the paper.
        schedule: None (constant), ``"plateau"`` (divide by 10 after ``plateau_patience``
            epochs without improvement), ``"cosine"`` or ``"step"`` (divide by 10 every
            ``step_every`` epochs); see :func:`make_scheduler`.
        early_stopping: stop after this many epochs without improvement (None: never).
            ``"plateau"`` and early stopping watch ``val_accuracy`` (the paper's validation
            error), or the training loss when there is no ``val``.
        clip_grad_norm: rescale the gradients so that their global L2 norm is at most this.
        checkpoint_dir: write ``checkpoint.pt`` there after every epoch (atomically).
        resume: continue from the checkpoint in ``checkpoint_dir`` (model, optimizer,
            schedule, early stopping, random generators and history), up to ``epochs``.
        mixed_precision: ``"auto"`` (on only where known faster), True, False, ``"bf16"``
            or ``"fp16"``; see :func:`alexnet_lab.devices.choose_precision`.
        channels_last: ``"auto"``, True or False; see :func:`alexnet_lab.devices.choose_channels_last`.
        compile: ``"auto"``, True or False: train through ``torch.compile(model)``; see
            :func:`alexnet_lab.devices.choose_compile` ("auto" is off for now: not measured faster).
        device: ``"cuda"``, ``"mps"``, ``"cpu"``, or None to pick the best available.
        batch_size: only used when ``train``/``val`` are whole arrays.
        live: anything with ``.update(history)`` (e.g. ``alexnet_lab.plots.LiveCurves``),
            called after every epoch.
        progress: show progress bars (epochs, and batches with loss, accuracy and images/s).
        label: the run's name in plots.
        max_batches: at most this many batches per epoch, for training and validation (smoke runs).
        tensorboard_dir: also log the metrics there for TensorBoard (needs ``pip install tensorboard``).
        verbose: 1 prints the set-up and one line per epoch, 0 prints nothing.

    Several processes (``torchrun``, see :mod:`alexnet_lab.distributed`): pass the model wrapped
    in ``DistributedDataParallel`` and each process's share of the data. The losses, accuracies
    and image counts are then summed over all processes (every process gets the same history),
    only process 0 writes the checkpoint, and the checkpoint stores the unwrapped model, so a
    run can resume with another number of processes.

    Returns:
        A :class:`~alexnet_lab.history.History` with, per epoch, ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` (with ``val``), ``lr`` (the rate the epoch trained
        with), ``images_per_s`` (training throughput) and ``epoch_time_s``; its ``info``
        records the device, precision, channels-last and seed.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    train = _as_batches(train, batch_size, shuffle=True, what="train")
    val = _as_batches(val, batch_size, shuffle=False, what="val")

    dev = devices.torch_device(device, announce=verbose > 0)
    precision = devices.choose_precision(dev, mixed_precision)
    use_channels_last, channels_last_reason = devices.choose_channels_last(dev, channels_last, precision)
    use_compile, compile_reason = devices.choose_compile(dev, compile)
    model.to(dev)
    model.to(memory_format=torch.channels_last if use_channels_last else torch.contiguous_format)
    num_classes = _num_classes(model)

    monitor, mode = ("val_accuracy", "max") if val is not None else ("loss", "min")
    opt = make_optimizer(model, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = make_scheduler(opt, schedule, epochs=epochs, monitor_mode=mode, plateau_patience=plateau_patience,
                               step_every=step_every)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision.grad_scaling)
    stopper = EarlyStopping(early_stopping, mode) if early_stopping is not None else None
    generators = _loader_generators(train)

    history = History("torch", label, info={
        "device": devices.describe_device(dev), "precision": str(precision),
        "channels_last": use_channels_last, "channels_last_reason": channels_last_reason,
        "compiler": "torch.compile" if use_compile else None, "compile_reason": compile_reason,
        "seed": _current_seed(), "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "schedule": schedule, "monitor": monitor, "max_batches": max_batches, "epochs": epochs,
        "processes": (_process_group() or (0, 1))[1],
    })
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    start_epoch = 0
    if resume:
        start_epoch, history = _resume(checkpoint, model, opt, scheduler, scaler, stopper, generators, history,
                                       verbose)
        _set_loader_epoch(train, start_epoch)
        if stopper is not None and stopper.wait >= stopper.patience:
            if verbose:
                print("alexnet-lab: this run had already stopped early; nothing to resume.")
            return history
    elif checkpoint is not None and checkpoint.exists() and verbose:
        print(f"alexnet-lab: starting afresh; {checkpoint} will be overwritten (resume=True continues it).")
    if verbose:
        print(f"alexnet-lab: precision {precision}; channels-last {'on' if use_channels_last else 'off'} "
              f"({channels_last_reason}); torch.compile {'on' if use_compile else 'off'} ({compile_reason})")
    writer = _tensorboard_writer(tensorboard_dir)
    trained = torch.compile(model) if use_compile else model  # shares the weights: checkpoints store `model`

    epoch_bar = tqdm(total=epochs, initial=start_epoch, desc=label or "epochs", unit="epoch", disable=not progress)
    try:
        for epoch in range(start_epoch, epochs):
            epoch_start = time.perf_counter()
            batch_bar = tqdm(total=_num_batches(train, max_batches), desc=f"epoch {epoch + 1}/{epochs}",
                             unit="batch", leave=False, disable=not progress)
            with batch_bar:
                stats = _train_epoch(trained, train, device=dev, optimizer=opt, scaler=scaler, precision=precision,
                                     channels_last=use_channels_last, clip_grad_norm=clip_grad_norm,
                                     max_batches=max_batches, num_classes=num_classes,
                                     bar=batch_bar if progress else None)
            values = {"loss": stats["loss"], "accuracy": stats["accuracy"]}
            if val is not None:
                v = _eval_pass(_unwrapped(model), val, device=dev, precision=precision,
                               channels_last=use_channels_last, max_batches=max_batches, num_classes=num_classes)
                values.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
            values.update(lr=opt.param_groups[0]["lr"], images_per_s=stats["images"] / stats["seconds"],
                          epoch_time_s=time.perf_counter() - epoch_start)
            history.append(**values)

            # After the epoch: the schedule and early stopping look at the monitored metric.
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(values[monitor])
            elif scheduler is not None:
                scheduler.step()
            stop = stopper.update(values[monitor]) if stopper is not None else False
            if stop:
                history.info["stopped_early_after_epoch"] = epoch + 1
            if checkpoint is not None:
                state = _checkpoint_state(epoch + 1, model, opt, scheduler, scaler, stopper, generators, history)
                if _is_main_process():  # distributed: process 0 alone writes
                    save_checkpoint(checkpoint, state)
            _report(epoch, epochs, values, epoch_bar, writer, live, history, verbose)
            if stop:
                if verbose:
                    tqdm.write(f"Early stopping: {monitor} has not improved for {early_stopping} epochs.")
                break
    finally:
        epoch_bar.close()
        if writer is not None:
            writer.close()
    return history


def _current_seed() -> int | None:
    """The seed of the last ``seed_everything`` call, if the seeding module was used."""
    seeding = sys.modules.get("alexnet_lab.seeding")
    return seeding.current_seed() if seeding is not None else None


def _checkpoint_state(epochs_done, model, optimizer, scheduler, scaler, stopper, generators, history) -> dict:
    state = {
        "epoch": epochs_done,
        "model": _unwrapped(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "early_stopping": stopper.state_dict() if stopper is not None else None,
        "history": history.to_dict(),
        "rng": _rng_state(generators),
    }
    group = _process_group()
    if group is not None:  # every process's generators (their dropout masks differ), for an exact resume
        state["rng_per_process"] = [None] * group[1]
        torch.distributed.all_gather_object(state["rng_per_process"], state["rng"])
    return state


def _own_rng_state(state: dict) -> dict:
    """This process's random generators from a checkpoint (process 0's when it was written by fewer processes)."""
    group, per_process = _process_group(), state.get("rng_per_process")
    if group is not None and per_process and group[0] < len(per_process):
        return per_process[group[0]]
    return state["rng"]


def _resume(checkpoint, model, optimizer, scheduler, scaler, stopper, generators, history, verbose):
    """Restore everything from ``checkpoint``; returns the epoch to continue from and the stored history."""
    if not checkpoint.exists():
        if verbose:
            print(f"alexnet-lab: no checkpoint at {checkpoint} yet; starting from epoch 1.")
        return 0, history
    state = load_checkpoint(checkpoint)
    try:
        _unwrapped(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"The checkpoint {checkpoint} does not fit this model or optimizer ({e}). Resume with "
                         "the same model and optimizer, or use another checkpoint_dir or resume=False.") from e
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    if stopper is not None and state["early_stopping"] is not None:
        stopper.load_state_dict(state["early_stopping"])
    _set_rng_state(_own_rng_state(state), generators)
    stored = History.from_dict(state["history"])
    stored.info.update({k: v for k, v in history.info.items() if k not in ("seed",)})
    stored.info["resumed_from_epoch"] = state["epoch"]
    stored.label = history.label or stored.label
    if verbose:
        print(f"alexnet-lab: resuming from {checkpoint} after epoch {state['epoch']}.")
    return state["epoch"], stored


def _tensorboard_writer(tensorboard_dir):
    if tensorboard_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("tensorboard_dir needs the tensorboard package: pip install tensorboard") from e
    return SummaryWriter(os.fspath(tensorboard_dir))


def _report(epoch, epochs, values, epoch_bar, writer, live, history, verbose) -> None:
    """Show one finished epoch: progress bar, printed line, TensorBoard and live plot."""
    epoch_bar.update(1)
    shown = {k: f"{values[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in values}
    epoch_bar.set_postfix(shown)
    if writer is not None:
        for key, value in values.items():
            writer.add_scalar(key, value, epoch + 1)
    if live is not None:
        live.update(history)
    if verbose:
        tqdm.write(format_epoch(epoch, epochs, values))


def format_epoch(epoch: int, epochs: int, values: dict) -> str:
    """One epoch's line, e.g. ``epoch 3/10: loss 0.512 accuracy 0.812 | val_loss ... | lr 0.01 | 1234 img/s, 4.2 s``."""
    parts = [f"{k} {values[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in values]
    return (f"epoch {epoch + 1}/{epochs}: {' '.join(parts)} | lr {values['lr']:.3g} | "
            f"{values['images_per_s']:.0f} img/s, {values['epoch_time_s']:.1f} s")


def evaluate(model: nn.Module, data, *, max_batches: int | None = None, batch_size: int = 64,
             mixed_precision: str | bool = False) -> dict:
    """Loss, accuracy and images/s of ``model`` on ``data`` (dropout off), on the device the model is on.

    ``data`` takes the same forms as ``fit``'s ``train``. Returns
    ``{"loss": ..., "accuracy": ..., "images_per_s": ...}``. It computes in float32 unless
    ``mixed_precision`` says otherwise; ``"auto"`` gives the precision ``fit`` validates in (bfloat16 on
    CPUs with AVX-512 BF16 or AMX), and so the same numbers as its last validation.
    """
    data = _as_batches(data, batch_size, shuffle=False, what="data")
    device = _model_device(model)
    precision = devices.choose_precision(device, mixed_precision)
    return _eval_pass(model, data, device=device, precision=precision, channels_last=_is_channels_last(model),
                      max_batches=max_batches, num_classes=_num_classes(model))


def predict(model: nn.Module, data, *, probabilities: bool = True, batch_size: int = 64,
            max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (or logits) for every image in ``data``, and the true labels, as NumPy arrays.

    Returns ``(scores, labels)`` with ``scores`` of shape ``(N, num_classes)``: the input of
    confusion matrices and "most confident mistakes" plots. The data is read once, so
    scores and labels stay aligned even when ``data`` shuffles.
    """
    data = _as_batches(data, batch_size, shuffle=False, what="data")
    device = _model_device(model)
    _, logits, labels = _eval_pass(model, data, device=device, precision=devices.choose_precision(device, False),
                                   channels_last=_is_channels_last(model), max_batches=max_batches,
                                   num_classes=_num_classes(model), keep_outputs=True)
    if probabilities:
        logits = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return logits, labels
