"""Training and evaluating the PyTorch models: :func:`fit`, :func:`evaluate`, :func:`predict`.

Read this file beside :mod:`alexnet_lab.keras.training`: both ``fit`` functions take the
same arguments and return the same framework-free :class:`~alexnet_lab.core.history.History`,
so one plotting function serves both. Keras hides the training loop inside
``model.fit``; PyTorch makes you write it. Here it is, for one batch::

    x, y = x.to(device), y.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision):
        loss = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)   # the models return logits
    optimizer.zero_grad()
    scaler.scale(loss).backward()                  # scaler: only does something for float16
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)   # optional
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()                               # "onecycle" only; the other schedules after each epoch

Everything else in this file is bookkeeping around those lines: checking the batches,
progress bars and the history. The optimizer, the learning-rate schedule and early stopping
come from :mod:`alexnet_lab.torch.optim`, the checkpoints from :mod:`alexnet_lab.torch.checkpoints`.

Example::

    from alexnet_lab.torch import models as torch_models, training as torch_training
    model = torch_models.alexnet("cifar10")
    history = torch_training.fit(model, train_loader, val_loader, epochs=10, schedule="plateau")
    print(torch_training.evaluate(model, test_loader))
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from alexnet_lab.core import seeding
from alexnet_lab.core.history import History, format_epoch, format_metrics, format_progress
from alexnet_lab.torch import batches, checkpoints, distributed, optim
from alexnet_lab.torch import precision as torch_precision

__all__ = ["fit", "train_step", "evaluate", "predict"]


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
# Several processes (torchrun + DistributedDataParallel, see alexnet_lab.torch.distributed)
# ---------------------------------------------------------------------------
def _sum_over_processes(values: list, device) -> list:
    """Sums (of losses, correct answers, images) added up over all processes; unchanged in a single process.

    Each process sees its own part of every batch: only the sums over all processes give the
    epoch's loss and accuracy, and give every process the same numbers, so that the schedules
    and early stopping take the same decisions everywhere.
    """
    if distributed.process_group() is None:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper: checkpoints store it, so any process count loads them."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ---------------------------------------------------------------------------
# One pass over the data
# ---------------------------------------------------------------------------
def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, *,
               precision=None, scaler: torch.amp.GradScaler | None = None,
               clip_grad_norm: float | None = None, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step on the batch ``(x, y)``: forward, cross-entropy, backward, update.

    The step every training loop of the course takes (:func:`fit`, the notebooks' experiments and
    ``alexnet-lab bench``), written out once::

        logits = model(x)                      # under autocast when precision says so
        loss = F.cross_entropy(logits, y)      # in float32
        optimizer.zero_grad(); loss.backward(); optimizer.step()

    Args:
        precision: a :class:`~alexnet_lab.torch.precision.Precision` (autocast to its 16-bit type);
            ``None``: float32.
        scaler: a ``torch.amp.GradScaler`` for float16 (loss scaling); ``None``: none.
        clip_grad_norm: clip the gradients' global norm to this value before the update.
        label_smoothing: the target puts ``1 - label_smoothing`` on the right class and spreads the rest
            evenly over all classes (``F.cross_entropy(..., label_smoothing=...)``); 0: plain cross-entropy.

    Returns the loss and the logits, detached from the graph. The model is used in whatever mode
    it is in: call ``model.train()`` first.
    """
    autocast = precision is not None and precision.autocast
    with torch.autocast(x.device.type, dtype=precision.torch_dtype if autocast else None, enabled=autocast):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)  # float32, whatever autocast used
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    if clip_grad_norm is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach(), logits.detach()


def _train_epoch(model, data, *, device, optimizer, scaler, precision, channels_last, max_batches, num_classes,
                 bar, label_smoothing=0.0, batch_scheduler=None) -> dict:
    """Train one epoch; returns the mean loss and accuracy, the number of images and the training time.

    The optimizer clips the gradients itself when ``fit`` was given ``clip_grad_norm`` (see
    :func:`alexnet_lab.torch.optim.make_optimizer`). ``batch_scheduler`` is stepped after every batch.
    """
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    start = time.perf_counter()
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        x, y = batches.check_batch(batch, num_classes)
        x, y = _to_device(x, y, device, channels_last)
        loss, logits = train_step(model, x, y, optimizer, precision=precision, scaler=scaler,
                                  label_smoothing=label_smoothing)
        if batch_scheduler is not None:
            batch_scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if bar is not None:
            bar.update(1)
            if i % 10 == 0:  # reading values from a GPU waits for it: not at every batch
                bar.set_postfix(format_progress(loss_sum.item() / seen, correct.item() / seen,
                                                seen / (time.perf_counter() - start)))
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
            x, y = batches.check_batch(batch, num_classes)
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
    nesterov: bool = False,
    label_smoothing: float = 0.0,
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
        model: a PyTorch model that returns logits (e.g. from :mod:`alexnet_lab.torch.models`).
            It is moved to the training device and stays there.
        train, val: batches of ``(images, labels)``: a ``DataLoader``, a list of ``(x, y)``
            tensor pairs, or whole arrays ``(x, y)`` (cut into ``batch_size`` batches,
            ``train`` reshuffled every epoch). Images are float NCHW, labels integers.
        epochs: the total number of epochs (with ``resume``, counting the epochs already done).
        lr, optimizer, momentum, weight_decay: ``"sgd"`` with momentum (the paper's) or ``"adam"``;
            ``weight_decay`` is L2 added to the gradient, as in the paper.
        nesterov: Nesterov momentum (SGD only).
        label_smoothing: train against targets with ``1 - label_smoothing`` on the right class and
            ``label_smoothing / C`` added to each of the C classes (0: plain cross-entropy; must lie in
            [0, 1)). The History's ``loss`` is this smoothed training loss; ``val_loss`` stays plain
            cross-entropy, comparable with :func:`evaluate` and with runs without smoothing.
        schedule: None (constant), ``"plateau"`` (divide by 10 after ``plateau_patience``
            epochs without improvement), ``"cosine"``, ``"step"`` (divide by 10 every
            ``step_every`` epochs) or ``"onecycle"`` (peak ``lr``, stepped after every batch, over
            ``epochs`` × the batches per epoch: ``len(train)``, or ``max_batches`` if fewer);
            see :func:`alexnet_lab.torch.optim.make_scheduler`.
        early_stopping: stop after this many epochs without improvement (None: never).
            ``"plateau"`` and early stopping watch ``val_accuracy`` (the paper's validation
            error), or the training loss when there is no ``val``.
        clip_grad_norm: rescale the gradients so that their global L2 norm is at most this
            (the optimizer does it, see :func:`alexnet_lab.torch.optim.make_optimizer`).
        checkpoint_dir: write ``checkpoint.pt`` there after every epoch (atomically; see
            :mod:`alexnet_lab.torch.checkpoints`).
        resume: continue from the checkpoint in ``checkpoint_dir`` (model, optimizer,
            schedule, early stopping, random generators and history), up to ``epochs``.
        mixed_precision: ``"auto"`` (on only where known faster), True, False, ``"bf16"``
            or ``"fp16"``; see :func:`alexnet_lab.torch.precision.choose_precision`.
        channels_last: ``"auto"``, True or False; see :func:`alexnet_lab.torch.precision.choose_channels_last`.
        compile: ``"auto"``, True or False: train through ``torch.compile(model)``; see
            :func:`alexnet_lab.torch.precision.choose_compile` ("auto" is off for now: not measured faster).
        device: ``"cuda"``, ``"mps"``, ``"cpu"``, or None to pick the best available.
        batch_size: only used when ``train``/``val`` are whole arrays.
        live: anything with ``.update(history)`` (e.g. ``alexnet_lab.teaching.plots.LiveCurves``),
            called after every epoch.
        progress: show progress bars (epochs, and batches with loss, accuracy and images/s).
        label: the run's name in plots.
        max_batches: at most this many batches per epoch, for training and validation (smoke runs).
        tensorboard_dir: also log the metrics there for TensorBoard (needs ``pip install tensorboard``).
        verbose: 1 prints the set-up and one line per epoch, 0 prints nothing.

    Several processes (``torchrun``, see :mod:`alexnet_lab.torch.distributed`): pass the model wrapped
    in ``DistributedDataParallel`` and each process's share of the data. The losses, accuracies
    and image counts are then summed over all processes (every process gets the same history),
    only process 0 writes the checkpoint, and the checkpoint stores the unwrapped model, so a
    run can resume with another number of processes.

    Returns:
        A :class:`~alexnet_lab.core.history.History` with, per epoch, ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` (with ``val``), ``lr`` (the rate of the epoch's first
        batch; ``"onecycle"`` changes it after every batch), ``images_per_s`` (training throughput)
        and ``epoch_time_s``; its ``info`` records the device, precision, channels-last, seed and
        the training settings (optimizer, lr, schedule, nesterov, label_smoothing, ...).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1). Received: label_smoothing={label_smoothing}.")
    train = batches.as_batches(train, batch_size=batch_size, shuffle=True, what="train")
    val = batches.as_batches(val, batch_size=batch_size, what="val")

    dev = torch_precision.torch_device(device, announce=verbose > 0)
    precision = torch_precision.choose_precision(dev, mixed_precision)
    use_channels_last, channels_last_reason = torch_precision.choose_channels_last(dev, channels_last, precision)
    use_compile, compile_reason = torch_precision.choose_compile(dev, compile)
    model.to(dev)
    model.to(memory_format=torch.channels_last if use_channels_last else torch.contiguous_format)
    num_classes = _num_classes(model)

    monitor, mode = ("val_accuracy", "max") if val is not None else ("loss", "min")
    opt = optim.make_optimizer(model, optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               clip_grad_norm=clip_grad_norm, nesterov=nesterov)
    scheduler = optim.make_scheduler(opt, schedule, epochs=epochs, monitor=monitor, mode=mode,
                                     plateau_patience=plateau_patience, step_every=step_every,
                                     steps_per_epoch=batches.num_batches(train, max_batches))
    batch_scheduler = scheduler if schedule in optim.PER_BATCH else None
    stopper = optim.make_early_stopping(early_stopping, monitor=monitor, mode=mode)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision.grad_scaling)
    generators = checkpoints.data_generators(train)

    history = History("torch", label, info={
        "device": torch_precision.describe_device(dev), "precision": str(precision),
        "channels_last": use_channels_last, "channels_last_reason": channels_last_reason,
        "compiler": "torch.compile" if use_compile else None, "compile_reason": compile_reason,
        "seed": seeding.current_seed(), "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "schedule": schedule, "nesterov": nesterov, "label_smoothing": label_smoothing, "monitor": monitor,
        "max_batches": max_batches, "epochs": epochs,
        "processes": (distributed.process_group() or (0, 1))[1],
    })
    checkpoint = os.path.join(checkpoint_dir, checkpoints.CHECKPOINT_NAME) if checkpoint_dir is not None else None
    start_epoch = 0
    if resume:
        start_epoch, history = checkpoints.resume(checkpoint_dir, _unwrapped(model), history, optimizer=opt,
                                                  scheduler=scheduler, scaler=scaler, stopper=stopper,
                                                  generators=generators, process=distributed.process_group(),
                                                  verbose=verbose)
        checkpoints.set_data_epoch(train, start_epoch)  # the loader's next epoch
        if batch_scheduler is not None:  # the optimizer kept the interrupted run's last rate: take this step's
            for group, base, factor in zip(opt.param_groups, batch_scheduler.base_lrs, batch_scheduler.lr_lambdas):
                group["lr"] = base * factor(batch_scheduler.last_epoch)
        if stopper is not None and stopper.stopped:
            if verbose:
                print("alexnet-lab: this run had already stopped early; nothing to resume.")
            return history
    elif checkpoint is not None and os.path.exists(checkpoint) and verbose:
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
            epoch_lr = opt.param_groups[0]["lr"]
            batch_bar = tqdm(total=batches.num_batches(train, max_batches), desc=f"epoch {epoch + 1}/{epochs}",
                             unit="batch", leave=False, disable=not progress)
            with batch_bar:
                stats = _train_epoch(trained, train, device=dev, optimizer=opt, scaler=scaler, precision=precision,
                                     channels_last=use_channels_last, max_batches=max_batches,
                                     num_classes=num_classes, bar=batch_bar if progress else None,
                                     label_smoothing=label_smoothing, batch_scheduler=batch_scheduler)
            values = {"loss": stats["loss"], "accuracy": stats["accuracy"]}
            if val is not None:
                v = _eval_pass(_unwrapped(model), val, device=dev, precision=precision,
                               channels_last=use_channels_last, max_batches=max_batches, num_classes=num_classes)
                values.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
            values.update(lr=epoch_lr, images_per_s=stats["images"] / stats["seconds"],
                          epoch_time_s=time.perf_counter() - epoch_start)
            history.append(**values)

            # After the epoch: the schedule and early stopping look at the monitored metric.
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(values[monitor])
            elif scheduler is not None and batch_scheduler is None:
                scheduler.step()
            stop = stopper.update(values[monitor]) if stopper is not None else False
            if stop:
                history.info["stopped_early_after_epoch"] = epoch + 1
            if checkpoint is not None:
                state = checkpoints.checkpoint_state(epoch + 1, _unwrapped(model), opt, scheduler, scaler, stopper,
                                                     generators, history, process=distributed.process_group())
                if distributed.is_chief():  # distributed: process 0 alone writes
                    checkpoints.save_checkpoint(checkpoint, state)
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
    epoch_bar.set_postfix(format_metrics(values))
    if writer is not None:
        for key, value in values.items():
            writer.add_scalar(key, value, epoch + 1)
    if live is not None:
        live.update(history)
    if verbose:
        tqdm.write(format_epoch(epoch, epochs, values))


def evaluate(model: nn.Module, data, *, mixed_precision: str | bool | None = None, max_batches: int | None = None,
             batch_size: int = 64) -> dict:
    """Loss, accuracy and images/s of ``model`` on ``data`` (dropout off), on the device the model is on.

    ``data`` takes the same forms as ``fit``'s ``train``. Returns
    ``{"loss": ..., "accuracy": ..., "images_per_s": ...}``. ``mixed_precision``: None (the default)
    computes in the model's own precision, float32 for PyTorch models; ``"auto"`` in the precision
    ``fit`` validates in (bfloat16 on CPUs with AVX-512 BF16 or AMX), and so gives the same numbers as
    its last validation; True, False, ``"bf16"`` and ``"fp16"`` as in ``fit``.
    """
    data = batches.as_batches(data, batch_size=batch_size, what="data")
    device = _model_device(model)
    precision = torch_precision.choose_precision(device, False if mixed_precision is None else mixed_precision)
    return _eval_pass(model, data, device=device, precision=precision, channels_last=_is_channels_last(model),
                      max_batches=max_batches, num_classes=_num_classes(model))


def predict(model: nn.Module, data, *, probabilities: bool = True, batch_size: int = 64,
            max_batches: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (or logits) for every image in ``data``, and the true labels, as NumPy arrays.

    Returns ``(scores, labels)`` with ``scores`` of shape ``(N, num_classes)``: the input of
    confusion matrices and "most confident mistakes" plots. The data is read once, so
    scores and labels stay aligned even when ``data`` shuffles.
    """
    data = batches.as_batches(data, batch_size=batch_size, what="data")
    device = _model_device(model)
    precision = torch_precision.choose_precision(device, False)
    _, logits, labels = _eval_pass(model, data, device=device, precision=precision,
                                   channels_last=_is_channels_last(model), max_batches=max_batches,
                                   num_classes=_num_classes(model), keep_outputs=True)
    if probabilities:
        logits = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return logits, labels
