"""The PyTorch optimizers, learning-rate schedules and early stopping that ``fit`` trains with.

Read this file beside :mod:`alexnet_lab.keras.optim`: the three functions take the same
arguments there. Here they return PyTorch objects that the training loop calls itself
(``optimizer.step()``, ``scheduler.step()``, ``stopper.update(value)``); in Keras they return an
optimizer and callbacks that ``model.fit`` calls.

* :func:`make_optimizer` -- SGD with momentum (the paper's) or Adam, weight decay as in the paper,
  optionally clipping the gradients' global norm.
* :func:`make_scheduler` -- ``"plateau"`` (the paper's rule), ``"cosine"``, ``"step"``, ``"onecycle"`` (stepped
  after every batch; see :mod:`alexnet_lab.core.schedules`) or none.
* :func:`make_early_stopping` -- stop when the monitored metric stops improving (:class:`EarlyStopping`).

Weight decay: ``weight_decay=5e-4`` adds ``5e-4 * w`` to every gradient before the momentum step,
exactly the update rule of the AlexNet paper (section 5) and of ``torch.optim.SGD(weight_decay=...)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from alexnet_lab.core.schedules import one_cycle_lr

__all__ = ["make_optimizer", "make_scheduler", "make_early_stopping", "EarlyStopping", "OPTIMIZERS", "SCHEDULES",
           "PER_BATCH"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = (None, "plateau", "cosine", "step", "onecycle")
PER_BATCH = ("onecycle",)  # schedules stepped after every batch; the others after every epoch


def make_optimizer(model: nn.Module, name: str = "sgd", *, lr: float = 0.01, momentum: float = 0.9,
                   weight_decay: float = 5e-4, clip_grad_norm: float | None = None,
                   nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's) or Adam over ``model``'s parameters.

    Args:
        model: the model whose parameters the optimizer updates.
        name: ``"sgd"`` (with ``momentum``) or ``"adam"`` (``momentum`` is not used).
        lr: the learning rate.
        weight_decay: L2, added to the gradients as in the paper (``torch.optim.SGD(weight_decay=...)``).
        nesterov: Nesterov momentum (SGD only): the gradient is taken where the momentum is about to carry
            the weights, which damps overshooting at high learning rates.
        clip_grad_norm: if given, the optimizer rescales the gradients so that their global L2 norm is at
            most this, just before each step (like Keras' ``global_clipnorm``). The clipping runs in a step
            pre-hook (``optimizer.register_step_pre_hook``); with a float16 ``GradScaler``,
            ``scaler.step(optimizer)`` unscales the gradients before it, so the true gradients are clipped.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_optimizer(model, name, ...) takes the model first, got {type(model).__name__} "
                        f"{model!r}. Call e.g. make_optimizer(model, 'sgd', lr=0.01).")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov=True needs the 'sgd' optimizer (Nesterov momentum). Received: name={name!r}.")
    if name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                                    nesterov=nesterov)
    elif name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")
    if clip_grad_norm is not None:
        if clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be a positive norm, got {clip_grad_norm}.")

        def clip(optimizer, args, kwargs):
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(parameters, clip_grad_norm)

        optimizer.register_step_pre_hook(clip)
    return optimizer


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str | None, *, epochs: int,
                   monitor: str = "val_accuracy", mode: str = "max", plateau_patience: int = 2,
                   step_every: int | None = None, steps_per_epoch: int | None = None):
    """The learning-rate schedule (None for a constant learning rate); stepped once per epoch, or per batch.

    * ``"plateau"``: the paper's rule, divide the learning rate by 10 when the monitored
      validation metric has not improved for ``plateau_patience`` epochs.
    * ``"cosine"``: from ``lr`` down to 0 along half a cosine over ``epochs`` epochs.
    * ``"step"``: divide by 10 every ``step_every`` epochs (default: a third of ``epochs``).
    * ``"onecycle"``: up from lr/25 to lr over the first quarter of ``epochs × steps_per_epoch`` batches,
      then down to lr/250,000 (:func:`alexnet_lab.core.schedules.one_cycle_lr`). Call ``scheduler.step()``
      after every batch (:data:`PER_BATCH` lists such schedules; ``fit`` does it).

    ``monitor`` names the metric and ``mode`` says whether it should go up (``"max"``) or down
    (``"min"``). PyTorch's plateau scheduler does not read the metric itself: call
    ``scheduler.step(value)`` with the monitored value after every epoch (``fit`` does), and
    ``scheduler.step()`` for the others. Keras' callbacks read ``monitor`` from the epoch's logs.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if schedule == "plateau":
        if plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1 epoch, got {plateau_patience}.")
        # PyTorch reduces after `patience` + 1 bad epochs, Keras after `patience`: we count like Keras.
        # threshold_mode="abs" with 1e-4 is Keras' min_delta=1e-4; eps=0: Keras never skips a reduction.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.1,
                                                          patience=plateau_patience - 1, threshold=1e-4,
                                                          threshold_mode="abs", eps=0.0)
    if schedule == "onecycle":
        if not steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"schedule='onecycle' needs steps_per_epoch (batches per epoch; fit takes it from the "
                             f"training data's length or max_batches). Received: steps_per_epoch={steps_per_epoch}.")
        total = max(2, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: one_cycle_lr(step, total, 1.0))
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_every or max(1, epochs // 3), gamma=0.1)
    return None


class EarlyStopping:
    """Stop when the monitored metric has not improved for ``patience`` epochs (Keras' rule, ``min_delta=0``)."""

    def __init__(self, patience: int, mode: str = "max", monitor: str = "val_accuracy"):
        if patience < 1:
            raise ValueError(f"early_stopping patience must be at least 1 epoch, got {patience}.")
        self.patience, self.mode, self.monitor = patience, mode, monitor
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

    @property
    def stopped(self) -> bool:
        """Whether training has stopped: ``patience`` epochs in a row without improvement."""
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


def make_early_stopping(patience: int | None, *, monitor: str = "val_accuracy",
                        mode: str = "max") -> EarlyStopping | None:
    """An :class:`EarlyStopping` after ``patience`` epochs without improvement of ``monitor`` (None: never stop).

    Call ``stopper.update(value)`` with the monitored value after every epoch; it returns True
    when training should stop (``fit`` does this).
    """
    return EarlyStopping(patience, mode, monitor) if patience is not None else None
