"""The Keras optimizers, learning-rate schedules and early stopping that ``fit`` trains with.

Read this file beside :mod:`alexnet_lab.torch.optim`: the three functions take the same
arguments there. Here the per-epoch schedules and early stopping are *callbacks*, which
``model.fit`` calls after every epoch, and the one-cycle schedule is a ``LearningRateSchedule`` that
the optimizer evaluates at every step; in PyTorch the training loop calls them itself.

* :func:`make_optimizer` -- SGD with momentum (the paper's) or Adam, weight decay as in the paper,
  optionally clipping the gradients' global norm.
* :func:`make_scheduler` -- ``"plateau"`` (the paper's rule), ``"cosine"``, ``"step"``, ``"onecycle"`` (stepped
  after every batch; see :mod:`alexnet_lab.core.schedules`) or none.
* :func:`make_early_stopping` -- ``keras.callbacks.EarlyStopping``, or none.

Weight decay: Keras' own ``weight_decay=`` argument is *decoupled* (it shrinks the weights
by ``lr * wd * w`` next to the gradient step, as AdamW does), while the AlexNet paper and
PyTorch's SGD add ``wd * w`` to the gradient, where momentum then accumulates it: with
momentum 0.9 that decays about 10 times more for the same number. So that
``weight_decay=5e-4`` means the same thing in both frameworks, the :class:`SGD` and
:class:`Adam` below add ``l2 * w`` to the gradients, like PyTorch. One difference is left:
with ``clip_grad_norm``, Keras clips the gradient *with* the decay term, PyTorch without it.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from alexnet_lab.core.schedules import one_cycle_lr  # noqa: E402

__all__ = ["make_optimizer", "make_scheduler", "make_early_stopping", "SGD", "Adam", "OneCycle", "OPTIMIZERS",
           "SCHEDULES", "PER_BATCH"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = (None, "plateau", "cosine", "step", "onecycle")
PER_BATCH = ("onecycle",)  # schedules stepped after every batch; the others after every epoch


def _add_l2(grads, variables, l2: float):
    """``grad + l2 * w`` for every variable: weight decay the way the paper and PyTorch do it."""
    if not l2:
        return grads
    return [g if g is None else g + l2 * ops.cast(v, g.dtype) for g, v in zip(grads, variables)]


class _WithL2:
    """Adds ``l2 * w`` to each gradient before the optimizer's own update (the paper's weight decay)."""

    def __init__(self, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = l2

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        return super().apply(_add_l2(grads, variables, self.l2), trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="alexnet_lab")
class SGD(_WithL2, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``l2``: ``l2 * w`` is added to each gradient before the momentum step."""


@keras.saving.register_keras_serializable(package="alexnet_lab")
class Adam(_WithL2, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``l2``, like ``torch.optim.Adam(weight_decay=...)`` (not AdamW)."""


def make_optimizer(model: keras.Model | None, name: str = "sgd", *, lr: float = 0.01, momentum: float = 0.9,
                   weight_decay: float = 5e-4, clip_grad_norm: float | None = None,
                   nesterov: bool = False) -> keras.optimizers.Optimizer:
    """SGD with momentum (the paper's) or Adam, with L2 weight decay and optional global-norm clipping.

    Args:
        model: accepted so that the call reads as in PyTorch (``make_optimizer(model, "sgd", ...)``),
            and not used: a Keras optimizer finds the variables it updates when the model is compiled
            with it and trained (``model.compile(optimizer=...)``). It may be None.
        name: ``"sgd"`` (with ``momentum``) or ``"adam"`` (``momentum`` is not used).
        lr: the learning rate.
        weight_decay: L2, added to the gradients as in the paper and PyTorch (see the module's docstring).
        nesterov: Nesterov momentum (SGD only): the gradient is taken where the momentum is about to carry
            the weights, which damps overshooting at high learning rates.
        clip_grad_norm: rescale the gradients so that their global L2 norm is at most this, before
            each step (Keras' ``global_clipnorm``).
    """
    if model is not None and not isinstance(model, keras.Model):
        raise TypeError(f"make_optimizer(model, name, ...) takes the model (or None) first, got {type(model).__name__} "
                        f"{model!r}. Call e.g. make_optimizer(model, 'sgd', lr=0.01).")
    if clip_grad_norm is not None and clip_grad_norm <= 0:
        raise ValueError(f"clip_grad_norm must be a positive norm, got {clip_grad_norm}.")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov=True needs the 'sgd' optimizer (Nesterov momentum). Received: name={name!r}.")
    if name == "sgd":
        return SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov, l2=weight_decay,
                   global_clipnorm=clip_grad_norm)
    if name == "adam":
        return Adam(learning_rate=lr, l2=weight_decay, global_clipnorm=clip_grad_norm)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")


def make_scheduler(optimizer: keras.optimizers.Optimizer, schedule: str | None, *, epochs: int,
                   monitor: str = "val_accuracy", mode: str = "max", plateau_patience: int = 2,
                   step_every: int | None = None, steps_per_epoch: int | None = None):
    """The learning-rate schedule (None for a constant learning rate): a callback per epoch, or per batch.

    The same schedules as :func:`alexnet_lab.torch.optim.make_scheduler`, from the optimizer's
    learning rate when this is called (so call it before training, or before resuming):

    * ``"plateau"``: the paper's rule, divide the learning rate by 10 when ``monitor`` has not
      improved (``mode``: ``"max"`` or ``"min"``) for ``plateau_patience`` epochs (``ReduceLROnPlateau``).
    * ``"cosine"``: from ``lr`` down to 0 along half a cosine over ``epochs`` epochs.
    * ``"step"``: divide by 10 every ``step_every`` epochs (default: a third of ``epochs``).
    * ``"onecycle"``: up from lr/25 to lr over the first quarter of ``epochs × steps_per_epoch`` batches,
      then down to lr/250,000 (:func:`alexnet_lab.core.schedules.one_cycle_lr`). This one is no
      callback: it returns a :class:`OneCycle` schedule and makes it the optimizer's learning rate
      (``optimizer.learning_rate = OneCycle(...)``), which the optimizer evaluates at its own step count,
      ``optimizer.iterations``, before every update; a checkpoint keeps that count, so a resumed run
      continues the schedule where it was. Call it before the optimizer is built (before training).

    Pass a callback to ``model.fit(callbacks=[...])``, with the model compiled with ``optimizer``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if schedule == "plateau":
        if plateau_patience < 1:
            raise ValueError(f"plateau_patience must be at least 1 epoch, got {plateau_patience}.")
        return keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.1, patience=plateau_patience,
                                                 min_delta=1e-4)
    lr = float(ops.convert_to_numpy(optimizer.learning_rate))
    if schedule == "onecycle":
        if not steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"schedule='onecycle' needs steps_per_epoch (batches per epoch; fit takes it from the "
                             f"training data's length or max_batches). Received: steps_per_epoch={steps_per_epoch}.")
        one_cycle = OneCycle(lr, max(2, epochs * steps_per_epoch))
        optimizer.learning_rate = one_cycle
        return one_cycle
    if schedule == "cosine":
        return keras.callbacks.LearningRateScheduler(lambda epoch: lr * (1 + math.cos(math.pi * epoch / epochs)) / 2)
    if schedule == "step":
        every = step_every or max(1, epochs // 3)
        return keras.callbacks.LearningRateScheduler(lambda epoch: lr * 0.1 ** (epoch // every))
    return None


def _cos(start, end, fraction):
    """From ``start`` (fraction 0) to ``end`` (fraction 1) along half a cosine, in tensor operations (as in core)."""
    return end + (start - end) / 2.0 * (ops.cos(math.pi * fraction) + 1.0)


@keras.saving.register_keras_serializable(package="alexnet_lab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`~alexnet_lab.core.schedules.one_cycle_lr` as a Keras ``LearningRateSchedule``: the rate of step ``step``.

    The optimizer calls it with its step count (``optimizer.iterations``, the number of updates
    already made) before every update, inside the compiled training step. It computes the same
    formula as the core function, in float64, and returns float32. Serializable: a saved model's
    optimizer keeps it.
    """

    def __init__(self, peak: float, total_steps: int, *, pct_start: float = 0.25, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
        one_cycle_lr(0, total_steps, peak, pct_start=pct_start)  # checks the settings, with the core's errors
        self.peak, self.total_steps, self.pct_start = float(peak), int(total_steps), float(pct_start)
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)

    def __call__(self, step):
        initial = self.peak / self.div_factor
        final = initial / self.final_div_factor
        warm_end = self.pct_start * self.total_steps - 1.0  # as in one_cycle_lr
        last = self.total_steps - 1.0
        step = ops.minimum(ops.cast(step, "float64"), last)
        down = _cos(self.peak, final, (step - warm_end) / (last - warm_end))
        if warm_end > 0:
            up = _cos(initial, self.peak, ops.minimum(step / warm_end, 1.0))
            down = ops.where(step <= warm_end, up, down)
        return ops.cast(down, "float32")

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor}


def make_early_stopping(patience: int | None, *, monitor: str = "val_accuracy",
                        mode: str = "max") -> keras.callbacks.EarlyStopping | None:
    """``keras.callbacks.EarlyStopping`` after ``patience`` epochs without improvement of ``monitor`` (None: never).

    The same rule as :class:`alexnet_lab.torch.optim.EarlyStopping` (``min_delta=0``).
    """
    if patience is None:
        return None
    if patience < 1:
        raise ValueError(f"early_stopping patience must be at least 1 epoch, got {patience}.")
    return keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
