"""A framework-free training history, returned by both ``torch_training.fit`` and ``keras_training.fit``.

One plotting function (:func:`alexnet_lab.teaching.plots.plot_history`) serves both frameworks because
both return this same object, and both print their epochs with :func:`format_epoch`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

from alexnet_lab.core.files import atomic_write_json

__all__ = ["History", "QUALITY_METRICS", "format_epoch", "format_metrics", "format_progress"]

# The metrics that say how well a model does, in the order they are shown.
QUALITY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class History:
    """Per-epoch metrics of one training run.

    ``metrics`` maps names to one value per epoch: ``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``lr`` (learning rate at the end of the epoch), ``images_per_s``
    (training throughput) and ``epoch_time_s``. ``framework`` is ``"torch"`` or ``"keras"``;
    ``label`` names the run in legends.
    """

    framework: str
    label: str = ""
    metrics: dict[str, list[float]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def append(self, **values: float) -> None:
        """Record one epoch's values."""
        for key, value in values.items():
            self.metrics.setdefault(key, []).append(float(value))

    @property
    def epochs(self) -> int:
        return max((len(v) for v in self.metrics.values()), default=0)

    def __getitem__(self, key: str) -> list[float]:
        return self.metrics[key]

    def __contains__(self, key: str) -> bool:
        return key in self.metrics

    def last(self, key: str) -> float:
        """The last epoch's value of ``key`` (NaN if never recorded)."""
        values = self.metrics.get(key) or [math.nan]
        return values[-1]

    def best(self, key: str = "val_accuracy") -> float:
        values = self.metrics.get(key) or [math.nan]
        return (min if "loss" in key else max)(values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(framework=d["framework"], label=d.get("label", ""),
                   metrics={k: list(v) for k, v in d.get("metrics", {}).items()}, info=dict(d.get("info", {})))

    def continued(self, run: History, epoch: int) -> History:
        """This stored history, continued by ``run`` (the new history of a run resumed after ``epoch`` epochs).

        The stored metrics stay; the info takes the resumed run's settings (but keeps the stored
        ``seed``, the one the run started with) and records ``resumed_from_epoch``; ``run``'s label
        wins when it has one. Both ``fit`` functions use it when they resume from a checkpoint.
        """
        self.info.update({k: v for k, v in run.info.items() if k != "seed"})
        self.info["resumed_from_epoch"] = epoch
        self.label = run.label or self.label
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the history as JSON, atomically (a failed write never leaves a partial file)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.last(k):.4g}" for k in QUALITY_METRICS if k in self.metrics)
        return f"History({self.framework}{' ' + self.label if self.label else ''}: {self.epochs} epochs, {shown})"


def format_metrics(values: dict) -> dict[str, str]:
    """The quality metrics among ``values`` with 4 decimals, e.g. ``{"loss": "0.5120", "accuracy": "0.8125"}``.

    What the epoch progress bar of both ``fit`` functions shows.
    """
    return {k: f"{values[k]:.4f}" for k in QUALITY_METRICS if k in values}


def format_progress(loss: float, accuracy: float, images_per_s: float) -> dict[str, str]:
    """The running values the batch progress bar of both ``fit`` functions shows: ``loss``, ``acc``, ``img_s``."""
    return {"loss": f"{loss:.4f}", "acc": f"{accuracy:.3f}", "img_s": f"{images_per_s:.0f}"}


def format_epoch(epoch: int, epochs: int, values: dict) -> str:
    """One epoch's line, e.g. ``epoch 3/10: loss 0.5120 accuracy 0.8125 | lr 0.01 | 1234 img/s, 4.2 s``.

    ``epoch`` counts from 0; ``values`` holds that epoch's metrics (``lr``, ``images_per_s`` and
    ``epoch_time_s`` included), as both ``fit`` functions record them. Framework-free, so that
    PyTorch and Keras print the same line.
    """
    parts = [f"{k} {v}" for k, v in format_metrics(values).items()]
    return (f"epoch {epoch + 1}/{epochs}: {' '.join(parts)} | lr {values['lr']:.3g} | "
            f"{values['images_per_s']:.0f} img/s, {values['epoch_time_s']:.1f} s")
