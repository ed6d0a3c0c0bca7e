"""Keras checkpoints: what ``fit`` saves after every epoch, and resuming from it.

Read this file beside :mod:`alexnet_lab.torch.checkpoints`. A Keras checkpoint is two files in
``checkpoint_dir``:

* ``model.keras`` -- the whole model, weights and optimizer state (momentum, step count), saved by
  Keras' ``ModelCheckpoint`` to a temporary file and then renamed into place in one step, so a
  failed save leaves the previous checkpoint intact; ``keras.saving.load_model`` reads it;
* ``history.json`` -- the :class:`~alexnet_lab.core.history.History` so far, plus what resuming
  needs besides the model: the epoch, and the counters of ``ReduceLROnPlateau`` and
  ``EarlyStopping`` (Keras resets them when ``fit`` starts).

:func:`resume` puts it all back; :func:`set_data_epoch` tells a course pipeline which epoch
comes next, so that a resumed run sees the same batches as a run that never stopped.

Why not ``keras.callbacks.BackupAndRestore``? It restores the weights, the optimizer and the
epoch, but writes its files in place (a failed write can leave a broken backup), keeps neither
the history nor the callbacks' counters, does not tell the data which epoch comes next, always
restores when its folder holds a backup (a fresh run could not start afresh), and writes a
weights file rather than a model that ``keras.saving.load_model`` reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from alexnet_lab.core.files import atomic_write_json  # noqa: E402
from alexnet_lab.core.history import History  # noqa: E402

# The optimizers and layers a saved model names: imported so that it loads.
from alexnet_lab.keras import models as keras_models  # noqa: E402,F401
from alexnet_lab.keras import optim  # noqa: E402,F401

__all__ = ["MODEL_NAME", "STATE_NAME", "PARTIAL_NAME", "Checkpointer", "checkpoint_callbacks", "resume",
           "set_data_epoch"]

MODEL_NAME = "model.keras"
STATE_NAME = "history.json"
PARTIAL_NAME = ".model-partial.keras"  # ModelCheckpoint writes here; then it replaces MODEL_NAME in one step
_COUNTERS = ("best", "wait", "cooldown_counter")  # what ReduceLROnPlateau and EarlyStopping count


def _plain(value):
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


class Checkpointer(keras.callbacks.Callback):
    """Makes ModelCheckpoint's file the checkpoint in one step, then writes the history (atomically).

    Runs after ``ModelCheckpoint`` (which saved the model to a temporary ``.keras`` file in
    the same folder) and after the schedule and early stopping (``watched``: those of them
    whose counters matter, by name), so the state it stores is the one the next epoch starts
    from. It records in the history when early stopping ended the run. On resume it gives the
    watched callbacks back their counters (``restore``, from :func:`resume`). With ``directory``
    None it writes nothing.
    """

    def __init__(self, directory: Path | None, history: History, watched: dict, restore: dict | None):
        super().__init__()
        self.directory, self.history, self.watched, self.restore = directory, history, watched, restore

    def on_train_begin(self, logs=None):
        for name, callback in self.watched.items():
            if self.restore and name in self.restore:
                for attribute, value in self.restore[name].items():
                    setattr(callback, attribute, value)

    def on_epoch_end(self, epoch, logs=None):
        stopper = self.watched.get("early_stopping")
        if stopper is not None and self.model.stop_training:
            self.history.info["stopped_early_after_epoch"] = epoch + 1
        if self.directory is None:
            return
        os.replace(self.directory / PARTIAL_NAME, self.directory / MODEL_NAME)
        state = {name: {a: _plain(getattr(cb, a)) for a in _COUNTERS if hasattr(cb, a)}
                 for name, cb in self.watched.items()}
        atomic_write_json(self.directory / STATE_NAME,
                          {**self.history.to_dict(), "resume": {"epoch": epoch + 1, "callbacks": state}})


def checkpoint_callbacks(directory: Path | None, history: History, watched: dict,
                         restore: dict | None) -> list[keras.callbacks.Callback]:
    """The callbacks that write the checkpoint into ``directory`` after every epoch, in their order.

    Put them after the schedule and early stopping: the model is saved once the schedule has
    set the next epoch's learning rate. Without a ``directory``, only the :class:`Checkpointer`
    (which records early stopping in the history).
    """
    callbacks = []
    if directory is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(os.fspath(directory / PARTIAL_NAME)))
    callbacks.append(Checkpointer(directory, history, watched, restore))
    return callbacks


def resume(checkpoint_dir: str | os.PathLike, model: keras.Model, history: History, *,
           verbose: int = 1) -> tuple[int, History, dict | None]:
    """Load the weights and optimizer state saved in ``checkpoint_dir`` into the compiled ``model``.

    Returns the epoch to continue from, the stored history continued with ``history``'s settings
    (:meth:`~alexnet_lab.core.history.History.continued`) and the callbacks' counters for
    :class:`Checkpointer`. Without a checkpoint yet, nothing changes and training starts at epoch 0.
    """
    directory = Path(checkpoint_dir)
    model_path, state_path = directory / MODEL_NAME, directory / STATE_NAME
    if not (model_path.exists() and state_path.exists()):
        if verbose:
            print(f"alexnet-lab: no checkpoint in {directory} yet; starting from epoch 1.")
        return 0, history, None
    saved = keras.saving.load_model(model_path)
    try:
        model.set_weights(saved.get_weights())
        model.optimizer.build(model.trainable_variables)
        if len(model.optimizer.variables) != len(saved.optimizer.variables):
            raise ValueError(f"{len(saved.optimizer.variables)} saved optimizer variables, "
                             f"{len(model.optimizer.variables)} expected")
        for variable, value in zip(model.optimizer.variables, saved.optimizer.variables):
            variable.assign(value)
    except ValueError as e:
        raise ValueError(f"The checkpoint {model_path} does not fit this model or optimizer ({e}). Resume with the "
                         "same model and optimizer, or use another checkpoint_dir or resume=False.") from e
    state = json.loads(state_path.read_text())
    epoch = state["resume"]["epoch"]
    if verbose:
        print(f"alexnet-lab: resuming from {model_path} after epoch {epoch}.")
    return epoch, History.from_dict(state).continued(history, epoch), state["resume"]["callbacks"]


def set_data_epoch(data, epoch: int) -> None:
    """On resume, tell a dataset that counts epochs (``dataset.set_epoch``) which epoch comes next.

    :func:`alexnet_lab.keras.pipeline.make_batches` draws each epoch's order and augmentation from
    ``(seed, epoch)``; a dataset made afresh after a restart would otherwise start again at epoch 0.
    Data that counts no epochs is left alone.
    """
    set_epoch = getattr(data, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)
