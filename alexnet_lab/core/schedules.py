"""The one-cycle learning rate, written once for both frameworks (no framework imported).

A one-cycle schedule (Smith & Topin, 2018) warms the learning rate up from ``peak / div_factor`` to
``peak`` over the first ``pct_start`` of all training steps, then anneals it to
``peak / (div_factor * final_div_factor)``, both along half a cosine. The high middle moves fast; the
low end settles the weights. It is stepped after every batch, not every epoch.

:func:`one_cycle_lr` is exactly ``torch.optim.lr_scheduler.OneCycleLR(max_lr=peak, total_steps=...,
pct_start=..., anneal_strategy="cos", cycle_momentum=False)`` (a test compares them step by step).
PyTorch's ``make_scheduler(..., "onecycle")`` wraps it in a ``LambdaLR``; Keras' in a
``LearningRateSchedule``.
"""

from __future__ import annotations

import math

__all__ = ["one_cycle_lr"]


def _cos(start: float, end: float, fraction: float) -> float:
    """From ``start`` (fraction 0) to ``end`` (fraction 1) along half a cosine."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1.0)


def one_cycle_lr(step: int, total_steps: int, peak: float, *, pct_start: float = 0.25, div_factor: float = 25.0,
                 final_div_factor: float = 1e4) -> float:
    """The learning rate of step ``step`` (0 = the first batch) of a one-cycle schedule of ``total_steps`` steps.

    Args:
        step: the number of optimizer steps taken before this one; steps past the end keep the last rate.
        total_steps: epochs × batches per epoch.
        peak: the highest learning rate, reached after ``pct_start * total_steps`` steps.
        pct_start: the fraction of the steps spent warming up.
        div_factor: the first rate is ``peak / div_factor``.
        final_div_factor: the last rate is the first divided by this.
    """
    if total_steps < 2:
        raise ValueError(f"a one-cycle schedule needs at least 2 steps. Received: total_steps={total_steps}.")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must lie between 0 and 1. Received: pct_start={pct_start}.")
    initial = peak / div_factor
    final = initial / final_div_factor
    warm_end = float(pct_start * total_steps) - 1.0  # the step at which the peak is reached (as PyTorch counts)
    last = total_steps - 1.0
    step = min(float(step), last)
    if step <= warm_end:
        return _cos(initial, peak, step / warm_end) if warm_end > 0 else peak
    return _cos(peak, final, (step - warm_end) / (last - warm_end))
