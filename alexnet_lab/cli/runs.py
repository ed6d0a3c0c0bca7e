"""One ``alexnet-lab train`` run: its settings (:class:`TrainConfig`) and its run folder (:class:`RunFolder`).

The run folder (``--out``) holds, written atomically and by one process only (PyTorch: process 0;
Keras: the chief)::

    config.json     the resolved settings, library versions, number of processes (at the start)
    history.json    the training history (alexnet_lab.core.history.History), rewritten after every epoch
    checkpoints/    what --resume continues from: PyTorch checkpoint.pt; Keras model.keras + history.json
    metrics.json    the final validation and test loss and accuracy, images/s and times (at the end)

A folder that already holds a run is never overwritten; ``--resume`` continues it only with the
settings that decide the model and the data unchanged (:data:`SAME_ON_RESUME`). The training
itself is in :mod:`alexnet_lab.cli.train`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from alexnet_lab.core.files import atomic_write_json

__all__ = ["TrainConfig", "RunFolder", "HistoryFile", "final_metrics", "versions", "CONFIG_NAME", "HISTORY_NAME",
           "METRICS_NAME", "CHECKPOINT_DIR", "SAME_ON_RESUME"]

CONFIG_NAME, HISTORY_NAME, METRICS_NAME, CHECKPOINT_DIR = "config.json", "history.json", "metrics.json", "checkpoints"
# Settings that must not change when a run is resumed: they decide the model and the data.
SAME_ON_RESUME = ("framework", "dataset", "preset", "per_class", "test_per_class", "val_fraction", "image_size",
                  "resize_to", "norm", "dropout", "seed", "batch_size", "augment", "optimizer")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run, resolved (profile defaults plus the options given)."""

    framework: str
    dataset: str
    preset: str
    out: str
    resume: bool = False
    profile: str = "laptop"
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str | None = "cosine"
    per_class: int | None = None
    test_per_class: int | None = None
    val_fraction: float = 0.1
    image_size: int | None = None
    resize_to: int | None = None
    norm: str | None = None
    dropout: float | None = None
    augment: bool = True
    seed: int = 0
    mixed_precision: str = "auto"
    max_batches: int | None = None
    max_eval_batches: int | None = None
    deterministic: bool = True
    device: str | None = None       # PyTorch only
    workers: int = 0                # PyTorch only: DataLoader worker processes
    strategy: str = "auto"          # Keras only
    progress: bool | None = None    # None: when the output is a terminal


def versions() -> dict:
    """Versions of Python and the libraries, read without importing them."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in ("alexnet-lab", "torch", "tensorflow", "tensorflow-cpu", "keras", "numpy"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


class RunFolder:
    """The paths of a run folder, the checks made before a run starts or resumes in it, and its files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / CONFIG_NAME
        self.history = self.path / HISTORY_NAME
        self.metrics = self.path / METRICS_NAME
        self.checkpoints = self.path / CHECKPOINT_DIR

    def problem(self, cfg: TrainConfig) -> str | None:
        """What stops ``cfg`` from running in this folder (None: nothing). Reads only."""
        if self.path.exists() and not self.path.is_dir():
            return f"--out {self.path} exists and is not a folder."
        nearest = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
            return f"Cannot write the run folder {self.path}: {nearest} is not a folder you may write in. Choose another --out."
        holds_a_run = self.config.exists() or self.checkpoints.exists()
        if not cfg.resume:
            if holds_a_run:
                return (f"The run folder {self.path} already holds a run. Pass --resume to continue it, or choose "
                        "another --out (or delete that folder to start again).")
            return None
        if not self.config.exists():
            return None  # --resume with nothing to resume: a fresh start
        try:
            before = json.loads(self.config.read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"Cannot resume: {self.config} is unreadable ({e}). Start a new run with another --out."
        changed = [f"{k}: {before.get(k)!r} -> {getattr(cfg, k)!r}" for k in SAME_ON_RESUME
                   if before.get(k) != getattr(cfg, k)]
        if changed:
            return (f"Cannot resume the run in {self.path} with other settings ({'; '.join(changed)}). Resume with "
                    "the same options (only --epochs and the device options may change), or start a new --out.")
        return None

    def resuming(self, cfg: TrainConfig) -> bool:
        """Whether ``cfg`` continues a run this folder already holds (else it is a new run)."""
        return cfg.resume and self.config.exists()

    def checkpoint_files(self, framework: str) -> list[Path]:
        names = ["checkpoint.pt"] if framework == "torch" else ["model.keras", "history.json"]
        return [self.checkpoints / n for n in names]

    def fingerprint(self, framework: str) -> tuple:
        """(name, size) of the checkpoint files this process sees: all processes must see the same."""
        return tuple((p.name, p.stat().st_size if p.exists() else None) for p in self.checkpoint_files(framework))

    def write_config(self, cfg: TrainConfig, **facts) -> None:
        """``config.json``: the settings, the run's ``facts`` (processes, data sizes...), versions, host and command."""
        self.path.mkdir(parents=True, exist_ok=True)
        config = {"settings": asdict(cfg), **facts, "versions": versions(), "host": socket.gethostname(),
                  "command": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        atomic_write_json(self.config, config)

    def finish(self, history, metrics: dict, facts: dict) -> None:
        """The last ``history.json`` (with the run's ``facts`` in its info) and ``metrics.json``."""
        history.info.update(facts)
        history.save(self.history)
        atomic_write_json(self.metrics, metrics)


class HistoryFile:
    """Rewrites ``history.json`` after every epoch (``fit``'s ``live`` hook), with the run's facts in its info."""

    def __init__(self, path: Path, facts: dict):
        self.path, self.facts = path, facts

    def update(self, history) -> None:
        history.info.update(self.facts)
        history.save(self.path)


def final_metrics(cfg: TrainConfig, history, test: dict, num_test: int, started: float, facts: dict) -> dict:
    """What ``metrics.json`` holds: the last epoch's metrics, the test metrics (``test``, from ``evaluate``
    on ``num_test`` images, of which at most ``cfg.max_eval_batches`` batches), speeds and times."""
    def last(key):
        value = history.last(key)
        return None if math.isnan(value) else value

    tested = num_test if cfg.max_eval_batches is None else min(num_test, cfg.max_eval_batches * cfg.batch_size)
    return {
        "framework": cfg.framework, "dataset": cfg.dataset, "preset": cfg.preset, "epochs": history.epochs,
        "stopped_early_after_epoch": history.info.get("stopped_early_after_epoch"),
        "val_loss": last("val_loss"), "val_accuracy": last("val_accuracy"),
        "test_loss": test["loss"], "test_accuracy": test["accuracy"], "test_images": tested,
        "train_loss": last("loss"), "train_accuracy": last("accuracy"),
        "train_images_per_s": statistics.median(history["images_per_s"]),  # median over the epochs
        "test_images_per_s": test["images_per_s"],
        "training_time_s": sum(history["epoch_time_s"]),  # all epochs, those before a resume included
        "wall_time_s": time.perf_counter() - started,     # this command, from start to end
        **facts,
    }
