"""A framework-free training history, returned by both ``torch_training.fit`` and ``keras_training.fit``.

One plotting function (:func:`alexnet_lab.plots.plot_history`) serves both frameworks because
both return this same object.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

from .files import atomic_write_json


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

    def save(self, path: str | os.PathLike) -> None:
        """Write the history as JSON, atomically (a failed write never leaves a partial file)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.last(k):.4g}" for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                          if k in self.metrics)
        return f"History({self.framework}{' ' + self.label if self.label else ''}: {self.epochs} epochs, {shown})"
